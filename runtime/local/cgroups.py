"""cgroup v2 groups, one per pod incarnation, so a pod's death takes its whole tree at once.

Only core cgroup files are used (``cgroup.procs``, ``cgroup.kill``), so no
controller needs delegating; this works on a pure cgroup2 host and on a hybrid
host where cgroup2 is mounted at ``/sys/fs/cgroup/unified``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cgroup2_root() -> Path | None:
    """Mount point of the cgroup2 hierarchy if it exists and supports cgroup.kill."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            root = Path(left.split()[4])
            if os.access(root, os.W_OK):
                return root
    return None


def supports_kill(root: Path) -> bool:
    """cgroup.kill exists from Linux 5.14; probe it on a throwaway group."""
    probe = root / f"serve-chaos-probe-{os.getpid()}"
    try:
        probe.mkdir()
        return (probe / "cgroup.kill").exists()
    except OSError:
        return False
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


def create(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def join(path: Path, pid: int | None = None) -> None:
    """Move ``pid`` (default: this process) into the group."""
    (path / "cgroup.procs").write_text(str(pid or os.getpid()))


def members(path: Path) -> list[int]:
    try:
        text = (path / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def kill(path: Path) -> None:
    """SIGKILL every process in the group (and its subgroups) at once."""
    try:
        (path / "cgroup.kill").write_text("1")
    except OSError:
        pass


def remove(path: Path, timeout_s: float = 5.0) -> bool:
    """rmdir the group and its subgroups once empty; True if gone.

    Killed processes linger as zombies until their parent reaps them, and rmdir
    fails with EBUSY until then, hence the wait.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            for sub in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
                sub.rmdir()
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def list_groups(root: Path, prefix: str) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix))
    except OSError:
        return []


# ---------------------------------------------------------------------- cgroup v1 controllers
#: Where cgroup v1 controllers are mounted on a hybrid host (ours: cpu and memory; ray-facts.md).
V1_BASE = Path("/sys/fs/cgroup")
#: The v1 controllers a pod gets a group in: CPU quota (starvation) and a memory limit (pressure).
V1_CONTROLLERS = ("cpu", "memory")


def v1_root(controller: str) -> Path | None:
    """The mount point of a cgroup v1 ``controller`` if it is mounted and writable here."""
    root = V1_BASE / controller
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        left, _, right = line.partition(" - ")
        fields = right.split()
        if len(fields) >= 3 and fields[0] == "cgroup" and controller in fields[2].split(","):
            if Path(left.split()[4]) == root and os.access(root, os.W_OK):
                return root
    return None


def write(path: Path, value: str | int) -> None:
    path.write_text(str(value))


def read_int(path: Path, default: int = 0) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def read_stat(path: Path) -> dict[str, int]:
    """A ``key value`` per line file (``cpu.stat``, ``memory.oom_control``) as a dict."""
    out: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out

