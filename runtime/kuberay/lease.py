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

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.kuberay.api import KubeApi, KubeApiError
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig, labels
from serve_chaos.runtime.local import procs

LEASE_SUFFIX = "lease"
#: How often a write of the record is tried again after someone else wrote it meanwhile.
CONFLICT_RETRIES = 8


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
        return self._read_versioned()[0]

    def _read_versioned(self) -> tuple[dict[str, Any], str | None]:
        """The record and the ConfigMap's resourceVersion (None: there is no ConfigMap yet)."""
        obj = self.api.read("ConfigMap", self.name, self.config.namespace)
        data = (obj.data if hasattr(obj, "data") else (obj or {}).get("data")) if obj is not None else None
        meta = (obj.metadata if hasattr(obj, "metadata") else (obj or {}).get("metadata")) if obj is not None else None
        version = (meta.resource_version if hasattr(meta, "resource_version") else (meta or {}).get("resourceVersion")) \
            if meta is not None else None
        data = data or {}
        lock = json.loads(data["lock"]) if data.get("lock") else None
        return {"lock": Owner(**lock) if lock else None, "faults": json.loads(data.get("faults") or "[]")}, version

    def _write(self, lock: Owner | None, faults: list[dict[str, Any]], version: str | None) -> None:
        """Write the record only over the version read: a create when there was none (409 if one
        appeared meanwhile), else a replace carrying that resourceVersion (409 if it changed)."""
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": self.name, "namespace": self.config.namespace,
                             "labels": labels(self.config, "lease")},
                "data": {"lock": json.dumps(asdict(lock)) if lock else "", "faults": json.dumps(faults)}}
        if version is None:
            self.api.create(body)
        else:
            body["metadata"]["resourceVersion"] = version
            self.api.replace(body)

    def _update(self, change: Callable[[dict[str, Any]], tuple[Owner | None, list[dict[str, Any]]] | None]) -> None:
        """Read, ``change`` (None: nothing to write), write over the version read; again from the
        read when someone else wrote meanwhile (optimistic concurrency, as the API server offers it)."""
        for _ in range(CONFLICT_RETRIES):
            record, version = self._read_versioned()
            changed = change(record)
            if changed is None:
                return
            try:
                self._write(*changed, version=version)
                return
            except KubeApiError as err:
                if err.status != 409:
                    raise
        raise ServeChaosError(f"the lease ConfigMap {self.name} kept changing under this harness",
                              hint="another serve-chaos is writing it at the same time; run again")

    def stale(self, owner: Owner) -> bool:
        if owner.host == self.host and not self.alive(owner.pid):
            return True
        return self.clock() - owner.renewed > self.ttl_s

    def mine(self, owner: Owner | None) -> bool:
        return owner is not None and owner.host == self.host and owner.pid == os.getpid()

    # ------------------------------------------------------------------ the lock
    def take(self, command: str) -> Owner:
        taken: list[Owner] = []

        def change(record: dict[str, Any]) -> tuple[Owner | None, list[dict[str, Any]]]:
            held = record["lock"]
            if held is not None and not self.mine(held) and not self.stale(held):
                raise ServeChaosError(f"this cluster is in use by {held.describe()}",
                                      hint="wait until that run ends, or use a cluster of your own")
            now = self.clock()
            taken[:] = [Owner(self.host, os.getpid(), command, held.since if self.mine(held) else now, now)]
            return taken[0], record["faults"]

        with self._mutex:
            self._update(change)
        owner = taken[0]
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._renew, daemon=True, name="lease-renew")
            self._thread.start()
        return owner

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                with self._mutex:
                    self._update(lambda r: (Owner(**{**asdict(r["lock"]), "renewed": self.clock()}), r["faults"])
                                 if self.mine(r["lock"]) else None)
            except ServeChaosError:
                continue  # the API is briefly unreachable; the ttl covers a missed renewal

    def release(self) -> None:
        self._stop.set()
        self._thread = None
        with self._mutex:
            self._update(lambda r: (None, r["faults"]) if self.mine(r["lock"]) else None)

    def holder(self) -> Owner | None:
        held = self.read()["lock"]
        return held if held is not None and not self.stale(held) else None

    # ------------------------------------------------------------------ fault leases
    def add_fault(self, kind: str, target: str, **data: Any) -> None:
        """Lease ``kind`` on ``target`` to this harness; ``data`` is what healing it needs later
        (JSON: the config to restore, the chaos objects to delete, ...), for whoever heals it."""
        entry = {"kind": kind, "target": target, "host": self.host, "pid": os.getpid(), "since": self.clock(),
                 "data": data}
        with self._mutex:
            self._update(lambda r: (r["lock"], [f for f in r["faults"] if (f["kind"], f["target"]) != (kind, target)]
                                    + [entry]))

    def fault(self, kind: str, target: str) -> dict[str, Any] | None:
        """The lease of ``kind`` on ``target``, whoever holds it."""
        return next((f for f in self.faults() if (f["kind"], f["target"]) == (kind, target)), None)

    def drop_faults(self, kind: str | None = None, target: str | None = None) -> None:
        def change(record: dict[str, Any]) -> tuple[Owner | None, list[dict[str, Any]]] | None:
            faults = [f for f in record["faults"]
                      if not ((kind is None or f["kind"] == kind) and (target is None or f["target"] == target))]
            return (record["lock"], faults) if faults != record["faults"] else None

        with self._mutex:
            self._update(change)

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
