"""Pods and nodes as the harness sees them, where they stand, and how the harness reaches them:
the Service's front door, the dashboard, per-pod port-forwards."""

from __future__ import annotations

from typing import Any, Callable

from serve_chaos.runtime.cluster import Capabilities, Endpoints, NodeInfo, PodInfo
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.kuberay import chaosmesh
from serve_chaos.runtime.kuberay.cluster.base import KubeRayBase
from serve_chaos.runtime.kuberay.manifests import SERVE_PORT, dashboard_service
from serve_chaos.runtime.kuberay.placement import placement_problem
from serve_chaos.runtime.kuberay.portforward import PodPortForwarder
from serve_chaos.runtime.kuberay.status import container_restarts, memory_limit
from serve_chaos.runtime.kuberay.cluster.targetconfig import DASHBOARD_PORT


class KubeRayPods(KubeRayBase):
    """Pods and nodes as the harness sees them, where they stand, and how the harness reaches them: the
    Service's front door, the dashboard, per-pod port-forwards."""

    @property
    def capabilities(self) -> Capabilities:
        node_loss = self._can_lose_nodes()
        no_chaos_mesh = self.gray.chaos_mesh_missing()
        return Capabilities(
            kill_pod=True,
            kill_node=node_loss,
            partition_pod=False,
            kill_actor=True,
            kill_redis=self.ray.gcs_ft != "off",
            switch_gcs_ft=True,
            direct_pod_endpoints=True,
            update_serve_config=True,
            drain_node=True,
            starve_cpu=no_chaos_mesh is None,
            press_memory=no_chaos_mesh is None,
            lose_packets=no_chaos_mesh is None,
            delay_packets=no_chaos_mesh is None,
            slow_process=True,
            upgrade_cluster=True,
            ready_timeout_s=600.0,
            reasons={
                **{c: no_chaos_mesh or "" for c in chaosmesh.FAULT_KINDS},
                "kill_node": "node loss on a non-kind cluster needs --node-loss-hook (a command that removes {node})",
                "partition_pod": "partitions are not implemented on the Kubernetes target (use the local target)",
                "kill_redis": "GCS fault tolerance is off: there is no Redis",
                "gcs_rocksdb": "the RocksDB GCS backend (KubeRay v1.7.0 gcsFaultToleranceOptions.backend, behind its "
                               "GCSFaultToleranceEmbeddedStorage feature gate) is not written into the manifests yet; "
                               "it runs on the local target",
                "serve_haproxy": "Serve's HAProxy ingress is not written into the RayService manifests yet; it runs "
                                 "on the local target",
            },
        )

    def pods(self) -> list[PodInfo]:
        out = []
        for role, pod in self._cluster_pods():
            status = pod.status
            ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions or []))
            phase = "Terminating" if pod.metadata.deletion_timestamp else (status.phase or "Pending")
            started = status.start_time.timestamp() if status.start_time else None
            out.append(PodInfo(name=pod.metadata.name, role=role, node=pod.spec.node_name or "",
                               ip=status.pod_ip or "", phase=phase, ready=ready, uid=pod.metadata.uid,
                               restarts=container_restarts(pod), started_at=started,
                               memory_limit=memory_limit(pod)))
        return out

    def nodes(self) -> list[NodeInfo]:
        pods = self.pods()
        out = []
        for node in self.core.list_node().items:
            ready = any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
            name = node.metadata.name
            out.append(NodeInfo(name=name, state="Ready" if ready else "Lost",
                                pods=tuple(p.name for p in pods if p.node == name),
                                labels=dict(node.metadata.labels or {})))
        return out

    def nodes_have_roles(self) -> bool:
        """Whether any node carries kind-config.yaml's role label: only then are the Ray pods and
        Redis placed by it (a node selector no node matches leaves every pod Pending)."""
        from serve_chaos.runtime.kuberay.manifests import ROLE_LABEL

        return any(ROLE_LABEL in (n.metadata.labels or {}) for n in self.core.list_node().items)

    def placement_problem(self) -> str | None:
        """Why the active cluster's Ray pods are not one per node on nodes of their role, or None."""
        from serve_chaos.runtime.kuberay.manifests import ROLE_LABEL

        roles = {n.name: n.labels.get(ROLE_LABEL, "") for n in self.nodes() if n.state == "Ready"}
        return placement_problem(self.pods(), roles, by_role=self.ray.node_selectors)

    def lost(self) -> str | None:
        if not self._exists():
            return f"RayService {self.ray.name} in namespace {self.ns} was deleted"
        return None

    def front_door_url(self) -> str:
        """The Serve Service as the harness reaches it (kind: the NodePort kind maps to the host)."""
        if self.target.serve_url:
            return self.target.serve_url.rstrip("/")
        if self.is_kind:
            return f"http://{self.target.host}:{self.target.serve_host_port}"
        raise ConfigError(f"on a cluster other than kind ({self.context}) pass --serve-url: the address the Serve "
                          f"Service {self.ray.serve_service} is reachable at from here",
                          hint="a NodePort on a node address, a LoadBalancer or an Ingress; a port-forward reaches "
                               "one pod, not the Service")

    def dashboard_url(self) -> str:
        """The head's dashboard: the kind NodePort, ``--dashboard-url``, or a port-forward to the head."""
        if self.target.dashboard_url:
            return self.target.dashboard_url.rstrip("/")
        if self.is_kind:
            return f"http://{self.target.host}:{self.target.dashboard_host_port}"
        port = self._forwarder("role:dashboard", "", lambda: self._head_pod().metadata.name, DASHBOARD_PORT)
        return f"http://127.0.0.1:{port}"

    def endpoints(self) -> Endpoints:
        live = {p.name: p for p in self.pods() if p.role in ("head", "worker") and p.phase == "Running"}
        for name, (uid, fwd, _port) in list(self._forwarders.items()):
            if name.startswith("role:"):
                continue
            if name not in live or live[name].uid != uid:
                fwd.stop()
                del self._forwarders[name]
        pods = {name: self._forwarder(name, pod.uid, lambda n=name: n) for name, pod in live.items()}
        head = self._forwarder("role:head", "", lambda: self._head_pod().metadata.name)
        return Endpoints(front_door=self.front_door_url(), dashboard=self.dashboard_url(),
                         pods={n: f"http://127.0.0.1:{port}" for n, port in pods.items()},
                         roles={"head": f"http://127.0.0.1:{head}"}, forwarded=True)

    def _forwarder(self, key: str, uid: str, resolve: Callable[[], str], remote_port: int = SERVE_PORT) -> int:
        """The local port of a forwarder to ``remote_port`` of the pod ``resolve()`` names at each connection."""
        if key not in self._forwarders:
            fwd = PodPortForwarder(self._portforward_opener(resolve, remote_port), remote_port)
            self._forwarders[key] = (uid, fwd, fwd.start())
        return self._forwarders[key][2]

    def _portforward_opener(self, resolve: Callable[[], str],
                            remote_port: int = SERVE_PORT) -> Callable[[], tuple[Any, Callable[[], None]]]:
        def open_stream() -> tuple[Any, Callable[[], None]]:
            from kubernetes.stream import portforward

            pod = resolve()
            core, close = self.api.stream_core()
            try:
                return portforward(core.connect_get_namespaced_pod_portforward, pod, self.ns,
                                   ports=str(remote_port)), close
            except BaseException:
                close()
                raise

        return open_stream

    def _pin_dashboard(self, active: str) -> None:
        """Keep the dashboard Service on the active cluster's head (it changes with every upgrade)."""
        svc = self.api.read("Service", self.ray.dashboard_service, self.ns)
        if svc is None or (svc.spec.selector or {}).get("ray.io/cluster") != active:
            self.api.apply(dashboard_service(self.ray, active))
        self._pinned = active
