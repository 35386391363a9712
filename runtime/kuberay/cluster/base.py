"""What every part of ``KubeRayCluster`` stands on: the API, the RayService and its active
RayCluster, their pods by KubeRay's labels, the manifests and the password."""

from __future__ import annotations

import base64
import secrets
import threading
from typing import Any

import requests

from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError
from serve_chaos.runtime.kuberay import kind, safety
from serve_chaos.runtime.kuberay.api import KubeApi, KubeApiError, load_configuration
from serve_chaos.runtime.kuberay.execs import ExecResult, PodExec
from serve_chaos.runtime.kuberay.grayfaults import GrayFaults
from serve_chaos.runtime.kuberay.lease import KubeLease
from serve_chaos.runtime.kuberay.manifests import REDIS_SECRET_KEY, render
from serve_chaos.runtime.kuberay.portforward import PodPortForwarder
from serve_chaos.runtime.kuberay.status import RayServiceState, pod_role
from serve_chaos.runtime.kuberay.cluster.targetconfig import KubeTargetConfig


class KubeRayBase:
    """What every part of ``KubeRayCluster`` stands on: the API, the RayService and its active
    RayCluster, their pods by KubeRay's labels, the manifests and the password."""

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

    def _exists(self) -> bool:
        existing = self.api.read("RayService", self.ray.name, self.ns)
        return existing is not None and safety.is_ours(existing)

    def _pod_exists(self, name: str) -> bool:
        try:
            self._pod(name)
        except ServeChaosError as err:
            if isinstance(err, KubeApiError) or "no pod" not in err.what:
                raise
            return False
        return True

    def _exec(self, pod: str, command: list[str], timeout_s: float = 120.0) -> ExecResult:
        """``kubectl exec`` into the pod's Ray container (the first; KubeRay's ``ray-head``/``ray-worker``)."""
        target = self._pod(pod)
        return self.execs.run(target.metadata.name, target.spec.containers[0].name, command, timeout_s)
