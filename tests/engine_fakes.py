"""A cluster, a load and a prober made of plain Python (test doubles for the engine's own logic).

``FakeCluster`` keeps a set of replicas; ``kill_actor`` removes one and a new one
appears ``respawn_s`` later, as Serve would replace it.  ``FakeLoad`` writes a
request record every ``interval_s`` whose outcome ``FakeCluster.request_ok``
decides; ``FakeProber`` snapshots the cluster's state every ``period_s``.  Every
call that matters lands in ``calls``, in order.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.observe import Snapshot
from runtime.cluster import ActionRecord, Capabilities, ClusterStatus, Endpoints, NodeInfo, PodInfo
from runtime.errors import ServeChaosError

PODS = (PodInfo("head", "head", "node-head", "10.0.0.10", "Running", True, "uid-head", 0),
        PodInfo("worker-1", "worker", "node-w1", "10.0.0.20", "Running", True, "uid-w1", 0))


@dataclass
class FakeCluster:
    name: str = "fake"
    label: str | None = "fake"
    created: bool = False
    replicas: int = 2
    respawn_s: float | None = 0.3
    #: Failing requests while True (a fault in effect that the cluster does not heal).
    broken: bool = False
    calls: list[str] = field(default_factory=list)
    #: What ``interference()`` reports, and why ``lost()`` says the cluster is gone (None: it is there).
    interfering: list[str] = field(default_factory=list)
    gone: str | None = None
    serial: int = 100
    alive: list[dict[str, Any]] = field(default_factory=list)
    mutex: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for _ in range(self.replicas):
            self._spawn()

    def _spawn(self) -> None:
        with self.mutex:
            self.serial += 1
            pod = PODS[self.serial % 2].name
            self.alive.append({"role": "replica", "actor_id": f"a{self.serial}", "pid": self.serial,
                               "name": f"SERVE_REPLICA::app#d#{self.serial}", "pod": pod, "node_ip": pod,
                               "state": "RUNNING"})

    def _respawn(self) -> None:
        """Serve replaces a killed replica -- unless a heal already did."""
        if len(self.alive) < self.replicas:
            self._spawn()

    def request_ok(self) -> bool:
        with self.mutex:
            return not self.broken and len(self.alive) > 0

    def snapshot(self, t: float) -> Snapshot:
        with self.mutex:
            actors = list(self.alive) + [
                {"role": "proxy", "actor_id": f"p-{p.name}", "pid": 50 + i, "name": f"P{i}", "pod": p.name,
                 "node_ip": p.name, "state": "HEALTHY"} for i, p in enumerate(PODS)] + [
                {"role": "controller", "actor_id": "c", "pid": 60, "name": "SERVE_CONTROLLER_ACTOR", "pod": "head",
                 "node_ip": "head", "state": "ALIVE"}]
        return Snapshot(t=t, t_end=t + 0.001, serve_ok=True, actors_ok=True, nodes_ok=True, pods_ok=True,
                        app_status="RUNNING", replicas_running=sum(a["role"] == "replica" for a in actors),
                        actors=actors, pods=[p.to_dict() for p in PODS])

    # ------------------------------------------------------------------ the protocol
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(ready_timeout_s=5.0)

    def up(self) -> None:
        self.calls.append("up")

    def attach(self) -> bool:
        return True

    def down(self, force: bool = False) -> None:
        self.calls.append("down")

    def lock(self, command: str) -> None:
        self.calls.append("lock")

    def unlock(self) -> None:
        self.calls.append("unlock")

    def interference(self) -> list[str]:
        return list(self.interfering)

    def lost(self) -> str | None:
        return self.gone

    def pods(self) -> list[PodInfo]:
        return list(PODS)

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(p.node, "Ready", (p.name,)) for p in PODS]

    def endpoints(self) -> Endpoints:
        return Endpoints("http://front", "http://dashboard", {p.name: f"http://{p.name}" for p in PODS},
                         {"head": "http://head"})

    def settings(self) -> dict[str, Any]:
        return {"target": "fake", "gcs_ft": True}

    def serve_config(self) -> dict[str, Any]:
        from runtime.app.serve_config import SleepyPidConfig

        return SleepyPidConfig(num_replicas=self.replicas).to_serve_config()

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        return ActionRecord("apply_serve_config", "serve", time.time(), time.time())

    def status(self) -> ClusterStatus:
        return ClusterStatus("fake", "fake", "fake", True, "http://front", "http://dashboard", PODS, ())

    def kill_pod(self, pod: str, graceful: bool = True, grace_period_s: float = 30.0,
                 down_for_s: float | None = None) -> ActionRecord:
        raise ServeChaosError("not in the fake")

    def kill_node(self, node: str, replacement_delay_s: float = 10.0) -> ActionRecord:
        raise ServeChaosError("not in the fake")

    def partition_pod(self, pod: str) -> ActionRecord:
        raise ServeChaosError("not in the fake")

    def unpartition_pod(self, pod: str) -> ActionRecord:
        raise ServeChaosError("not in the fake")

    def kill_actor(self, actor_name: str | list[str], namespace: str, no_restart: bool,
                   ignore_missing: bool = False) -> ActionRecord:
        t = time.time()
        self.calls.append("kill_actor")
        names = [actor_name] if isinstance(actor_name, str) else actor_name
        with self.mutex:
            self.alive = [a for a in self.alive if a["name"] not in names]
        if self.respawn_s is not None:
            for _ in names:
                threading.Timer(self.respawn_s, self._respawn).start()
        return ActionRecord("kill_actor", names[0], t, time.time(), {"t_kill_start": t})

    def set_gcs_ft(self, enabled: bool, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        return ActionRecord("set_gcs_ft", "cluster", time.time(), time.time())

    def heal(self) -> list[ActionRecord]:
        """Undo what is in effect: requests work again and missing replicas come back."""
        self.calls.append("heal")
        with self.mutex:
            missing = self.replicas - len(self.alive)
            changed = self.broken or missing > 0
            self.broken = False
        for _ in range(max(0, missing)):
            self._spawn()
        return [ActionRecord("heal", "cluster", time.time(), time.time())] if changed else []

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        return []

    def wait_ready(self, timeout_s: float | None = None) -> None:
        self.calls.append("wait_ready")


class FakeLoad:
    """Writes one request record every ``interval_s`` (s) until stopped."""

    def __init__(self, cluster: FakeCluster, out: Path, interval_s: float = 0.02) -> None:
        self.cluster, self.out, self.interval_s = cluster, out, interval_s
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.cluster.calls.append("load.start")
        self.out.touch()
        self.thread.start()

    def stop(self) -> None:
        self.cluster.calls.append("load.stop")
        self.stopped.set()
        self.thread.join(5)

    def _loop(self) -> None:
        seq = 0
        with self.out.open("a") as fh:
            while not self.stopped.is_set():
                t = time.time()
                ok = self.cluster.request_ok()
                fh.write(json.dumps({"seq": seq, "t": t, "t_sent": t, "endpoint": "front", "ok": ok,
                                     "error": None if ok else "5xx", "status": 200 if ok else 503,
                                     "pid": None, "pod": None, "role": None, "latency_ms": 1.0}) + "\n")
                fh.flush()
                seq += 1
                time.sleep(self.interval_s)


class FakeProber:
    def __init__(self, cluster: FakeCluster, period_s: float = 0.05) -> None:
        self.cluster, self.period_s = cluster, period_s
        self.snapshots: list[Snapshot] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)

    def copy(self) -> list[Snapshot]:
        return list(self.snapshots)

    def _loop(self) -> None:
        while not self.stopped.is_set():
            self.snapshots.append(self.cluster.snapshot(time.time()))
            time.sleep(self.period_s)


class NoServedBy:
    """Serve's request logs are not part of the fake: nobody is known to have served anything."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def copy(self) -> list[dict[str, Any]]:
        return []


def factories(cluster: FakeCluster) -> dict[str, Callable[..., Any]]:
    """The engine's factories for the fake (keyword arguments of ``Engine``)."""
    return {"load_factory": lambda spec, targets, out, max_s, markers, traffic: FakeLoad(cluster, out),
            "prober_factory": lambda dashboard, pods_fn, out: FakeProber(cluster),
            "served_by_factory": lambda dashboard, replicas_fn, out, prefix: NoServedBy(),
            "start_probe": lambda dashboard, snap: {}}
