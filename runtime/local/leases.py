"""Who owns what on a cluster: the run lock, and a lease on every fault in effect.

A harness takes the lock for a run (``run``, ``nightly``, ``soak``, a pytest
session); a second one is refused with the holder's name.  Every fault it
injects that stays in effect (a partition, a lost node, a pod held down) is
leased to its PID.  When that PID is gone -- a harness killed by SIGKILL -- the
supervisor heals its faults and ends its load within a tick, and its lock goes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local import procs


@dataclass(frozen=True)
class Lease:
    """A fault in effect (``kind`` partition | node_loss | hold | freeze) on ``target``, owned by PID ``owner``."""

    owner: int
    kind: str
    target: str
    since: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunLock:
    owner: int
    command: str
    since: float

    def describe(self) -> str:
        return f"PID {self.owner} ({self.command}, since {time.strftime('%H:%M:%S', time.localtime(self.since))})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Leases:
    """Faults in effect and the run lock, thread-safe; ``alive(pid)`` says whether an owner lives."""

    def __init__(self, alive: Callable[[int | None], bool] = procs.alive) -> None:
        self.alive = alive
        self._lock = threading.Lock()
        self._leases: list[Lease] = []
        self.run_lock: RunLock | None = None

    # ------------------------------------------------------------------ the run lock
    def take(self, owner: int, command: str) -> RunLock:
        """Take the lock for ``owner``; refused while another live owner holds it."""
        with self._lock:
            held = self.run_lock
            if held is not None and held.owner != owner and self.alive(held.owner):
                raise ServeChaosError(f"this cluster is in use by {held.describe()}",
                                      hint="wait until that run ends, or use a cluster of your own")
            if held is None or held.owner != owner:
                self.run_lock = RunLock(owner, command, time.time())
            return self.run_lock

    def release(self, owner: int) -> None:
        with self._lock:
            if self.run_lock is not None and self.run_lock.owner == owner:
                self.run_lock = None

    def holder(self) -> RunLock | None:
        """The live holder of the lock, if any."""
        with self._lock:
            held = self.run_lock
            return held if held is not None and self.alive(held.owner) else None

    # ------------------------------------------------------------------ fault leases
    def add(self, owner: int | None, kind: str, target: str) -> None:
        if owner is None:
            return
        with self._lock:
            self._leases = [x for x in self._leases if (x.kind, x.target) != (kind, target)]
            self._leases.append(Lease(owner, kind, target, time.time()))

    def drop(self, kind: str | None = None, target: str | None = None) -> None:
        """Forget leases (all, of one kind, or of one kind on one target): their fault was healed."""
        with self._lock:
            self._leases = [x for x in self._leases
                            if not ((kind is None or x.kind == kind) and (target is None or x.target == target))]

    def all(self) -> list[Lease]:
        with self._lock:
            return list(self._leases)

    def orphaned(self) -> tuple[list[Lease], RunLock | None]:
        """Leases and the lock whose owners are gone (removed here: the caller heals them)."""
        with self._lock:
            dead = [x for x in self._leases if not self.alive(x.owner)]
            self._leases = [x for x in self._leases if x not in dead]
            lock = self.run_lock if self.run_lock is not None and not self.alive(self.run_lock.owner) else None
            if lock is not None:
                self.run_lock = None
            return dead, lock

    def to_dict(self) -> dict[str, Any]:
        holder = self.holder()
        return {"lock": holder.to_dict() if holder else None, "faults": [x.to_dict() for x in self.all()]}
