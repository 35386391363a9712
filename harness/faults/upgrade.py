"""Operator actions on the Ray cluster itself: a RayService upgrade (KubeRay's zero-downtime upgrade).

A change of the RayService's ``rayClusterConfig`` -- here an env var in the pods' template
-- makes KubeRay v1.7.0 bring up a second RayCluster, submit the Serve config to it, point
the Serve Service at it once its applications run, and delete the old cluster 60 s later
(``ray-operator/controllers/ray/rayservice_controller.go`` shouldPrepareNewCluster,
reconcileServe, reconcileServicesToReadyCluster, reconcilePromotionAndServingStatus,
cleanUpRayClusterInstance; KubeRay's docs "RayService" -> zero-downtime upgrade).  Every
Ray pod and every Serve actor of the active cluster is a victim: each must be replaced once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from serve_chaos.harness.checks import CheckResult
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN
from serve_chaos.harness.faults.base import Fault, FaultPlan, pod_victims, record
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo


@dataclass(frozen=True)
class RayServiceUpgrade(Fault):
    """Change the Ray pods' template (an env var whose value the seed picks) and let the
    operator roll a new cluster under the same Serve Service.  ``heal`` waits until the old
    cluster is deleted and records it (``upgrade_settled``), so it runs after recovery too."""

    name: ClassVar[str] = "rayservice_upgrade"
    requires: ClassVar[tuple[str, ...]] = ("upgrade_cluster",)
    summary: ClassVar[str] = "change the RayService's rayClusterConfig (a pod env var): KubeRay's zero-downtime upgrade"
    heal_after_recovery: ClassVar[bool] = True
    env_var: str = "SERVE_CHAOS_UPGRADE"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        ray_pods = {p.name for p in pods if p.role in ("head", "worker")}
        victims = pod_victims(snap, pods, ray_pods)
        token = f"{rng.getrandbits(32):08x}"
        replicas = sum(v["role"] == "replica" for v in victims)
        return FaultPlan(self.name, f"upgrade the RayService: env {self.env_var}={token} on every Ray pod; "
                                    f"{len(ray_pods)} pods and {replicas} replicas to be replaced",
                         victims, {"change": {"env": {self.env_var: token}}})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.upgrade_cluster(plan.params["change"])
        return record(plan, action)

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        return cluster.heal()


def old_cluster_deleted(history: History, fault: FaultRecord) -> CheckResult:
    """The old RayCluster is gone at the end: the heal saw KubeRay delete it (``upgrade_settled``)."""
    name = "upgrade.old_cluster_deleted"
    old = (fault.action.get("details") or {}).get("from_cluster")
    settled = [a for a in fault.heal_actions if a.get("action") == "upgrade_settled"]
    if not settled:
        return CheckResult(name, UNKNOWN, bound="deleted", detail="the heal recorded no settled upgrade")
    details = settled[-1].get("details") or {}
    ok = bool(details.get("old_cluster_deleted")) and details.get("from_cluster") == old
    return CheckResult(name, PASS if ok else FAIL, details.get("to_cluster"), bound="deleted",
                       detail=f"{old} -> {details.get('to_cluster')}" if ok else f"RayCluster {old} still there")
