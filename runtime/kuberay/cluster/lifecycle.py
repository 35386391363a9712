"""Bringing the RayService up (or adopting a running one), the lock and leases, GCS FT
switches and RayService upgrades, and taking it all down."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

from serve_chaos.runtime.cluster import ActionRecord, RayOptions
from serve_chaos.runtime.errors import ConfigError, ServeChaosError
from serve_chaos.runtime.kuberay import safety
from serve_chaos.runtime.kuberay.api import RAYCLUSTER_PLURAL, RAY_GROUP, RAY_PLURAL, RAY_VERSION
from serve_chaos.runtime.kuberay.cluster.base import KubeRayBase
from serve_chaos.runtime.kuberay.manifests import merge_change
from serve_chaos.runtime.kuberay.status import RunningShape
from serve_chaos.runtime.kuberay.cluster.targetconfig import GCS_FT_DELETION_TIMEOUT_S, UPGRADE_SETTLE_TIMEOUT_S
from serve_chaos.runtime.waiting import NotYet, wait_until


class KubeRayLifecycle(KubeRayBase):
    """Bringing the RayService up (or adopting a running one), the lock and leases, GCS FT switches and
    RayService upgrades, and taking it all down."""

    def attach(self) -> bool:
        """Whether our RayService is there; if so, heal what a dead run left in effect first."""
        if not self._exists():
            return False
        self.reclaim()
        return True

    def lock(self, command: str) -> None:
        self.reclaim()
        self.lease.take(command)

    def unlock(self) -> None:
        try:
            self.lease.release()
        except ServeChaosError:
            pass  # a namespace that is gone holds no lock

    def reclaim(self) -> list[ActionRecord]:
        """Heal the faults a dead harness left in effect (recorded in the lease ConfigMap)."""
        return self._heal_all(self.lease.orphaned(), reclaim=True)

    def interference(self) -> list[str]:
        found = [f"a {f['kind'].replace('_', ' ')} of {f['target']} by PID {f['pid']} on {f['host']} is in effect"
                 for f in self.lease.faults() if (f["host"], f["pid"]) != (self.lease.host, os.getpid())]
        holder = self.lease.holder()
        if holder is not None and not self.lease.mine(holder):
            found.append(f"the cluster is locked by {holder.describe()}")
        if self.ray.gcs_ft != "off":
            deploy = self.api.read("Deployment", self.ray.redis_service, self.ns)
            if deploy is not None and (deploy.spec.replicas or 0) == 0:
                found.append("Redis is scaled to 0 (held down)")
        found += [f"node {n.name} is not Ready" for n in self.nodes() if n.state != "Ready" and n.pods]
        placement = self.placement_problem()
        if placement:
            found.append(placement)
        return found

    def _wait_namespace_usable(self, timeout_s: float = GCS_FT_DELETION_TIMEOUT_S + 60) -> None:
        """A namespace being deleted refuses new objects (403): wait until it is gone."""
        def check() -> None:
            ns = self.api.read("Namespace", self.ns, "")
            safety.check_namespace(ns, self.ns)
            if ns is not None and ns.metadata.deletion_timestamp:
                raise NotYet(f"namespace {self.ns} is still terminating")

        wait_until(check, timeout_s, period_s=2.0, what=f"namespace {self.ns} to be usable",
                   hint=f"`kubectl get namespace {self.ns} -o yaml` shows what holds it")

    def up(self, timeout_s: float = 900.0) -> None:
        """Apply the namespace, Redis, the app and the RayService, pin the dashboard, wait until it serves.

        A running RayService of ours is attached to, never re-applied: what a dead run left is
        healed, its shape adopted (or refused when it differs from what was asked), and the
        wait is for it to serve.  Re-applying this process's defaults would roll a new
        RayCluster, never converge (KubeRay ignores a new replica count: ``utils/util.go``
        GenerateHashWithoutReplicasAndWorkersToDelete), and overwrite the app-code record
        before anyone compared it."""
        self.front_door_url()  # a cluster we cannot reach is said before anything is written
        self._wait_namespace_usable()
        self.created = not self.attach()
        if self.created:
            self.ray = replace(self.ray, node_selectors=self.nodes_have_roles())
            self.apply(self.manifests())
        else:
            self.adopt()
        self.wait_ready(timeout_s)

    def adopt(self) -> None:
        """Take the running RayService's shape where nothing else was asked; refuse, in one line,
        one whose asked settings or app code differ.  Writes nothing."""
        running = RunningShape.of(self._rayservice())
        asked = {"workers": self.ray.workers, "gcs_ft": self.ray.gcs_ft, "ray_version": self.ray.ray_version}
        differ = [f"{key} {getattr(running, key)} (asked {value})" for key, value in asked.items()
                  if key in self.target.asked and getattr(running, key) != value]
        if differ:
            raise ConfigError(f"the running RayService {self.ns}/{self.ray.name} has {', '.join(differ)}",
                              hint="leave those options out to use it as it is, or `serve-chaos down --target kind` "
                                   "and bring it up again with them")
        want_code = self.ray.app.code_id()
        if running.app_code and running.app_code != want_code:
            raise ConfigError(f"the running cluster ({self.context}) carries other app code ({running.app_code}) than "
                              f"{self.ray.app.label()} needs ({want_code})",
                              hint="`serve-chaos down --target kind`, then run again (or `serve-chaos up` with the "
                                   "same --app, --app-dir and --image)")
        self.ray = replace(self.ray, workers=running.workers, gcs_ft=running.gcs_ft,
                           cluster_change=running.cluster_change, node_selectors=running.node_selectors,
                           ray_version=running.ray_version or self.ray.ray_version)

    def down(self, force: bool = False, timeout_s: float = GCS_FT_DELETION_TIMEOUT_S + 120) -> None:
        """Delete what we created.  The RayService goes first and its RayClusters must be gone
        before Redis: a GCS-FT RayCluster's finalizer runs a cleanup Job against Redis
        (``raycluster_controller.go``); deleting the namespace at once would leave it
        Terminating until that Job gives up."""
        holder = self.lease.holder() if self._exists() else None
        if holder is not None and not self.lease.mine(holder) and not force:
            raise ServeChaosError(f"the cluster is in use by {holder.describe()}",
                                  hint="wait until that run ends, or pass --force (it then ends as interrupted)")
        self._stop_forwarders()
        self._heal_before_teardown()
        ns = self.api.read("Namespace", self.ns, "")
        if ns is None:
            return
        safety.check_namespace(ns, self.ns)
        if self._exists():
            self.custom.delete_namespaced_custom_object(RAY_GROUP, RAY_VERSION, self.ns, RAY_PLURAL, self.ray.name)

        def clusters_gone() -> None:
            left = self.custom.list_namespaced_custom_object(RAY_GROUP, RAY_VERSION, self.ns, RAYCLUSTER_PLURAL)
            names = [c["metadata"]["name"] for c in left.get("items", [])]
            if names:
                raise NotYet(f"RayClusters still being deleted: {', '.join(names)}")

        wait_until(clusters_gone, timeout_s, period_s=2.0, what="the RayClusters to be deleted",
                   hint=f"`kubectl -n {self.ns} get rayclusters,jobs,pods`")
        self._delete_chaos_objects(timeout_s)
        self.core.delete_namespace(self.ns)

        def namespace_gone() -> None:
            if self.api.read("Namespace", self.ns, "") is not None:
                raise NotYet(f"namespace {self.ns} is still terminating")

        # Whatever uninstalls Chaos Mesh or KubeRay next must find nothing of ours left to finalize.
        wait_until(namespace_gone, timeout_s, period_s=1.0, what=f"namespace {self.ns} to be deleted",
                   hint=f"`kubectl get namespace {self.ns} -o yaml` shows what holds it")

    def _delete_chaos_objects(self, timeout_s: float) -> None:
        """Delete every Chaos Mesh object of ours and wait until Chaos Mesh's finalizer let them go
        (it recovers the pods first, ``controllers/common/finalizers``).  Deleting the namespace
        with them left, and then Chaos Mesh with it (``kind down``), would leave the namespace
        Terminating for good: nothing would remove their finalizers."""
        if self.gray.chaos_mesh_missing():
            return
        from serve_chaos.runtime.kuberay.api import CUSTOM_KINDS

        def ours() -> list[tuple[str, str]]:
            found = []
            for kind in ("StressChaos", "NetworkChaos"):
                group, version, plural = CUSTOM_KINDS[kind]
                listed = self.custom.list_namespaced_custom_object(group, version, self.ns, plural,
                                                                   label_selector=safety.MANAGED_SELECTOR)
                found += [(kind, o["metadata"]["name"]) for o in listed.get("items", [])]
            return found

        for kind, name in ours():
            self.api.delete_custom(kind, name, self.ns)

        def gone() -> None:
            left = ours()
            if left:
                raise NotYet(f"Chaos Mesh objects still finalizing: {', '.join(n for _, n in left)}")

        wait_until(gone, timeout_s, period_s=1.0, what="our Chaos Mesh objects to be deleted",
                   hint=f"`kubectl -n {self.ns} get stresschaos,networkchaos`: is Chaos Mesh's controller running?")

    def _stop_forwarders(self) -> None:
        for _uid, fwd, _port in self._forwarders.values():
            fwd.stop()
        self._forwarders.clear()

    def set_ray_options(self, options: RayOptions, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        """Switch GCS FT by re-applying the RayService; KubeRay rolls out a new RayCluster
        (a zero-downtime upgrade) and readiness waits until it is the active one.  The manifests
        write Redis GCS FT and Serve's own proxies only (``capabilities`` says why)."""
        for capability, asked in (("gcs_rocksdb", options.gcs_backend == "rocksdb"),
                                  ("serve_haproxy", options.ingress == "haproxy")):
            if asked:
                raise ServeChaosError(self.capabilities.why_not(capability))
        t0 = time.time()
        desired = serve_config or self.serve_config()
        self.ray = replace(self.ray, gcs_ft="options" if options.gcs_ft else "off")
        self.apply(self.manifests(desired))
        return ActionRecord("set_ray_options", self.ray.name, t0, time.time(), {"gcs_ft": options.gcs_ft})

    def upgrade_cluster(self, change: dict[str, Any]) -> ActionRecord:
        """Change the Ray pods' template (``change``: ``env``, ``labels``, ``image``) so KubeRay runs
        its zero-downtime upgrade: a pending RayCluster, its Serve ready, the Services switched,
        the old cluster deleted after its delay (``rayservice_controller.go`` shouldPrepareNewCluster,
        reconcilePromotionAndServingStatus, cleanUpRayClusterInstance).  Recorded on the RayService
        (annotation) so no later command rolls it back.  Leased (``upgrade``); ``heal`` waits until
        the new cluster serves and the old one is gone, and says so.  ``details``: ``change``,
        ``from_cluster`` (the active RayCluster before), ``generation`` (the RayService's)."""
        state = self.state()
        if state.pending:
            raise ServeChaosError(f"an upgrade is under way already (pending RayCluster {state.pending})",
                                  hint="wait until it completes (`serve-chaos status --target kind`)")
        merged = merge_change(self.ray.cluster_change, change)
        t0 = time.time()
        self.lease.add_fault("upgrade", self.ray.name, from_cluster=state.active, change=change)
        self.ray = replace(self.ray, cluster_change=merged)
        self.apply([o for o in self.manifests(self.serve_config()) if o["kind"] == "RayService"])
        generation = (self._rayservice().get("metadata") or {}).get("generation")
        return ActionRecord("upgrade_cluster", self.ray.name, t0, time.time(),
                            {"change": change, "from_cluster": state.active, "generation": generation})

    def _settle_upgrade(self, fault: dict[str, Any], timeout_s: float = UPGRADE_SETTLE_TIMEOUT_S) -> ActionRecord:
        """Wait until the upgrade is done: another cluster is active, none is pending, and the
        old RayCluster is gone (KubeRay issues the delete 60-64 s after the switch; with GCS FT
        the Redis-cleanup finalizer may hold it up to 300 s more)."""
        old = (fault.get("data") or {}).get("from_cluster")
        t0 = time.time()

        def done() -> str:
            state = self.state()
            if state.pending or not state.active or state.active == old:
                raise NotYet(f"RayCluster {state.pending or '?'} has not taken over from {old}")
            if old and self.api.read("RayCluster", old, self.ns) is not None:
                raise NotYet(f"the old RayCluster {old} is not deleted yet")
            return state.active

        new = wait_until(done, timeout_s, period_s=2.0, what="the RayService upgrade to complete",
                         hint=f"`kubectl -n {self.ns} get rayservice,rayclusters`")
        return ActionRecord("upgrade_settled", self.ray.name, t0, time.time(),
                            {"from_cluster": old, "to_cluster": new, "old_cluster_deleted": True,
                             "t_old_cluster_gone": time.time()})
