"""Faults of pods and nodes: a pod deleted, a node lost, the Redis pod held down."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from serve_chaos.harness.faults.base import Fault, FaultNotApplicable, FaultPlan, actor_victim, pick, pod_victim, pod_victims, record, serving_pods
from serve_chaos.harness.observe.history import FaultRecord
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo


@dataclass(frozen=True)
class PodKill(Fault):
    """Delete a pod like ``kubectl delete pod``: preStop ``ray stop`` (workers), SIGTERM,
    grace period, SIGKILL; the supervisor recreates it.  ``graceful=False`` is a force delete."""

    name: ClassVar[str] = "pod_kill"
    requires: ClassVar[tuple[str, ...]] = ("kill_pod",)
    summary: ClassVar[str] = "delete one pod (kubectl delete pod)"
    aimable: ClassVar[bool] = True
    pod_role: str = "worker"
    graceful: bool = True
    grace_period_s: float = 30.0
    #: The head without GCS FT: every Ray pod and Serve actor is expected to be replaced.
    restarts_cluster: bool = False

    def for_app(self, app: AppSpec, deployment: str | None) -> "Fault":
        # There is one head: aiming it at a deployment would change nothing.
        return self if self.pod_role == "head" else super().for_app(app, deployment)

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        if self.pod_role == "head":
            candidates = [p for p in pods if p.role == "head" and p.phase == "Running"]
        else:
            candidates = serving_pods(snap, pods, self.pod_role, self.deployment)
        pod = pick(candidates, rng, f"Running {self.pod_role} pod hosting replicas")
        if self.restarts_cluster:
            victims = pod_victims(snap, pods, {p.name for p in pods if p.role in ("head", "worker")})
        else:
            victims = pod_victims(snap, pods, {pod.name})
        if pod.role == "head" and not self.restarts_cluster:
            victims += [actor_victim(a) for a in snap.actors if a["role"] == "controller" and a.get("pod") != pod.name]
        how = "graceful" if self.graceful else "force"
        return FaultPlan(self.name, f"delete pod {pod.name} ({how}) on {pod.node}: "
                                    f"{sum(v['role'] == 'replica' for v in victims)} replicas on it",
                         victims, {"pod": pod.name, "graceful": self.graceful, "grace_period_s": self.grace_period_s})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_pod(plan.params["pod"], graceful=self.graceful, grace_period_s=self.grace_period_s)
        return record(plan, action)

    def describe(self) -> str:
        return f"delete a {self.pod_role} pod ({'graceful' if self.graceful else 'force'})" + self.aim_text()


@dataclass(frozen=True)
class NodeLoss(Fault):
    """Lose a node abruptly: its network goes silent, then its pods are SIGKILLed; a
    replacement pod comes up on a spare node after ``replacement_delay_s``."""

    name: ClassVar[str] = "node_loss"
    requires: ClassVar[tuple[str, ...]] = ("kill_node",)
    summary: ClassVar[str] = "lose a worker node (network cut, then SIGKILL)"
    aimable: ClassVar[bool] = True
    pod_role: str = "worker"
    replacement_delay_s: float = 10.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        serving = serving_pods(snap, pods, self.pod_role, self.deployment)
        # Soft spreading may put every replica on the head (6/0/0 was seen): losing a
        # worker node then costs its pod and proxy only -- still a node loss to survive.
        note = "" if serving else "; soft spreading left no replica on any worker node"
        running = [p for p in pods if p.role == self.pod_role and p.phase == "Running"]
        pod = pick(serving or running, rng, f"Running {self.pod_role} node")
        on_node = {p.name for p in pods if p.node == pod.node}
        victims = pod_victims(snap, pods, on_node)
        ray_nodes = [n for n in snap.nodes if n.get("pod") in on_node]
        return FaultPlan(self.name, f"lose node {pod.node} (pods {', '.join(sorted(on_node))}; "
                                    f"{sum(v['role'] == 'replica' for v in victims)} replicas{note})",
                         victims, {"node": pod.node, "replacement_delay_s": self.replacement_delay_s,
                                   "ray_node_ids": [n["node_id"] for n in ray_nodes]})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_node(plan.params["node"], replacement_delay_s=self.replacement_delay_s)
        return record(plan, action)


@dataclass(frozen=True)
class RedisLoss(Fault):
    """SIGKILL the Redis pod (the GCS store) and keep it down for ``duration_s``."""

    name: ClassVar[str] = "redis_loss"
    requires: ClassVar[tuple[str, ...]] = ("kill_redis",)
    summary: ClassVar[str] = "kill Redis (the GCS store) while the head is up; it returns after a while"
    duration_s: float = 20.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        redis = pick([p for p in pods if p.role == "redis" and p.phase == "Running"], rng, "Running Redis pod")
        return FaultPlan(self.name, f"kill {redis.name} for {self.duration_s:g} s", [pod_victim(redis)],
                         {"pod": redis.name, "duration_s": self.duration_s})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_pod(plan.params["pod"], graceful=False, down_for_s=self.duration_s)
        return record(plan, action)

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        # Release the hold now (the supervisor would also let it go by itself).
        return cluster.heal()


@dataclass(frozen=True)
class GcsCrash(Fault):
    """The GCS process alone crashes: SIGKILL ``gcs_server`` in the head pod (its store, Redis or RocksDB, stays).
    ``ray start --block`` then ends the head's other Ray processes and exits (Ray 2.60
    ``scripts/scripts.py`` start: "Some Ray subprocesses exited unexpectedly ... Remaining
    processes will be killed" for any exit code but 0 and SIGTERM's), so the head's container
    restarts in place.  KubeRay's TestRayServiceGCSFaultTolerance (v1.7.0
    ``ray-operator/test/e2erayservice/rayservice_ha_test.go``) ends the GCS with ``pkill gcs_server``
    (SIGTERM, which ``ray start --block`` counts as expected) and expects the same head pod with
    RestartCount 1; here it is a crash (SIGKILL).  KubeRay leaves the Ray pods' restartPolicy at
    the default (Always) unless autoscaler v2 is on (``controllers/ray/common/pod.go``).  Victims:
    the head pod's incarnation (its restart count goes up) and every Serve actor on it."""

    name: ClassVar[str] = "gcs_crash"
    requires: ClassVar[tuple[str, ...]] = ("kill_process",)
    summary: ClassVar[str] = "SIGKILL gcs_server in the head pod (the head container restarts in place)"
    process: str = "gcs_server"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        head = pick([p for p in pods if p.role == "head" and p.phase == "Running"], rng, "Running head pod")
        workers = {p.name for p in pods if p.role == "worker"}
        local: dict[str, list[str]] = {}
        for actor in snap.actors:
            if actor["role"] == "replica" and actor.get("state") == "RUNNING" and actor.get("pod") in workers:
                local.setdefault(str(actor["pod"]), []).append(str(actor.get("replica_id")))
        return FaultPlan(self.name, f"kill -9 {self.process} in {head.name} (the GCS store stays)",
                         pod_victims(snap, pods, {head.name}),
                         {"pod": head.name, "process": self.process, "worker_replicas": local})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        return record(plan, cluster.kill_process(plan.params["pod"], self.process))


