"""``KubeRayCluster``: the Cluster protocol on Kubernetes, through the official client.

The cluster under test is the RayService's *active* RayCluster (``status.py``):
its pods are found by KubeRay's labels and roles are read from them, so a head
recreated under a new name is still "the head".  A pod kill is a graceful (or
forced) delete; a node loss on kind cuts and kills the node's container and
deletes the Node object after the replacement delay, as the guide's
``kubectl delete node`` does; actor kills run ``ray.kill`` through exec into the
head pod; the Serve Service (KubeRay's, shaped by ``spec.serveService``) and
the dashboard are NodePorts kind maps to the host (elsewhere: ``--serve-url``, and
the dashboard through a port-forward unless ``--dashboard-url``); each pod, and
"the current head", is reachable through a port-forward.  Every mutating call first
checks the safety rules.

Planned disruptions: a Serve config changed through KubeRay (``serveconfig.py``),
Ray's drain API by exec (``drain.py``), a RayService upgrade.  Gray faults: Chaos
Mesh objects and a slowed process (``grayfaults.py``).  Every fault in effect is
leased in the lease ConfigMap (``lease.py``) with what undoing it needs; ``heal``
undoes this harness's, ``reclaim`` (the next command) a dead harness's, through one
table of healers (``_heal_fault``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import requests

from runtime.app.serve_config import (
    PROXY_ROUTES_PATH,
    AppDeployFailed,
    deploy_failure,
    deployed_config_problem,
    desired_replicas,
    wait_apps_deleted,
)
from runtime.cluster import GRAY_FAULTS, ActionRecord, Capabilities, ClusterStatus, Endpoints, NodeInfo, PodInfo
from runtime.errors import ConfigError, InfrastructureError, ServeChaosError
from runtime.kuberay import chaosmesh, kind, safety
from runtime.kuberay.api import (
    RAY_GROUP,
    RAY_PLURAL,
    RAY_VERSION,
    RAYCLUSTER_PLURAL,
    KubeApi,
    KubeApiError,
    load_configuration,
)
from runtime.kuberay.drain import check_drain, drain_command, node_id_for_ip, refusal
from runtime.kuberay.execs import ExecResult, PodExec
from runtime.kuberay.grayfaults import GrayFaults
from runtime.kuberay.lease import KubeLease
from runtime.kuberay.manifests import (
    REDIS_SECRET_KEY,
    SERVE_CONFIG_ANNOTATION,
    SERVE_PORT,
    KubeRayConfig,
    dashboard_service,
    merge_change,
    render,
)
from runtime.kuberay.placement import placement_problem
from runtime.kuberay.portforward import PodPortForwarder
from runtime.kuberay.serveconfig import (
    REJECTED_REASON,
    SERVE_CONFIG_MANAGER,
    SUBMIT_TIMEOUT_S,
    event_time,
    rejection,
    serve_config_patch,
)
from runtime.kuberay.status import RayServiceState, RunningShape, container_restarts, memory_limit, pod_role
from runtime.ray_settings import node_health_check
from runtime.waiting import NotYet, wait_until

#: kubernetes ``pkg/controller/podgc/gc_controller.go``: pods bound to a deleted Node are
#: collected only after ``quarantineTime`` (40 s), checked every ``gcCheckPeriod`` (20 s).
PODGC_QUARANTINE_S = 40.0
PODGC_PERIOD_S = 20.0
#: How long Serve may take to delete the apps once KubeRay submitted none (s): each replica's
#: graceful shutdown (SleepyPid's 20 s) plus the controller's loop.
APPS_DELETE_S = 40.0
#: KubeRay's Serve readiness probe on workers (``utils/constant.go``: period 5 s, timeout 2 s,
#: ServeReadinessProbeFailureThreshold 1); the head leaves the Serve Service when the RayService
#: controller, reconciling every 2 s (ServiceDefaultRequeueDuration), finds its proxy unhealthy
#: (a 2 s HTTP timeout: ``utils/httpproxy_httpclient.go``).
READINESS_PERIOD_S = 5.0
READINESS_TIMEOUT_S = 2.0
#: The longest a Service keeps routing to a pod that stopped serving (s): the slower of the two
#: paths above, plus a second for EndpointSlice propagation and kube-proxy.
FRONT_DOOR_LAG_S = max(READINESS_PERIOD_S + READINESS_TIMEOUT_S, 2.0 + 2.0) + 1.0
#: A refusal event this recent (s) explains a RayService whose status lags its spec.
REJECTION_RECENT_S = 30.0
#: The dashboard's port on the head (``utils/constant.go`` DefaultDashboardPort).
DASHBOARD_PORT = 8265
#: ``rayservice_controller.go`` RayClusterDeletionDelayDuration (ours does not override it).
RAYCLUSTER_DELETION_DELAY_S = 60.0
#: ``utils/constant.go`` RAYCLUSTER_GCS_FT_DELETION_TIMEOUT_DEFAULT: the longest a GCS-FT
#: RayCluster's Redis cleanup finalizer holds its deletion.
GCS_FT_DELETION_TIMEOUT_S = 300.0
#: How long a RayService upgrade may take to settle (s): a new cluster's pods and Serve (600 s),
#: the switch (60 s), KubeRay's deletion delay (its timer starts at the first reconcile that sees
#: the old cluster inactive; the delete comes at the 2 s requeue after it), then -- with GCS FT --
#: the old RayCluster's Redis-cleanup finalizer (``raycluster_controller.go``), up to its timeout.
UPGRADE_SETTLE_TIMEOUT_S = 600.0 + 60.0 + RAYCLUSTER_DELETION_DELAY_S + GCS_FT_DELETION_TIMEOUT_S


@dataclass(frozen=True)
class KubeTargetConfig:
    """Where and how the kube target acts.

    ``context``: kubeconfig context (default: the current one); it must be
    ``kind-*`` or listed in ``allowed_contexts``.  ``node_loss_hook``: on a
    non-kind cluster, a command (``{node}`` is replaced) that makes a node
    disappear; without it node loss is refused.

    Where the harness reaches the cluster: on kind, ``host`` and the host ports kind maps
    to the Serve and dashboard NodePorts (kind-config.yaml).  On any other cluster
    ``serve_url`` is required -- the address the Serve Service is reachable at from here
    (a NodePort on a node address, a LoadBalancer, an Ingress): the front door must be
    the Service, and a port-forward reaches one pod, never a Service -- and
    ``dashboard_url`` is optional: without it the dashboard is reached through a
    port-forward to the active head pod, the only pod that serves it.
    """

    context: str | None = None
    allowed_contexts: tuple[str, ...] = ()
    namespace: str = "serve-chaos"
    name: str = "serve-chaos"
    kubeconfig: str | None = None
    node_loss_hook: str | None = None
    serve_host_port: int = 8000
    dashboard_host_port: int = 8265
    host: str = "127.0.0.1"
    ray: KubeRayConfig | None = None
    serve_url: str | None = None
    dashboard_url: str | None = None
    #: Shape settings the user asked for explicitly (``workers``, ``gcs_ft``, ``ray_version``):
    #: a running cluster that differs in one of them is refused; the others are adopted.
    asked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for option, url in (("--serve-url", self.serve_url), ("--dashboard-url", self.dashboard_url)):
            if url is not None and not re.fullmatch(r"https?://[^/\s:]+:\d+/?", url):
                raise ConfigError(f"{option} {url!r} is not an address like http://10.0.0.5:30800",
                                  hint="give the scheme, host and port the Service is reachable at from here")

    def ray_config(self) -> KubeRayConfig:
        base = self.ray or KubeRayConfig()
        return replace(base, namespace=self.namespace, name=self.name)


class ServeRejected(ConfigError):
    """Serve refused a changed config (or could not deploy it): the change is undone."""


class PlacementRefused(InfrastructureError):
    """The Ray pods do not stand one per node: node faults would not mean what they say."""


class KubeRayCluster:
    """The RayService under test on a Kubernetes cluster."""

    def __init__(self, target: KubeTargetConfig | None = None, api: KubeApi | None = None,
                 context_name: str | None = None, cli: Any = kind) -> None:
        self.target = target or KubeTargetConfig()
        if api is None:
            configuration, context_name = load_configuration(self.target.kubeconfig, self.target.context,
                                                             self.target.allowed_contexts)
            api = KubeApi.from_configuration(configuration)
        else:
            safety.check_context(context_name, self.target.allowed_contexts)
        self.context = context_name or ""
        self.api = api
        self.core, self.apps, self.custom = api.core, api.apps, api.custom
        self.cli = cli
        self.ray = self.target.ray_config()
        self.ns = self.target.namespace
        self.name = "kind" if self.context.startswith("kind-") else "kube"
        self.label: str | None = self.context
        self.created = False
        self.killed_nodes: list[str] = []
        self.redis_held = False
        self.lease = KubeLease(api, self.ray)
        self.execs = PodExec(api, self.ns)
        self.gray = GrayFaults(api, self.ray, self.lease, self.execs, self._pod, self._peers)
        self._forwarders: dict[str, tuple[str, PodPortForwarder, int]] = {}
        self._timers: list[threading.Timer] = []
        self._session = requests.Session()
        self._pinned: str | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def is_kind(self) -> bool:
        return self.context.startswith("kind-")

    def _selector(self) -> str:
        return f"{safety.MANAGED_SELECTOR},app.kubernetes.io/part-of={self.ray.name}"

    def _our_pods(self) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.ns, label_selector=self._selector()).items)

    def _rayservice(self) -> dict[str, Any]:
        obj = self.api.read("RayService", self.ray.name, self.ns)
        if obj is None:
            raise InfrastructureError(f"there is no RayService {self.ray.name} in namespace {self.ns}",
                                      hint="create it with `serve-chaos up --target kind` (or `serve-chaos kind up`)")
        safety.check_owned(obj, f"RayService {self.ray.name}")
        return obj

    def state(self) -> RayServiceState:
        return RayServiceState.of(self._rayservice())

    def _pod(self, name: str) -> Any:
        try:
            pod = self.core.read_namespaced_pod(name, self.ns)
        except KubeApiError as err:
            if err.status == 404:
                raise ServeChaosError(f"no pod {name!r} in namespace {self.ns}") from None
            raise
        safety.check_owned(pod, f"pod {name}")
        return pod

    def _cluster_pods(self) -> list[tuple[str, Any]]:
        """(role, pod) for every pod of the cluster under test: the serving RayCluster's and Redis.
        The dashboard Service follows the active cluster here too: the prober reads pods every
        second, so after an upgrade's switch it sees the new head's actors with the new pods."""
        state = self.state()
        serving = state.serving_cluster
        if state.active and state.active != self._pinned:
            self._pin_dashboard(state.active)
        out = []
        for pod in self._our_pods():
            role = pod_role(dict(pod.metadata.labels or {}), serving)
            if role is not None:
                out.append((role, pod))
        return out

    def _head_pod(self) -> Any:
        heads = [p for role, p in self._cluster_pods() if role == "head"
                 and p.status and p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        if not heads:
            raise InfrastructureError("no Running head pod in the active RayCluster",
                                      hint=f"`kubectl -n {self.ns} get pods -l ray.io/node-type=head`")
        return heads[0]

    def _password(self) -> str:
        """The Redis password: kept in the Secret; generated once, never printed."""
        secret = self.api.read("Secret", self.ray.secret_name, self.ns)
        if secret is None:
            return secrets.token_hex(16)
        safety.check_owned(secret, f"secret {self.ray.secret_name}")
        return base64.b64decode((secret.data or {})[REDIS_SECRET_KEY]).decode()

    def manifests(self, serve_config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """What ``up`` applies (the desired Serve config is recorded on the RayService)."""
        desired = serve_config or self.ray.app.to_serve_config()
        active = None
        existing = self.api.read("RayService", self.ray.name, self.ns)
        if existing is not None:
            active = RayServiceState.of(existing).serving_cluster
        return render(self.ray, self._password(), desired, active)

    def apply(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            self.api.apply(obj)

    # ------------------------------------------------------------------ lifecycle
    def attach(self) -> bool:
        """Whether our RayService is there; if so, heal what a dead run left in effect first."""
        if not self._exists():
            return False
        self.reclaim()
        return True

    def _exists(self) -> bool:
        existing = self.api.read("RayService", self.ray.name, self.ns)
        return existing is not None and safety.is_ours(existing)

    # ------------------------------------------------------------------ lock and leases
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

    def nodes_have_roles(self) -> bool:
        """Whether any node carries kind-config.yaml's role label: only then are the Ray pods and
        Redis placed by it (a node selector no node matches leaves every pod Pending)."""
        from runtime.kuberay.manifests import ROLE_LABEL

        return any(ROLE_LABEL in (n.metadata.labels or {}) for n in self.core.list_node().items)

    def placement_problem(self) -> str | None:
        """Why the active cluster's Ray pods are not one per node on nodes of their role, or None."""
        from runtime.kuberay.manifests import ROLE_LABEL

        roles = {n.name: n.labels.get(ROLE_LABEL, "") for n in self.nodes() if n.state == "Ready"}
        return placement_problem(self.pods(), roles, by_role=self.ray.node_selectors)

    def lost(self) -> str | None:
        if not self._exists():
            return f"RayService {self.ray.name} in namespace {self.ns} was deleted"
        return None

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
        from runtime.kuberay.api import CUSTOM_KINDS

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

    # ------------------------------------------------------------------ Cluster protocol
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

    def settings(self) -> dict[str, Any]:
        obj = self._rayservice()
        # What runs, from the RayService's spec (not this process's defaults).
        running = RunningShape.of(obj)
        gcs_ft = running.gcs_ft != "off"
        return {
            "target": self.name,
            "context": self.context,
            "gcs_ft": gcs_ft,
            "gcs_ft_form": running.gcs_ft,
            # KubeRay sets it on workers when GCS FT is on (common/pod.go configureGCSFaultTolerance).
            "gcs_rpc_server_reconnect_timeout_s_workers": 600 if gcs_ft else 60,
            "ray_image": running.image,
            "ray_version": running.ray_version,
            "app_code": running.app_code,
            "workers": running.workers,
            "ray_cluster": RayServiceState.of(obj).serving_cluster,
            "podgc_quarantine_s": PODGC_QUARANTINE_S,
            "podgc_period_s": PODGC_PERIOD_S,
            "readiness_period_s": READINESS_PERIOD_S,
            "readiness_timeout_s": READINESS_TIMEOUT_S,
            "front_door_lag_s": FRONT_DOOR_LAG_S,
            **node_health_check({}),
        }

    def serve_config(self) -> dict[str, Any]:
        annotations = self._rayservice().get("metadata", {}).get("annotations") or {}
        return json.loads(annotations.get(SERVE_CONFIG_ANNOTATION, "{}")) or self.ray.app.to_serve_config()

    def status(self) -> ClusterStatus:
        state = self.state()
        endpoints = Endpoints(front_door=self.target.serve_url or f"http://{self.target.host}:{self.target.serve_host_port}",
                              dashboard=self.target.dashboard_url or "a port-forward to the head (port 8265)")
        return ClusterStatus(target=self.name, label=f"{self.ns}/{self.ray.name}", mode=self.context,
                             gcs_ft=bool(self.settings()["gcs_ft"]), front_door=endpoints.front_door,
                             dashboard=endpoints.dashboard, pods=tuple(self.pods()), nodes=tuple(self.nodes()),
                             extra={"active_ray_cluster": state.active, "pending_ray_cluster": state.pending,
                                    "settled": state.problem() or "yes",
                                    "locked_by": (holder.describe() if (holder := self.lease.holder()) else None),
                                    "faults_in_effect": [f"{f['kind']} {f['target']} (PID {f['pid']} on {f['host']})"
                                                         for f in self.lease.faults()]})

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        """Make ``config`` the RayService's serveConfigV2; the operator deploys it in place.
        ``replace`` deletes the apps first, as the local target does: an in-place change of
        placement options alone is never applied by Serve (``PLACEMENT_OPTIONS``), and every
        replica starts at once instead of in rolling batches.  The delete goes the operator's
        way too -- serveConfigV2 with no application, which KubeRay submits like any change
        (``rayservice_controller.go`` checkIfNeedSubmitServeApplications) -- and is leased, so
        a harness that dies in between leaves ``config`` to be restored by the next command."""
        t0 = time.time()
        if replace:
            self._delete_apps(config)
        self._set_serve_config(config)
        return ActionRecord("apply_serve_config", self.ray.name, t0, time.time(), {"replace": replace})

    def _delete_apps(self, config: dict[str, Any]) -> None:
        leased = self.lease.fault("serve_config", self.ray.name) is None
        if leased:
            self.lease.add_fault("serve_config", self.ray.name, original=config, change="delete the apps, then deploy")
        try:
            self._set_serve_config({**config, "applications": []})
            wait_apps_deleted(self._session, self.dashboard_url(), timeout_s=SUBMIT_TIMEOUT_S + APPS_DELETE_S)
        except InfrastructureError:
            pass  # deploying over what is left is an in-place update; the gate says if Serve ignores it
        finally:
            self._set_serve_config(config)
            if leased:
                self.lease.drop_faults("serve_config", self.ray.name)

    def _set_serve_config(self, config: dict[str, Any]) -> None:
        """serveConfigV2 and the desired-config annotation, and nothing else of the RayService."""
        self.api.apply(serve_config_patch(self.ray, config), manager=SERVE_CONFIG_MANAGER)

    def update_serve_config(self, config: dict[str, Any], change: str) -> ActionRecord:
        """An operator's change under load: the new desired config, submitted by KubeRay the way
        it always is.  Leased (kind ``serve_config``) with the config desired before the first
        change, which ``heal`` -- or the next command, if this harness died -- restores.  A
        config Serve refuses is restored at once and said in one line.  ``details``:
        ``change``, ``t_accepted`` (epoch s the dashboard first showed it deployed)."""
        t0 = time.time()
        previous = self.serve_config()
        first = self.lease.fault("serve_config", self.ray.name) is None
        if first:
            self.lease.add_fault("serve_config", self.ray.name, original=previous, change=change)
        self._set_serve_config(config)
        try:
            t_accepted = self._await_serve_config(config, since=t0, change=change)
        except ServeChaosError:
            self._set_serve_config(previous)
            if first:
                self.lease.drop_faults("serve_config", self.ray.name)
            raise
        return ActionRecord("update_serve_config", self.ray.name, t0, time.time(),
                            {"change": change, "t_accepted": t_accepted})

    def _await_serve_config(self, config: dict[str, Any], since: float, change: str,
                            timeout_s: float = SUBMIT_TIMEOUT_S) -> float:
        """When (epoch s) the dashboard shows ``config`` deployed; ServeRejected when Serve refused
        it (KubeRay's event) or could not deploy it (DEPLOY_FAILED)."""
        def check() -> float:
            refused = self._serve_rejection(since)
            if refused:
                raise ServeRejected(f"Serve refused the config change ({change}): {refused}; the previous config "
                                    "is restored", hint="`serve build` or `serve deploy` the config locally shows "
                                                         "Serve's full message")
            try:
                details = self._session.get(f"{self.dashboard_url()}/api/serve/applications/", timeout=5).json()
            except (requests.RequestException, ValueError) as err:
                raise NotYet(f"dashboard not answering ({type(err).__name__})") from None
            failed = deploy_failure(details)
            if failed is not None:
                raise ServeRejected(f"Serve could not deploy the config change ({change}): "
                                    f"{failed.what.split(': ', 1)[-1]}; the previous config is restored",
                                    hint=failed.hint)
            problem = deployed_config_problem(config, details)
            if problem:
                raise NotYet(problem)
            return time.time()

        failures: list[ServeRejected] = []

        def guarded() -> float:
            try:
                return check()
            except ServeRejected as err:
                failures.append(err)
                return 0.0

        t_accepted = wait_until(guarded, timeout_s, period_s=1.0, what="KubeRay to submit the changed Serve config",
                                hint=f"`kubectl -n {self.ns} describe rayservice {self.ray.name}` shows its events")
        if failures:
            raise failures[0]
        return t_accepted

    def _serve_rejection(self, since: float) -> str | None:
        """Serve's answer to a config KubeRay submitted after ``since`` and Serve refused, or None."""
        events = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={self.ray.name},reason={REJECTED_REASON}").items
        fresh = [e for e in events if event_time(e) >= since - 1.0]
        if not fresh:
            return None
        return rejection(max(fresh, key=event_time).message or "")

    def kill_pod(self, pod: str, graceful: bool = True, grace_period_s: float = 30.0,
                 down_for_s: float | None = None) -> ActionRecord:
        t0 = time.time()
        found = self._pod(pod)
        labels = found.metadata.labels or {}
        details = {"uid": found.metadata.uid, "node": found.spec.node_name, "ip": found.status.pod_ip,
                   "graceful": graceful}
        if down_for_s is not None and labels.get("serve-chaos/component") == "redis":
            # Keep Redis away: scale its Deployment to 0, back to 1 after the hold.
            self._scale_redis(0)
            self.redis_held = True
            self.lease.add_fault("hold", "redis")
            self._timers.append(threading.Timer(down_for_s, self._release_redis))
            self._timers[-1].start()
        grace = None if graceful else 0
        if graceful and grace_period_s != 30.0:
            grace = int(grace_period_s)
        self.core.delete_namespaced_pod(pod, self.ns, grace_period_seconds=grace)
        return ActionRecord("kill_pod", pod, t0, time.time(), details)

    def _scale_redis(self, replicas: int) -> None:
        name = self.ray.redis_service
        safety.check_owned(self.apps.read_namespaced_deployment(name, self.ns), f"deployment {name}")
        self.apps.patch_namespaced_deployment_scale(name, self.ns, {"spec": {"replicas": replicas}})

    def _release_redis(self) -> None:
        """The hold's timer: Redis may return.  A failure here leaves the lease, which heal retries."""
        if self.redis_held:
            try:
                self._scale_redis(1)
            except ServeChaosError:
                return
            self.redis_held = False

    def kill_node(self, node: str, replacement_delay_s: float = 10.0) -> ActionRecord:
        """Lose ``node`` as this cluster can (``_cut_node``), leased so that ``heal`` -- or the next
        command -- brings it back where it can.  On a cluster serve-chaos made (kind, the k8s
        target) the Node object is then deleted after ``replacement_delay_s``, as the guide's
        ``kubectl delete node`` does; PodGC collects its pods and KubeRay recreates them.  On any
        other cluster the hook's own removal stands (a cloud deletes the Node with its machine):
        serve-chaos deletes no Node it does not own."""
        t0 = time.time()
        ours = [p for p in self.pods() if p.node == node]
        if not ours:
            raise ServeChaosError(f"node {node} runs no pod of ours; refusing to kill it")
        if not self._can_lose_nodes():
            raise ServeChaosError(self.capabilities.why_not("kill_node"))
        self.lease.add_fault("node_loss", node)
        self.killed_nodes.append(node)
        t_cut = self._cut_node(node)
        if self._owns_nodes():
            timer = threading.Timer(replacement_delay_s, self._delete_node, args=(node,))
            timer.start()
            self._timers.append(timer)
        return ActionRecord("kill_node", node, t0, time.time(),
                            {"pods": [{"pod": p.name, "uid": p.uid} for p in ours], "t_network_cut": t_cut,
                             "replacement_delay_s": replacement_delay_s if self._owns_nodes() else None,
                             "node_deleted_by": "serve-chaos" if self._owns_nodes() else "the node-loss hook"})

    def _can_lose_nodes(self) -> bool:
        return self.is_kind or bool(self.target.node_loss_hook)

    def _owns_nodes(self) -> bool:
        """Whether the Nodes are serve-chaos's to delete (the cluster is a test cluster it drives)."""
        return self.is_kind

    def _cut_node(self, node: str) -> float:
        """Make ``node`` disappear; returns when its network was cut (epoch s).  kind: the node's
        container leaves its network, then is killed; elsewhere: the user's hook."""
        if self.is_kind:
            self.cli.node_network(node, connect=False)
            t_cut = time.time()
            self.cli.node_kill(node)
            return t_cut
        import shlex
        import subprocess

        subprocess.run(shlex.split(str(self.target.node_loss_hook).replace("{node}", node)), check=True, timeout=300)
        return time.time()

    def _restore_node(self, node: str) -> bool:
        """Bring a lost node back where this cluster can (kind: reconnect and start its container);
        False where it cannot (the hook's node is gone for good)."""
        if not self.is_kind:
            return False
        self.cli.node_network(node, connect=True)
        self.cli.node_start(node)
        return True

    def _delete_node(self, node: str) -> None:
        try:
            self.core.delete_node(node)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def partition_pod(self, pod: str) -> ActionRecord:
        raise ServeChaosError(self.capabilities.why_not("partition_pod"))

    def unpartition_pod(self, pod: str) -> ActionRecord:
        raise ServeChaosError(self.capabilities.why_not("partition_pod"))

    def kill_actor(self, actor_name: str | list[str], namespace: str, no_restart: bool,
                   ignore_missing: bool = False) -> ActionRecord:
        """``ray.kill`` from a Python driver started by exec in the head pod (the guide's way)."""
        names = [actor_name] if isinstance(actor_name, str) else list(actor_name)
        head = self._head_pod()
        source = (Path(__file__).resolve().parents[1] / "raykill.py").read_text()
        command = ["python", "-c", source, "--address=auto", f"--namespace={namespace}",
                   *[f"--name={n}" for n in names]]
        if no_restart:
            command.append("--no-restart")
        if ignore_missing:
            command.append("--ignore-missing")
        t0 = time.time()
        output = self.execs.run(head.metadata.name, head.spec.containers[0].name, command).output
        lines = [ln for ln in output.splitlines() if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"error": "no output from the driver"}
        if "error" in result:
            raise ServeChaosError(f"ray.kill of {names[0]} failed: {result['error']}")
        return ActionRecord("kill_actor", names[0] if len(names) == 1 else f"{len(names)} actors", t0, time.time(),
                            result)

    def _exec(self, pod: str, command: list[str], timeout_s: float = 120.0) -> ExecResult:
        """``kubectl exec`` into the pod's Ray container (the first; KubeRay's ``ray-head``/``ray-worker``)."""
        target = self._pod(pod)
        return self.execs.run(target.metadata.name, target.spec.containers[0].name, command, timeout_s)

    def signal_process(self, pod: str, pid: int, signal: str) -> ActionRecord:
        """``kill -STOP|-CONT <pid>`` by exec in the pod: the State API's PIDs are the
        container's own (each pod has its own PID namespace)."""
        if signal not in ("STOP", "CONT"):
            raise ServeChaosError(f"signal {signal!r} is not STOP or CONT")
        t0 = time.time()
        result = self._exec(pod, ["kill", f"-{signal}", str(int(pid))])
        if not result.ok:
            raise ServeChaosError(f"kill -{signal} {pid} in pod {pod} failed: "
                                  f"{result.output[:200] or f'exit {result.returncode}'}")
        if signal == "STOP":
            self.lease.add_fault("freeze", f"{pod}:{int(pid)}")
        else:
            self.lease.drop_faults("freeze", f"{pod}:{int(pid)}")
        return ActionRecord(f"signal_{signal}", f"{pod}:{pid}", t0, time.time(), {"pid": int(pid)})

    def _thaw(self, fault: dict[str, Any]) -> ActionRecord | None:
        """SIGCONT a process this tool froze.  A pod that is gone leaves nothing frozen; a process
        that is gone answers ``No such process`` (fine); an exec that fails leaves the lease."""
        target = fault["target"]
        pod, _, pid = target.rpartition(":")
        t0 = time.time()
        if not self._pod_exists(pod):
            return None
        self._exec(pod, ["/bin/sh", "-c", f"kill -CONT {int(pid)} 2>/dev/null; true"])
        return ActionRecord("thaw", target, t0, time.time(), {})

    def _pod_exists(self, name: str) -> bool:
        try:
            self._pod(name)
        except ServeChaosError as err:
            if isinstance(err, KubeApiError) or "no pod" not in err.what:
                raise
            return False
        return True

    # Planned disruptions and gray faults: not yet written for Kubernetes (issues 16, 17);
    # the capabilities say so and the scenarios skip with that reason.
    def drain_node(self, pod: str, reason: str, deadline_s: float, message: str) -> ActionRecord:
        """``ray drain-node`` by exec in the active head pod, for the Ray node of ``pod`` (found in
        the State API by the pod's IP).  Ray's refusal is a ServeChaosError carrying its reason.
        Leased (kind ``drain`` on the pod): a drain cannot be undone, so ``heal`` force-deletes a
        drained pod still there and KubeRay recreates it.  ``details``: ``node_id`` (hex),
        ``t_deadline`` (epoch s the node is to be lost), ``reason``, ``head``."""
        check_drain(reason, deadline_s)
        target = self._pod(pod)
        ip = target.status.pod_ip or ""
        try:
            nodes = self._session.get(f"{self.dashboard_url()}/api/v0/nodes?limit=1000", timeout=10).json()
        except (requests.RequestException, ValueError) as err:
            raise InfrastructureError(f"the dashboard's State API did not answer ({type(err).__name__})") from None
        rows = ((nodes.get("data") or {}).get("result") or {}).get("result") or []
        node_id = node_id_for_ip(rows, ip)
        if node_id is None:
            raise ServeChaosError(f"no ALIVE Ray node has the IP {ip or '(none)'} of pod {pod}",
                                  hint="the pod's Ray node is gone or not yet registered; see `serve-chaos status`")
        head = self._head_pod()
        t0 = time.time()
        result = self.execs.run(head.metadata.name, head.spec.containers[0].name,
                                drain_command(head.status.pod_ip, node_id, reason, message, deadline_s))
        if not result.ok:
            raise ServeChaosError(f"Ray refused to drain node {node_id[:12]} (pod {pod}): {refusal(result.output)}")
        t_deadline = t0 + deadline_s
        self.lease.add_fault("drain", pod, node_id=node_id, t_deadline=t_deadline)
        return ActionRecord("drain_node", pod, t0, time.time(),
                            {"node_id": node_id, "t_deadline": t_deadline, "reason": reason,
                             "head": head.metadata.name})

    # Gray faults: Chaos Mesh objects, or a slowed process (``grayfaults.py`` says what each
    # leases and what ``lift`` returns).
    def starve_cpu(self, pod: str, cpu_share: float, duration_s: float) -> ActionRecord:
        return self.gray.starve_cpu(pod, cpu_share, duration_s)

    def press_memory(self, pod: str, size_bytes: int, rate_bytes_s: float, duration_s: float) -> ActionRecord:
        return self.gray.press_memory(pod, size_bytes, rate_bytes_s, duration_s)

    def lose_packets(self, pod: str, percent: float, duration_s: float) -> ActionRecord:
        return self.gray.lose_packets(pod, percent, duration_s)

    def delay_packets(self, pod: str, delay_ms: float, jitter_ms: float, duration_s: float) -> ActionRecord:
        return self.gray.delay_packets(pod, delay_ms, jitter_ms, duration_s)

    def slow_process(self, pod: str, pid: int, stopped_ms: float, period_ms: float,
                     duration_s: float) -> ActionRecord:
        return self.gray.slow_process(pod, pid, stopped_ms, period_ms, duration_s)

    def lift(self, fault: str, pod: str) -> ActionRecord:
        if fault not in GRAY_FAULTS:
            raise ServeChaosError(f"{fault!r} is not a gray fault", hint=f"one of {', '.join(GRAY_FAULTS)}")
        return self.gray.lift(fault, pod)

    def _peers(self, pod: str) -> list[str]:
        """The other Running pods of the cluster under test (a lossy pod's peers)."""
        return sorted(p.name for p in self.pods() if p.name != pod and p.phase == "Running")

    def _heal_gray(self, fault: dict[str, Any]) -> ActionRecord | None:
        t0 = time.time()
        return ActionRecord(f"heal_{fault['kind']}", fault["target"], t0, time.time(), self.gray.undo(fault))

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

    def set_gcs_ft(self, enabled: bool, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        """Switch GCS FT by re-applying the RayService; KubeRay rolls out a new RayCluster
        (a zero-downtime upgrade) and readiness waits until it is the active one."""
        t0 = time.time()
        desired = serve_config or self.serve_config()
        self.ray = replace(self.ray, gcs_ft="options" if enabled else "off")
        self.apply(self.manifests(desired))
        return ActionRecord("set_gcs_ft", self.ray.name, t0, time.time(), {"enabled": enabled})

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

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        out = []
        for ev in self.core.list_namespaced_event(self.ns).items:
            t = event_time(ev)
            if t >= since:
                out.append({"t": t, "kind": ev.reason, "object": f"{ev.involved_object.kind}/{ev.involved_object.name}",
                            "message": (ev.message or "")[:300]})
        return sorted(out, key=lambda e: e["t"])

    # ------------------------------------------------------------------ readiness
    def _pin_dashboard(self, active: str) -> None:
        """Keep the dashboard Service on the active cluster's head (it changes with every upgrade)."""
        svc = self.api.read("Service", self.ray.dashboard_service, self.ns)
        if svc is None or (svc.spec.selector or {}).get("ray.io/cluster") != active:
            self.api.apply(dashboard_service(self.ray, active))
        self._pinned = active

    def readiness_problem(self) -> str | None:
        state = self.state()
        problem = state.problem()
        if problem and state.generation != state.observed_generation:
            # KubeRay returns before writing its status when the dashboard refused the config
            # (rayservice_controller.go reconcileServe): say why it never catches up.
            refused = self._serve_rejection(time.time() - REJECTION_RECENT_S)
            return f"{problem}; KubeRay's last submission was refused: {refused}" if refused else problem
        if problem:
            return problem
        self._pin_dashboard(state.active or "")
        pods = self.pods()
        heads = [p for p in pods if p.role == "head"]
        workers = [p for p in pods if p.role == "worker"]
        if len(heads) != 1 or len(workers) != self.ray.workers:
            return f"{len(heads)} head and {len(workers)}/{self.ray.workers} worker pods in RayCluster {state.active}"
        for pod in pods:
            if pod.phase != "Running":
                return f"pod {pod.name} is {pod.phase}"
        placement = self.placement_problem()
        if placement:
            raise PlacementRefused(placement, hint="the worker pods' anti-affinity keeps one per node: "
                                                   "`serve-chaos down --target kind` and bring the cluster up again")
        return self._serve_problem()

    def _serve_problem(self) -> str | None:
        dashboard = self.dashboard_url()
        try:
            details = self._session.get(f"{dashboard}/api/serve/applications/", timeout=5).json()
        except (requests.RequestException, ValueError) as err:
            return f"dashboard not answering ({type(err).__name__})"
        failed = deploy_failure(details)
        if failed is not None:
            raise failed
        desired = self.serve_config()
        mismatch = deployed_config_problem(desired, details)
        if mismatch:
            return mismatch
        want = desired_replicas(desired)
        running = sum(1 for app in (details.get("applications") or {}).values()
                      for dep in app.get("deployments", {}).values()
                      for r in dep.get("replicas", []) if r.get("state") == "RUNNING")
        if running != want:
            return f"{running}/{want} replicas RUNNING"
        try:
            if self._session.get(f"{self.front_door_url()}{PROXY_ROUTES_PATH}",
                                 timeout=5).status_code != 200:
                return f"Serve endpoint not answering 200 on {PROXY_ROUTES_PATH}"
        except requests.RequestException as err:
            return f"Serve endpoint not reachable ({type(err).__name__})"
        return None

    def wait_ready(self, timeout_s: float | None = None) -> None:
        # A new RayCluster (a GCS FT switch) pulls, schedules and starts every pod.
        timeout_s = self.capabilities.ready_timeout_s if timeout_s is None else timeout_s

        failed: list[ServeChaosError] = []

        def check() -> None:
            try:
                problem = self.readiness_problem()
            except (AppDeployFailed, PlacementRefused) as err:
                failed.append(err)  # waiting cannot fix it: told at once, not retried
                return
            if problem:
                raise NotYet(problem)

        wait_until(check, timeout_s, period_s=3.0, what="the RayService to be ready",
                   hint=f"`kubectl -n {self.ns} describe rayservice {self.ray.name}`",
                   retry_on=(NotYet, ServeChaosError))
        if failed:
            raise failed[0]

