"""``K8sCluster``: the Cluster protocol on the k8s target -- ``serve_chaos.runtime.kuberay`` against a real control
plane and the real KubeRay operator on this machine.

Everything ``KubeRayCluster`` does runs unchanged through the real API server: server-side
apply, the RayService, KubeRay's pods and Services, exec and port-forward (through the API
server to the node agent's nodeserver), leases, events.  What differs, as the issue allows:
- how the cluster is made (``target.py``: ``serve-chaos k8s up``, or a run that needs one);
- where the harness reaches it: the Serve Service and the dashboard at their NodePorts on the
  control-plane node's address, as kind maps them to the host;
- node loss: the supervisor cuts the node's pods off and kills its agent and pods (kind's
  ``docker network disconnect`` + ``docker kill``), and brings it back on heal;
- no Chaos Mesh: the gray faults are skipped with that reason.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from serve_chaos.runtime.cluster import Capabilities
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.k8s import target as k8s_target
from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
from serve_chaos.runtime.kuberay.manifests import DASHBOARD_NODE_PORT, SERVE_NODE_PORT

NO_CHAOS_MESH = ("Chaos Mesh cannot run on the k8s target (it needs a container runtime: its daemon injects "
                 "through containerd); run gray faults on the local target or on kind")


class K8sCluster(KubeRayCluster):
    """The RayService under test on the k8s target's cluster ``running``."""

    def __init__(self, running: k8s_target.RunningCluster, config: KubeTargetConfig) -> None:
        self.running = running
        cp = running.control_plane_ip
        config = replace(config, kubeconfig=running.kubeconfig, context=None,
                         allowed_contexts=(*config.allowed_contexts, k8s_target.CONTEXT),
                         serve_url=f"http://{cp}:{SERVE_NODE_PORT}", dashboard_url=f"http://{cp}:{DASHBOARD_NODE_PORT}")
        super().__init__(config)
        self.name = "k8s"

    # ------------------------------------------------------------------ node loss, as kind's
    def _can_lose_nodes(self) -> bool:
        return True

    def _owns_nodes(self) -> bool:
        return True

    def _cut_node(self, node: str) -> float:
        return float(self.running.lose_node(node)["t_network_cut"])

    def _restore_node(self, node: str) -> bool:
        self.running.heal_node(node)
        return True

    @property
    def capabilities(self) -> Capabilities:
        base = super().capabilities
        reasons = {**base.reasons, **{c: NO_CHAOS_MESH for c in ("starve_cpu", "press_memory", "lose_packets",
                                                                  "delay_packets")}}
        return replace(base, kill_node=True, starve_cpu=False, press_memory=False, lose_packets=False,
                       delay_packets=False, reasons=reasons)

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        state = self.running.state
        binaries = state.get("binaries") or {}
        out.update(kubernetes_version=binaries.get("kubernetes_version"),
                   kuberay_version=binaries.get("kuberay_version"), k8s_cluster=state.get("label"))
        if binaries.get("kuberay_note"):
            out["kuberay_note"] = binaries["kuberay_note"]
        return out


def attach_or_fail() -> k8s_target.RunningCluster:
    found = k8s_target.find()
    if found is None:
        raise ServeChaosError("no k8s-target cluster is running", hint="start one with `serve-chaos k8s up`")
    return found


class K8sTarget:
    """The Cluster protocol on the k8s target, from nothing: ``up`` starts the control plane and the
    nodes when none is running (``target.start``) and then the RayService; ``down`` stops the whole
    cluster when this object started it, else removes only what ``KubeRayCluster.down`` removes
    (the RayService and our namespace).  Every other call goes to the ``K8sCluster`` inside."""

    name = "k8s"

    def __init__(self, config: KubeTargetConfig, labelled: bool = True,
                 progress: Callable[[str], None] = print, owner_pid: int | None = None) -> None:
        self.config = config
        self.labelled = labelled
        self.progress = progress
        #: A cluster started for a run dies with that run's process (the supervisor watches it).
        self.owner_pid = owner_pid
        self.inner: K8sCluster | None = None
        self.running: k8s_target.RunningCluster | None = None
        self.started = False
        self.created = False
        self.label: str | None = None

    def _bind(self, running: k8s_target.RunningCluster) -> K8sCluster:
        self.running = running
        self.inner = K8sCluster(running, self.config)
        self.label = f"{k8s_target.CONTEXT}/{running.layout.label}"
        return self.inner

    def attach(self) -> bool:
        running = k8s_target.find()
        if running is None:
            return False
        return self._bind(running).attach()

    def up(self) -> None:
        running = k8s_target.find()
        if running is None:
            workers = self.config.ray_config().workers
            running = k8s_target.start(workers, self.labelled, progress=self.progress, owner_pid=self.owner_pid)
            self.started = True
        inner = self._bind(running)
        inner.up()
        self.created = self.started or inner.created

    def down(self, force: bool = False) -> None:
        if self.inner is None and not self.attach():
            return
        assert self.inner is not None and self.running is not None
        if self.started:
            self.inner._stop_forwarders()
            k8s_target.stop(self.running)
            return
        self.inner.down(force=force)

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None:
            raise ServeChaosError("the k8s target's cluster is not up", hint="`serve-chaos k8s up`")
        return getattr(inner, name)