@dataclass(frozen=True)
class IngressCrash(Fault):
    """Serve's HAProxy crashes on one worker pod: SIGKILL its ``haproxy`` processes (with
    ``RAY_SERVE_ENABLE_HA_PROXY=1`` each node's ``HAProxyManager`` actor runs HAProxy as its child,
    Ray 2.60 ``serve/_private/haproxy.py`` ``_start_and_wait_for_haproxy``).  The manager's
    ``check_health`` answers False once its HAProxy is gone, so Serve's proxy health checks replace
    the manager.  Victims: the pod's proxy (the manager); its replicas stay."""

    name: ClassVar[str] = "ingress_crash"
    requires: ClassVar[tuple[str, ...]] = ("kill_process", "serve_haproxy")
    summary: ClassVar[str] = "SIGKILL Serve's HAProxy in a worker pod (its HAProxyManager stays)"
    aimable: ClassVar[bool] = True
    process: str = "haproxy"
    pod_role: str = "worker"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        pod = pick(serving_pods(snap, pods, self.pod_role, self.deployment), rng,
                   f"Running {self.pod_role} pod hosting replicas")
        proxies = [actor_victim(a) for a in snap.actors if a.get("pod") == pod.name and a["role"] == "proxy"]
        if not proxies:
            raise FaultNotApplicable(f"no Serve proxy on {pod.name} right now")
        return FaultPlan(self.name, f"kill -9 {self.process} in {pod.name} (its proxy pid {proxies[0]['pid']} stays)",
                         proxies, {"pod": pod.name, "process": self.process})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        return record(plan, cluster.kill_process(plan.params["pod"], self.process))


@dataclass(frozen=True)
class NodeDrain(Fault):
    """Spot preemption with notice: Ray is told to drain a worker node (``ray drain-node
    --reason DRAIN_NODE_REASON_PREEMPTION --deadline-remaining-seconds D``, what the autoscaler
    calls), and the node is lost at the deadline as in ``node_loss``.  ``duration_s`` is the
    deadline (s): the engine ends the fault -- loses the node -- then, and judges recovery
    from there."""

    name: ClassVar[str] = "node_drain"
    requires: ClassVar[tuple[str, ...]] = ("drain_node", "kill_node")
    summary: ClassVar[str] = "drain a worker node with a deadline, then lose it at the deadline"
    aimable: ClassVar[bool] = True
    reason: ClassVar[str] = "DRAIN_NODE_REASON_PREEMPTION"
    pod_role: str = "worker"
    duration_s: float = 45.0
    replacement_delay_s: float = 10.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        # The autoscaler drains worker nodes only; Ray would accept draining the head too.
        pod = pick(serving_pods(snap, pods, self.pod_role, self.deployment), rng,
                   f"Running {self.pod_role} pod hosting replicas")
        on_node = {p.name for p in pods if p.node == pod.node}
        victims = pod_victims(snap, pods, on_node)
        return FaultPlan(self.name, f"drain {pod.name} on {pod.node} with a {self.duration_s:g} s deadline, then lose "
                                    f"the node ({sum(v['role'] == 'replica' for v in victims)} replicas on it)",
                         victims, {"pod": pod.name, "node": pod.node, "deadline_s": self.duration_s,
                                   "replacement_delay_s": self.replacement_delay_s,
                                   "ray_node_ids": [n["node_id"] for n in snap.nodes if n.get("pod") in on_node]})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        message = f"serve-chaos: preemption of {plan.params['node']} in {self.duration_s:g} s"
        action = cluster.drain_node(plan.params["pod"], self.reason, self.duration_s, message)
        return record(plan, action)

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """The deadline: the preempted node goes away, as a cloud provider takes it."""
        return [cluster.kill_node(record.params["node"], replacement_delay_s=self.replacement_delay_s)]

    def describe(self) -> str:
        return (f"drain a {self.pod_role} node with a {self.duration_s:g} s deadline (preemption notice), then lose "
                "it" + self.aim_text())
