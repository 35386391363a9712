"""Undoing faults: this harness's (``heal``), a dead harness's (``reclaim``), through one table
of healers keyed by the lease's fault kind."""

from __future__ import annotations

import time
from typing import Any, Callable

from serve_chaos.runtime.cluster import ActionRecord, GRAY_FAULTS
from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError
from serve_chaos.runtime.kuberay.api import KubeApiError
from serve_chaos.runtime.kuberay.cluster.base import KubeRayBase


class KubeRayHealing(KubeRayBase):
    """Undoing faults: this harness's (``heal``), a dead harness's (``reclaim``), through one table of
    healers keyed by the lease's fault kind."""

    def heal(self) -> list[ActionRecord]:
        """Undo every fault this harness has in effect (its leases), each on its own: one that
        cannot be undone is said in one line at the end and keeps its lease for the next command."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.redis_held = False
        return self._heal_all([f for f in self.lease.faults() if self.lease.mine_fault(f)], reclaim=False)

    def _heal_before_teardown(self) -> None:
        """Undo what this harness has in effect without waiting for an upgrade to settle; what
        cannot be undone goes with the namespace (chaos objects, a held Redis, the lease)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        try:
            self._heal_all([f for f in self.lease.faults() if self.lease.mine_fault(f)], reclaim=True)
        except ServeChaosError:
            pass

    def _heal_all(self, faults: list[dict[str, Any]], reclaim: bool) -> list[ActionRecord]:
        records, failed = [], []
        for fault in faults:
            t0 = time.time()
            try:
                record = self._heal_fault(fault, reclaim)
            except ServeChaosError as err:
                failed.append(f"{fault['kind']} {fault['target']}: {err.what}")
                continue
            if reclaim:
                records.append(ActionRecord(f"reclaim_{fault['kind']}", fault["target"], t0, time.time(),
                                            {"owner": f"PID {fault['pid']} on {fault['host']}",
                                             **(record.details if record else {})}))
            elif record is not None:
                records.append(record)
        if failed:
            raise InfrastructureError(f"healing left {len(failed)} fault(s) in effect ({'; '.join(failed)})",
                                      hint="their leases stay: the next serve-chaos command on this cluster heals "
                                           "them again (`serve-chaos status --target kind` lists them)")
        return records

    def _heal_fault(self, fault: dict[str, Any], reclaim: bool = False) -> ActionRecord | None:
        """Undo one leased fault (this harness's, or a dead one's) and drop its lease."""
        healers: dict[str, Callable[[dict[str, Any]], ActionRecord | None]] = {
            "node_loss": self._heal_node,
            "hold": self._heal_hold,
            "freeze": self._thaw,
            "serve_config": self._restore_serve_config,
            "drain": self._replace_drained,
            **{kind: self._heal_gray for kind in GRAY_FAULTS},
            # A dead harness's upgrade has nothing to undo (the new spec stays); ours is awaited.
            "upgrade": (lambda f: None) if reclaim else self._settle_upgrade,
        }
        healer = healers.get(fault["kind"])
        record = healer(fault) if healer is not None else None
        self.lease.drop_faults(fault["kind"], fault["target"])
        return record

    def _heal_node(self, fault: dict[str, Any]) -> ActionRecord | None:
        node = fault["target"]
        if node in self.killed_nodes:
            self.killed_nodes.remove(node)
        t0 = time.time()
        if not self._restore_node(node):
            return None
        return ActionRecord("heal_node", node, t0, time.time(), {})

    def _restore_serve_config(self, fault: dict[str, Any]) -> ActionRecord | None:
        """Back to the config desired before the first change; readiness then waits until it is deployed."""
        original = (fault.get("data") or {}).get("original")
        if not original or not self._exists():
            return None
        t0 = time.time()
        self._set_serve_config(original)
        return ActionRecord("restore_serve_config", self.ray.name, t0, time.time(),
                            {"change": (fault.get("data") or {}).get("change", "")})

    def _replace_drained(self, fault: dict[str, Any]) -> ActionRecord | None:
        """A drained Ray node cannot be undrained: a pod that is still there is force-deleted, so
        KubeRay recreates it with a fresh Ray node (a deleted one needs nothing)."""
        pod = fault["target"]
        if not self._pod_exists(pod):
            return None
        t0 = time.time()
        try:
            self.core.delete_namespaced_pod(pod, self.ns, grace_period_seconds=0)
        except KubeApiError as err:
            if err.status != 404:
                raise
            return None
        return ActionRecord("replace_drained_pod", pod, t0, time.time(),
                            {"node_id": (fault.get("data") or {}).get("node_id")})

    def _heal_hold(self, fault: dict[str, Any]) -> ActionRecord | None:
        t0 = time.time()
        deploy = self.api.read("Deployment", self.ray.redis_service, self.ns)
        if deploy is None or (deploy.spec.replicas or 0) > 0:
            return None  # the hold ended by itself (its timer) or Redis is gone with the namespace
        self._scale_redis(1)
        return ActionRecord("release_redis", self.ray.redis_service, t0, time.time(), {})
