"""The agent's child processes: started, waited for and reaped by PID only.

The agent is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), as a container runtime's
shim is: a container whose PID 1 outlived its ``unshare`` parent comes back to it to be reaped,
never to the host's init (which on our machines does not reap).  Children the agent starts
itself are waited for by their owner; a janitor reaps every other zombie child, and only one
seen as a zombie twice, so it never takes the exit status of a child its owner is about to wait for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from serve_chaos.runtime.local import procs


class Children:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._seen_zombies: set[int] = set()

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        proc = subprocess.Popen(argv, **kwargs)
        with self._lock:
            self._owned.add(proc.pid)
        return proc

    def release(self, pid: int) -> None:
        with self._lock:
            self._owned.discard(pid)

    def run(self, argv: list[str], timeout_s: float, env: dict[str, str] | None = None) -> tuple[int | None, str]:
        """Run to the end or ``timeout_s`` (s); (exit code or None on timeout, combined output)."""
        proc = self.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
            return proc.returncode, out.decode(errors="replace")
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            out, _ = proc.communicate()
            return None, out.decode(errors="replace")
        finally:
            self.release(proc.pid)

    def reap_orphans(self) -> list[int]:
        """Reap zombie children nobody owns (seen as zombies at two calls in a row)."""
        me = os.getpid()
        zombies = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 1 and fields[0] == "Z" and int(fields[1]) == me:
                zombies.add(int(entry.name))
        with self._lock:
            ripe = (zombies & self._seen_zombies) - self._owned
            self._seen_zombies = zombies - ripe
        for pid in ripe:
            procs.reap([pid])
        return sorted(ripe)


def janitor(children: Children, stop: threading.Event, period_s: float = 1.0) -> None:
    procs.become_subreaper()
    while not stop.wait(period_s):
        children.reap_orphans()


def child_pid(parent: int, timeout_s: float = 5.0) -> int | None:
    """The first child of ``parent`` (``unshare --fork``'s: the container's PID 1 as the host sees it)."""
    deadline = time.monotonic() + timeout_s
    path = Path(f"/proc/{parent}/task/{parent}/children")
    while time.monotonic() < deadline:
        try:
            found = path.read_text().split()
        except OSError:
            return None
        if found:
            return int(found[0])
        time.sleep(0.01)
    return None
