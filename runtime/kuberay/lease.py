"""The run lock and the faults in effect, kept on the cluster itself (a ConfigMap in our namespace).

Nothing on a Kubernetes cluster notices that a harness died, so the record is
where the next command finds it: ``serve-chaos-lease`` holds the lock (host,
PID, command, last renewal) and every fault in effect with its owner.  A lock
is stale when its owner is a dead PID on this host, or when it was not renewed
for ``ttl_s``; the holder renews it every ``renew_s`` while it runs.  Whatever a
stale owner left in effect is healed by whoever looks next.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from runtime.errors import ServeChaosError
from runtime.kuberay.api import KubeApi
from runtime.kuberay.manifests import KubeRayConfig, labels
from runtime.local import procs

LEASE_SUFFIX = "lease"


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    command: str
    since: float
    renewed: float

    def describe(self) -> str:
        return f"PID {self.pid} on {self.host} ({self.command}, since {time.strftime('%H:%M:%S', time.localtime(self.since))})"


class KubeLease:
    """Lock and fault leases of one RayService, in one ConfigMap."""

    def __init__(self, api: KubeApi, config: KubeRayConfig, ttl_s: float = 60.0, renew_s: float = 15.0,
                 alive: Callable[[int | None], bool] = procs.alive, host: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self.config = config
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.alive = alive
        self.host = host or socket.gethostname()
        self.clock = clock
        self.name = f"{config.name}-{LEASE_SUFFIX}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # ------------------------------------------------------------------ the record
    def read(self) -> dict[str, Any]:
        obj = self.api.read("ConfigMap", self.name, self.config.namespace)
        data = (obj.data if hasattr(obj, "data") else (obj or {}).get("data")) if obj is not None else None
        data = data or {}
        lock = json.loads(data["lock"]) if data.get("lock") else None
        return {"lock": Owner(**lock) if lock else None, "faults": json.loads(data.get("faults") or "[]")}

    def _write(self, lock: Owner | None, faults: list[dict[str, Any]]) -> None:
        self.api.apply({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": self.name, "namespace": self.config.namespace,
                                     "labels": labels(self.config, "lease")},
                        "data": {"lock": json.dumps(asdict(lock)) if lock else "",
                                 "faults": json.dumps(faults)}})

    def stale(self, owner: Owner) -> bool:
        if owner.host == self.host and not self.alive(owner.pid):
            return True
        return self.clock() - owner.renewed > self.ttl_s

    def mine(self, owner: Owner | None) -> bool:
        return owner is not None and owner.host == self.host and owner.pid == os.getpid()

    # ------------------------------------------------------------------ the lock
    def take(self, command: str) -> Owner:
        with self._mutex:
            record = self.read()
            held = record["lock"]
            if held is not None and not self.mine(held) and not self.stale(held):
                raise ServeChaosError(f"this cluster is in use by {held.describe()}",
                                      hint="wait until that run ends, or use a cluster of your own")
            now = self.clock()
            owner = Owner(self.host, os.getpid(), command, held.since if self.mine(held) else now, now)
            self._write(owner, record["faults"])
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._renew, daemon=True, name="lease-renew")
            self._thread.start()
        return owner

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                with self._mutex:
                    record = self.read()
                    held = record["lock"]
                    if self.mine(held):
                        self._write(Owner(**{**asdict(held), "renewed": self.clock()}), record["faults"])
            except ServeChaosError:
                continue  # the API is briefly unreachable; the ttl covers a missed renewal

    def release(self) -> None:
        self._stop.set()
        self._thread = None
        with self._mutex:
            record = self.read()
            if self.mine(record["lock"]):
                self._write(None, record["faults"])

    def holder(self) -> Owner | None:
        held = self.read()["lock"]
        return held if held is not None and not self.stale(held) else None

    # ------------------------------------------------------------------ fault leases
    def add_fault(self, kind: str, target: str, **data: Any) -> None:
        """Lease ``kind`` on ``target`` to this harness; ``data`` is what healing it needs later
        (JSON: the config to restore, the chaos objects to delete, ...), for whoever heals it."""
        with self._mutex:
            record = self.read()
            faults = [f for f in record["faults"] if (f["kind"], f["target"]) != (kind, target)]
            faults.append({"kind": kind, "target": target, "host": self.host, "pid": os.getpid(),
                           "since": self.clock(), "data": data})
            self._write(record["lock"], faults)

    def fault(self, kind: str, target: str) -> dict[str, Any] | None:
        """The lease of ``kind`` on ``target``, whoever holds it."""
        return next((f for f in self.faults() if (f["kind"], f["target"]) == (kind, target)), None)

    def drop_faults(self, kind: str | None = None, target: str | None = None) -> None:
        with self._mutex:
            record = self.read()
            faults = [f for f in record["faults"]
                      if not ((kind is None or f["kind"] == kind) and (target is None or f["target"] == target))]
            if faults != record["faults"]:
                self._write(record["lock"], faults)

    def faults(self) -> list[dict[str, Any]]:
        return self.read()["faults"]

    def mine_fault(self, fault: dict[str, Any]) -> bool:
        """Whether this harness injected ``fault``."""
        return (fault.get("host"), fault.get("pid")) == (self.host, os.getpid())

    def orphaned(self) -> list[dict[str, Any]]:
        """Faults whose owner is gone: not this harness, and not the live holder of the lock."""
        record = self.read()
        holder = record["lock"] if record["lock"] is not None and not self.stale(record["lock"]) else None
        out = []
        for fault in record["faults"]:
            if fault["host"] == self.host and fault["pid"] == os.getpid():
                continue
            if holder is not None and (fault["host"], fault["pid"]) == (holder.host, holder.pid):
                continue
            if fault["host"] == self.host and self.alive(fault["pid"]):
                continue
            out.append(fault)
        return out
