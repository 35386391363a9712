"""Faults of the network: a pod partitioned from everything."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from serve_chaos.harness.checks import CheckResult, partition_effect
from serve_chaos.harness.faults.base import Fault, FaultPlan, pick, record, serving_pods
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo


@dataclass(frozen=True)
class PodPartition(Fault):
    """Cut one pod off the network (silent drops both ways) for ``duration_s``, then heal."""

    name: ClassVar[str] = "pod_partition"
    requires: ClassVar[tuple[str, ...]] = ("partition_pod",)
    summary: ClassVar[str] = "partition one worker pod from everything, then heal"
    aimable: ClassVar[bool] = True
    pod_role: str = "worker"
    duration_s: float = 30.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        pod = pick(serving_pods(snap, pods, self.pod_role, self.deployment), rng,
                    f"{self.pod_role} pod hosting replicas")
        ray_nodes = [n["node_id"] for n in snap.nodes if n.get("pod") == pod.name]
        # Nothing is expected to go away: the pod is only unreachable for a while.
        return FaultPlan(self.name, f"partition pod {pod.name} for {self.duration_s:g} s", [],
                         {"pod": pod.name, "duration_s": self.duration_s, "ray_node_ids": ray_nodes})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        return record(plan, cluster.partition_pod(plan.params["pod"]))

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        return [cluster.unpartition_pod(record.params["pod"])]

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        return partition_effect(history, record)

    def describe(self) -> str:
        return f"partition a {self.pod_role} pod for {self.duration_s:g} s, then heal" + self.aim_text()


@dataclass(frozen=True)
class PodReject(PodPartition):
    """Refuse every packet to and from one pod (TCP resets, ICMP unreachable) for ``duration_s``:
    what the other side sees is a connection error at once -- Ray reports an actor call that
    fails so as ActorUnavailableError (the actor may still be alive), not a timeout.

    Healing restarts the pod's Serve proxy (``ray.kill``; the controller starts a new one): after
    the refusal, on Ray 2.60, that proxy kept routing to the replica set it knew and never learned
    of the replicas Serve started on its own node -- measured, and left for the next scenario it
    would break.  Done after the measurements, like a controller's stale proxies."""

    name: ClassVar[str] = "pod_reject"
    summary: ClassVar[str] = "refuse every connection to and from one worker pod for a moment, then heal"
    heal_after_recovery: ClassVar[bool] = True
    duration_s: float = 4.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        plan = super().plan(snap, pods, rng)
        pod = plan.params["pod"]
        plan.params["proxies"] = [a["name"] for a in snap.actors
                                  if a["role"] == "proxy" and a.get("pod") == pod and a.get("name")]
        plan.description = f"refuse every packet of pod {pod} (TCP reset) for {self.duration_s:g} s"
        return plan

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        return record(plan, cluster.partition_pod(plan.params["pod"], reject=True))

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        actions = cluster.heal()
        proxies = record.params.get("proxies") or []
        if proxies:
            actions.append(cluster.kill_actor(proxies, "serve", no_restart=True, ignore_missing=True))
        return actions

    def describe(self) -> str:
        return (f"refuse every connection of a {self.pod_role} pod (TCP reset) for {self.duration_s:g} s, "
                "then heal" + self.aim_text())
