"""Processes of a run: marking, finding, killing and reaping them -- always by PID.

Every process the tool starts carries ``SERVE_CHAOS_RUN=<label>`` in its
environment (Ray passes it on to raylets, GCS and workers), so what an earlier,
killed run left behind is found by its label, never by process name.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from serve_chaos.runtime.local.commands import CHILD_WAIT_LOCK

RUN_ENV = "SERVE_CHAOS_RUN"
ROLE_ENV = "SERVE_CHAOS_ROLE"
POD_ENV = "SERVE_CHAOS_POD"
#: The harness (its PID) a process works for, e.g. a load generator's run.
OWNER_ENV = "SERVE_CHAOS_OWNER"

PR_SET_CHILD_SUBREAPER = 36


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def marked_processes(label: str | None = None, key: str = RUN_ENV) -> dict[int, dict[str, str]]:
    """PIDs whose environment has ``key`` (equal to ``label`` if given), with their markers."""
    found: dict[int, dict[str, str]] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        env = environ_of(pid)
        value = env.get(key)
        if value is None or (label is not None and value != label):
            continue
        found[pid] = {k: v for k, v in env.items() if k.startswith("SERVE_CHAOS_")}
    return found


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_and_wait(pids: Iterable[int], timeout_s: float = 5.0) -> list[int]:
    """SIGKILL ``pids`` and wait until they are gone; return those still alive."""
    pids = [p for p in pids if p != os.getpid()]
    signal_pids(pids, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reap(pids)
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def become_subreaper() -> bool:
    """Adopt orphaned descendants (killed pods' raylets, workers) so we can reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap(pids: Iterable[int]) -> None:
    """Reap those of ``pids`` that are our exited children -- and no other child of ours."""
    with CHILD_WAIT_LOCK:
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def reap_children() -> list[tuple[int, int]]:
    """waitpid every exited child; return (pid, raw status) pairs."""
    reaped = []
    with CHILD_WAIT_LOCK:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped.append((pid, status))
    return reaped


def is_stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP, state T) or traced (t)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("T", "t")


def command_name(pid: int) -> str | None:
    """The process's command name (``/proc/<pid>/comm``, at most 15 characters); None once gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
