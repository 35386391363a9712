"""A cluster, a load and a prober made of plain Python (test doubles for the engine's own logic).

``FakeCluster`` keeps pods and replicas; ``kill_actor`` removes a replica and a new one
appears ``respawn_s`` later, as Serve would replace it.  ``kill_node`` loses a node: its
pods' addresses go silent (requests to them time out), their replicas and proxies go, and
after ``recreate_s`` each pod comes back as a new incarnation -- a new UID and address, and
a new name with ``rename_on_recreate`` (KubeRay names every new pod afresh; the local target
keeps the name) -- on a Ready node no pod occupies, ready ``ready_s`` later with its
replicas back (as with ``max_replicas_per_node``, they can go nowhere else).  A lost node
stays lost until ``heal``.  ``kill_pod`` of Redis holds it down until ``heal``.
``fail_health`` marks a replica unhealthy; ``unhealthy_s`` later it is replaced.

``FakeLoad`` sends to its targets in turn like the Locust load: a record per send whose
outcome ``FakeCluster.answer`` decides by address, a request to a silent address recorded
only when its timeout ends, a send to a vacant slot recorded as not sent; ``retarget``
takes new addresses.  ``FakeProber`` snapshots the cluster's state every ``period_s``.
Every call that matters lands in ``calls``, in order.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from serve_chaos.harness.faults import HealthCheckFailure
from serve_chaos.harness.faults.base import FaultPlan, actor_victim, record
from serve_chaos.harness.observe.history import FaultRecord
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import ActionRecord, Capabilities, ClusterStatus, Endpoints, NodeInfo, PodInfo
from serve_chaos.runtime.errors import ServeChaosError

PODS = (PodInfo("head", "head", "node-head", "10.0.0.10", "Running", True, "uid-head", 0),
        PodInfo("worker-1", "worker", "node-w1", "10.0.0.20", "Running", True, "uid-w1", 0))
FRONT = "http://front"
HEAD = "http://head"
VACANT = "slot_vacant"


def standard_pods(workers: int = 1, redis: bool = False) -> list[PodInfo]:
    """A head, ``workers`` workers (``worker-1``...) and optionally Redis, each on its own node."""
    pods = [PODS[0]] + [PodInfo(f"worker-{i}", "worker", f"node-w{i}", f"10.0.0.{19 + i}", "Running", True,
                                f"uid-w{i}", 0) for i in range(1, workers + 1)]
    if redis:
        pods.append(PodInfo("redis", "redis", "node-head", "10.0.0.5", "Running", True, "uid-redis", 0))
    return pods


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
    mutex: threading.RLock = field(default_factory=threading.RLock)
    pod_list: list[PodInfo] = field(default_factory=lambda: list(PODS))
    #: Ready nodes no pod starts on: where a lost node's pods come back.
    spare_nodes: tuple[str, ...] = ()
    #: A lost pod's replacement: created ``recreate_s`` after the loss, ready ``ready_s`` later (s).
    recreate_s: float = 0.3
    ready_s: float = 0.3
    rename_on_recreate: bool = False
    #: A replica whose health check fails is replaced this long after (s).
    unhealthy_s: float = 0.3
    #: The Serve config the fake reports (None: SleepyPid with ``replicas``).
    config: dict[str, Any] | None = None
    lost_nodes: set[str] = field(default_factory=set)
    #: Every pod incarnation that existed, by address: a request to a gone one times out.
    dead_addresses: set[str] = field(default_factory=set)
    names: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        #: Every node the fake knows, in order: where pods may come back.
        self.node_names = list(dict.fromkeys([p.node for p in self.pod_list] + list(self.spare_nodes)))
        for _ in range(self.replicas):
            self._spawn()

    # ------------------------------------------------------------------ state
    def _pod(self, name: str) -> PodInfo:
        return next(p for p in self.pod_list if p.name == name)

    def _serving(self) -> list[PodInfo]:
        return [p for p in self.pod_list if p.role in ("head", "worker") and p.phase == "Running" and p.ready]

    def _spawn(self, pod: str | None = None) -> None:
        with self.mutex:
            serving = self._serving()
            if pod is None:
                if not serving:
                    return
                # The emptiest serving pod, first in the list on a tie (spreading, deterministic).
                count = {p.name: sum(a["pod"] == p.name for a in self.alive) for p in serving}
                pod = min(serving, key=lambda p: count[p.name]).name
            self.serial += 1
            self.alive.append({"role": "replica", "actor_id": f"a{self.serial}", "pid": self.serial,
                               "name": f"SERVE_REPLICA::app#d#{self.serial}", "pod": pod, "node_ip": pod,
                               "state": "RUNNING", "replica_id": f"r{self.serial}"})

    def _respawn(self) -> None:
        """Serve replaces a killed replica -- unless a heal already did."""
        if len(self.alive) < self.replicas:
            self._spawn()

    def url_of(self, pod: PodInfo) -> str:
        return f"http://{pod.ip}"

    def answer(self, url: str) -> str | None:
        """The error class a request to ``url`` meets now (None: it succeeds)."""
        with self.mutex:
            if self.broken or not self.alive:
                return "5xx"
            if url == FRONT:
                return None
            if url == HEAD:
                return None if self._pod("head").ready else "refused"
            pod = next((p for p in self.pod_list if self.url_of(p) == url), None)
            if pod is None or pod.phase == "Lost":
                return "timeout" if url in self.dead_addresses or pod is not None else "refused"
            return None if pod.ready else "refused"

    def request_ok(self) -> bool:
        return self.answer(FRONT) is None

    def snapshot(self, t: float) -> Snapshot:
        with self.mutex:
            serving = self._serving()
            actors = list(self.alive) + [
                {"role": "proxy", "actor_id": f"p-{p.uid}", "pid": 50 + i, "name": f"P{i}", "pod": p.name,
                 "node_ip": p.name, "state": "HEALTHY"} for i, p in enumerate(serving)] + [
                {"role": "controller", "actor_id": "c", "pid": 60, "name": "SERVE_CONTROLLER_ACTOR", "pod": "head",
                 "node_ip": "head", "state": "ALIVE"}]
            pods = [p.to_dict() for p in self.pod_list]
        return Snapshot(t=t, t_end=t + 0.001, serve_ok=True, actors_ok=True, nodes_ok=True, pods_ok=True,
                        app_status="RUNNING", replicas_running=sum(a["role"] == "replica" for a in actors),
                        actors=actors, pods=pods)

    # ------------------------------------------------------------------ pods coming back
    def _lose(self, pod: PodInfo) -> None:
        """A pod incarnation dies where it stands: its address goes silent, its actors go."""
        with self.mutex:
            self.dead_addresses.add(self.url_of(pod))
            self.alive = [a for a in self.alive if a["pod"] != pod.name]
            self._replace_pod(pod, replace(pod, phase="Lost", ready=False))

    def _replace_pod(self, old: PodInfo, new: PodInfo) -> None:
        self.pod_list = [new if p.name == old.name and p.uid == old.uid else p for p in self.pod_list]

    def _free_node(self, home: str) -> str | None:
        occupied = {p.node for p in self.pod_list if p.phase != "Lost"}
        for node in (home, *self.node_names):
            if node not in self.lost_nodes and node not in occupied:
                return node
        return None

    def _recreate(self, name: str, home: str) -> None:
        """The lost pod's next incarnation on a free Ready node (none free: it never comes back)."""
        with self.mutex:
            node = self._free_node(home)
            if node is None:
                self.calls.append(f"unplaced:{name}")
                return
            old = self._pod(name)
            n = next(self.names)
            new = PodInfo(f"{old.role}-r{n}" if self.rename_on_recreate else old.name, old.role, node,
                          f"10.0.1.{n}", "Running", False, f"uid-{old.name}-{n}", 0)
            self._replace_pod(old, new)
        threading.Timer(self.ready_s, self._ready, args=(new,)).start()

    def _ready(self, pod: PodInfo) -> None:
        with self.mutex:
            if pod not in self.pod_list:
                return
            self._replace_pod(pod, replace(pod, ready=True))
            while len(self.alive) < self.replicas:
                self._spawn(pod.name)

    def fail_health(self, pod: str) -> dict[str, Any]:
        """One replica on ``pod`` fails its health check; Serve replaces it ``unhealthy_s`` later."""
        with self.mutex:
            victim = next(a for a in self.alive if a["pod"] == pod)

        def replace_it() -> None:
            with self.mutex:
                if victim in self.alive:
                    self.alive.remove(victim)
                    self._spawn(pod)

        threading.Timer(self.unhealthy_s, replace_it).start()
        return victim

    # ------------------------------------------------------------------ the protocol
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(ready_timeout_s=5.0, kill_node=True, kill_redis=True)

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
        with self.mutex:
            return list(self.pod_list)

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(p.node, "Lost" if p.node in self.lost_nodes else "Ready", (p.name,)) for p in self.pods()]

    def endpoints(self) -> Endpoints:
        with self.mutex:
            pods = {p.name: self.url_of(p) for p in self.pod_list if p.role != "redis" and p.phase != "Lost"}
        return Endpoints(FRONT, "http://dashboard", pods, {"head": HEAD})

    def settings(self) -> dict[str, Any]:
        return {"target": "fake", "gcs_ft": True}

    def serve_config(self) -> dict[str, Any]:
        from serve_chaos.runtime.app.serve_config import SleepyPidConfig

        return self.config or SleepyPidConfig(num_replicas=self.replicas).to_serve_config()

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        return ActionRecord("apply_serve_config", "serve", time.time(), time.time())

    def status(self) -> ClusterStatus:
        return ClusterStatus("fake", "fake", "fake", True, FRONT, "http://dashboard", tuple(self.pods()), ())

    def kill_pod(self, pod: str, graceful: bool = True, grace_period_s: float = 30.0,
                 down_for_s: float | None = None) -> ActionRecord:
        """Only Redis here: SIGKILLed and held down until ``heal``."""
        t = time.time()
        self.calls.append(f"kill_pod:{pod}")
        victim = self._pod(pod)
        if victim.role != "redis":
            raise ServeChaosError("the fake deletes only Redis")
        with self.mutex:
            self._replace_pod(victim, replace(victim, phase="Failed", ready=False))
        return ActionRecord("kill_pod", pod, t, time.time(), {"uid": victim.uid})

    def kill_node(self, node: str, replacement_delay_s: float = 10.0) -> ActionRecord:
        """Lose ``node`` (``replacement_delay_s`` is ignored: the fake's pods return after ``recreate_s``)."""
        t = time.time()
        self.calls.append(f"kill_node:{node}")
        if node in self.lost_nodes:
            raise ServeChaosError(f"node {node} is Lost, not Ready")
        with self.mutex:
            self.lost_nodes.add(node)
            victims = [p for p in self.pod_list if p.node == node and p.phase != "Lost"]
            for pod in victims:
                self._lose(pod)
        for pod in victims:
            threading.Timer(self.recreate_s, self._recreate, args=(pod.name, node)).start()
        return ActionRecord("kill_node", node, t, time.time(), {"pods": [p.name for p in victims]})

    def partition_pod(self, pod: str, reject: bool = False) -> ActionRecord:
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

    def set_ray_options(self, options: Any, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        return ActionRecord("set_ray_options", "cluster", time.time(), time.time())

    def heal(self) -> list[ActionRecord]:
        """Undo what is in effect: requests work again, missing replicas come back, lost
        nodes return (empty, Ready), Redis comes back as a new incarnation."""
        self.calls.append("heal")
        with self.mutex:
            missing = self.replicas - len(self.alive) if self._serving() else 0
            changed = self.broken or missing > 0 or bool(self.lost_nodes)
            self.broken = False
            actions = [ActionRecord("heal_node", n, time.time(), time.time()) for n in sorted(self.lost_nodes)]
            self.lost_nodes.clear()
            for pod in [p for p in self.pod_list if p.role == "redis" and p.phase == "Failed"]:
                self._replace_pod(pod, replace(pod, phase="Running", ready=True, uid=f"{pod.uid}+"))
                actions.append(ActionRecord("release_redis", pod.name, time.time(), time.time()))
        for _ in range(max(0, missing)):
            self._spawn()
        if changed and not actions:
            actions.append(ActionRecord("heal", "cluster", time.time(), time.time()))
        return actions

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        return []

    def wait_ready(self, timeout_s: float | None = None) -> None:
        self.calls.append("wait_ready")


class FakeHealthCheckFailure(HealthCheckFailure):
    """``HealthCheckFailure`` switched through the fake instead of the app's HTTP route; the
    plan, the heal and the check of what it did are the real fault's."""

    def inject(self, cluster: FakeCluster, plan: FaultPlan) -> FaultRecord:  # type: ignore[override]
        t0 = time.time()
        victim = cluster.fail_health(plan.params["pod"])
        plan.victims = [actor_victim(victim)]
        action = ActionRecord("health_switch", victim["name"], t0, time.time(), {"pid": victim["pid"]})
        return record(plan, action, time.time())


class FakeLoad:
    """Sends to its targets in turn every ``interval_s`` (s) until stopped, one record per send
    (``t`` the intended time of the send, as Locust records it)."""

    def __init__(self, cluster: FakeCluster, out: Path, targets: list[dict[str, Any]] | None = None,
                 interval_s: float = 0.02, timeout_s: float = 5.0) -> None:
        self.cluster, self.out, self.interval_s, self.timeout_s = cluster, out, interval_s, timeout_s
        self.targets = [dict(t) for t in (targets or [{"name": "front", "url": FRONT}])]
        self.retargets: list[list[dict[str, Any]]] = []
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

    def retarget(self, targets: list[dict[str, Any]]) -> None:
        assert [t["name"] for t in targets] == [t["name"] for t in self.targets]
        self.targets = [dict(t) for t in targets]
        self.retargets.append(self.targets)

    def set_rates(self, rates: list[tuple[float, float]]) -> None:
        self.cluster.calls.append(f"load.set_rates {[(round(t - time.time()), r) for t, r in rates]}")

    def _send(self, seq: int, intended: float) -> tuple[float, dict[str, Any]]:
        """When the outcome is known (epoch s) and the record of the send meant for ``intended``."""
        target = self.targets[seq % len(self.targets)]
        t = time.time()
        rec = {"seq": seq, "t": intended, "t_sent": t, "endpoint": target["name"], "ok": False, "error": None,
               "status": None, "pid": None, "pod": target.get("pod"), "role": target.get("role"),
               "latency_ms": 1.0, "address": target.get("url"), "incarnation": target.get("incarnation")}
        if target.get("url") is None:
            return t, {**rec, "t_sent": None, "latency_ms": None, "error": VACANT}
        error = self.cluster.answer(target["url"])
        rec.update(ok=error is None, error=error, status={None: 200, "5xx": 503}.get(error))
        return (t + self.timeout_s if error == "timeout" else t), rec

    def _loop(self) -> None:
        # An open model like Locust's: send i is meant for t0 + i * interval_s, whenever it goes
        # out (History.judged_until counts on that schedule).
        seq, t0 = 0, time.time()
        pending: list[tuple[float, dict[str, Any]]] = []
        with self.out.open("a") as fh:
            while not self.stopped.is_set():
                intended = t0 + seq * self.interval_s
                time.sleep(max(0.0, intended - time.time()))
                pending.append(self._send(seq, intended))
                now = time.time()
                due = [r for when, r in pending if when <= now]
                pending = [(when, r) for when, r in pending if when > now]
                fh.writelines(json.dumps(r) + "\n" for r in due)
                fh.flush()
                seq += 1
            fh.writelines(json.dumps(r) + "\n" for _when, r in pending)  # in flight at stop: recorded


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
    return {"load_factory": lambda spec, targets, out, max_s, markers, traffic: FakeLoad(
                cluster, out, targets, timeout_s=spec.timeout_s),
            "prober_factory": lambda dashboard, pods_fn, out: FakeProber(cluster),
            "served_by_factory": lambda dashboard, replicas_fn, out, prefix: NoServedBy(),
            "start_probe": lambda dashboard, snap: {}}
