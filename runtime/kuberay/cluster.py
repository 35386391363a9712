"""``KubeRayCluster``: the Cluster protocol on Kubernetes, through the official client.

Pods are found by labels (ours plus KubeRay's ``ray.io/node-type``); a pod kill
is a graceful (or forced) delete; a node loss on kind kills the node's
container after cutting its network, and deletes the Node object after the
replacement delay, as the guide's ``kubectl delete node`` does; actor kills run
``ray.kill`` through exec into the head pod; the dashboard and the Serve
endpoint are NodePorts (kind maps them to the host) and each pod is reachable
through a port-forward.  Every mutating call first checks the safety rules.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import requests
import yaml

from runtime.app.serve_config import desired_replicas
from runtime.cluster import ActionRecord, Capabilities, Endpoints, NodeInfo, PodInfo
from runtime.errors import ConfigError, InfrastructureError, ServeChaosError
from runtime.kuberay import kind, safety
from runtime.kuberay.manifests import KubeRayConfig, REDIS_SECRET_KEY, render, serve_config_v2
from runtime.kuberay.portforward import PodPortForwarder
from runtime.ray_settings import node_health_check

SERVE_CONFIG_ANNOTATION = "serve-chaos/serve-config"
RAY_GROUP, RAY_VERSION, RAY_PLURAL = "ray.io", "v1", "rayservices"


@dataclass(frozen=True)
class KubeTargetConfig:
    """Where and how the kube target acts.

    ``context``: kubeconfig context (default: the current one); it must be
    ``kind-*`` or listed in ``allowed_contexts``.  ``node_loss_hook``: on a
    non-kind cluster, a command (``{node}`` is replaced) that makes a node
    disappear; without it node loss is refused.  Ports are the host ports kind
    maps to the Serve and dashboard NodePorts (kind-config.yaml).
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

    def ray_config(self) -> KubeRayConfig:
        base = self.ray or KubeRayConfig()
        return replace(base, namespace=self.namespace, name=self.name)


def _load_api(target: KubeTargetConfig) -> tuple[Any, str]:
    """An ApiClient for the chosen context, and that context's name."""
    from kubernetes import config as kconfig

    try:
        contexts, active = kconfig.list_kube_config_contexts(config_file=target.kubeconfig)
    except Exception as err:  # noqa: BLE001 - kubeconfig missing or unreadable
        raise ConfigError(f"cannot read a kubeconfig: {err}",
                          hint="create a cluster with `serve-chaos kind up` or point KUBECONFIG at one") from None
    name = target.context or (active or {}).get("name")
    if target.context and target.context not in {c["name"] for c in contexts}:
        raise ConfigError(f"kubeconfig has no context {target.context!r}",
                          hint="see `kubectl config get-contexts`")
    safety.check_context(name, target.allowed_contexts)
    return kconfig.new_client_from_config(config_file=target.kubeconfig, context=name), name


class KubeRayCluster:
    """The RayService under test on a Kubernetes cluster."""

    def __init__(self, target: KubeTargetConfig | None = None, api_client: Any = None,
                 context_name: str | None = None, cli: Any = kind) -> None:
        self.target = target or KubeTargetConfig()
        if api_client is None:
            api_client, context_name = _load_api(self.target)
        else:
            safety.check_context(context_name, self.target.allowed_contexts)
        from kubernetes import client

        self.context = context_name or ""
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.cli = cli
        self.ray = self.target.ray_config()
        self.ns = self.target.namespace
        self.name = "kind" if self.context.startswith("kind-") else "kube"
        self.created = False
        self.killed_nodes: list[str] = []
        self._forwarders: dict[str, tuple[str, PodPortForwarder, int]] = {}
        self._timers: list[threading.Timer] = []
        self._session = requests.Session()

    # ------------------------------------------------------------------ helpers
    @property
    def is_kind(self) -> bool:
        return self.context.startswith("kind-")

    @property
    def kind_cluster(self) -> str:
        return self.context[len("kind-"):] if self.is_kind else ""

    def _selector(self, extra: str = "") -> str:
        base = f"{safety.MANAGED_SELECTOR},app.kubernetes.io/part-of={self.ray.name}"
        return f"{base},{extra}" if extra else base

    def _our_pods(self) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.ns, label_selector=self._selector()).items)

    def _pod(self, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            pod = self.core.read_namespaced_pod(name, self.ns)
        except ApiException as err:
            if err.status == 404:
                raise ServeChaosError(f"no pod {name!r} in namespace {self.ns}") from None
            raise
        safety.check_owned(pod, f"pod {name}")
        return pod

    def _head_pod(self) -> Any:
        heads = [p for p in self._our_pods() if (p.metadata.labels or {}).get("ray.io/node-type") == "head"
                 and p.status and p.status.phase == "Running" and not p.metadata.deletion_timestamp]
        if not heads:
            raise InfrastructureError("no Running head pod", hint="`kubectl -n serve-chaos get pods`")
        return heads[0]

    def _rayservice(self) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(RAY_GROUP, RAY_VERSION, self.ns, RAY_PLURAL, self.ray.name)
        safety.check_owned(obj, f"RayService {self.ray.name}")
        return obj

    # ------------------------------------------------------------------ lifecycle
    def _namespace(self) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.core.read_namespace(self.ns)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def _password(self) -> str:
        """The Redis password: kept in the Secret; generated once, never printed."""
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.core.read_namespaced_secret(self.ray.secret_name, self.ns)
        except ApiException as err:
            if err.status != 404:
                raise
            return secrets.token_hex(16)
        safety.check_owned(secret, f"secret {self.ray.secret_name}")
        import base64

        return base64.b64decode((secret.data or {})[REDIS_SECRET_KEY]).decode()

    def apply(self, objects: list[dict[str, Any]]) -> None:
        """Create each object, or patch it if it exists (ours only)."""
        from kubernetes.client.exceptions import ApiException

        for obj in objects:
            kind_name, name = obj["kind"], obj["metadata"]["name"]
            creators: dict[str, tuple[Callable, Callable, Callable]] = {
                "Namespace": (lambda o: self.core.create_namespace(o), lambda n: self.core.read_namespace(n),
                              lambda n, o: self.core.patch_namespace(n, o)),
                "ConfigMap": (lambda o: self.core.create_namespaced_config_map(self.ns, o),
                              lambda n: self.core.read_namespaced_config_map(n, self.ns),
                              lambda n, o: self.core.patch_namespaced_config_map(n, self.ns, o)),
                "Secret": (lambda o: self.core.create_namespaced_secret(self.ns, o),
                           lambda n: self.core.read_namespaced_secret(n, self.ns),
                           lambda n, o: None),  # never rewrite the password
                "Service": (lambda o: self.core.create_namespaced_service(self.ns, o),
                            lambda n: self.core.read_namespaced_service(n, self.ns),
                            lambda n, o: self.core.patch_namespaced_service(n, self.ns, o)),
                "Deployment": (lambda o: self.apps.create_namespaced_deployment(self.ns, o),
                               lambda n: self.apps.read_namespaced_deployment(n, self.ns),
                               lambda n, o: self.apps.patch_namespaced_deployment(n, self.ns, o)),
                "RayService": (lambda o: self.custom.create_namespaced_custom_object(
                                   RAY_GROUP, RAY_VERSION, self.ns, RAY_PLURAL, o),
                               lambda n: self.custom.get_namespaced_custom_object(
                                   RAY_GROUP, RAY_VERSION, self.ns, RAY_PLURAL, n),
                               lambda n, o: self.custom.patch_namespaced_custom_object(
                                   RAY_GROUP, RAY_VERSION, self.ns, RAY_PLURAL, n, o)),
            }
            create, read, patch = creators[kind_name]
            try:
                create(obj)
            except ApiException as err:
                if err.status != 409:
                    raise InfrastructureError(f"creating {kind_name} {name} failed: {err.reason}",
                                              evidence=str(err.body)[:200]) from None
                safety.check_owned(read(name), f"{kind_name} {name}")
                patch(name, obj)

    def up(self, timeout_s: float = 900.0) -> None:
        """Apply the namespace, Redis, the app and the RayService, then wait until it serves."""
        safety.check_namespace(self._namespace(), self.ns)
        desired = self.ray.app.to_serve_config()
        objects = render(self.ray, self._password())
        for obj in objects:
            if obj["kind"] == "RayService":
                obj["metadata"].setdefault("annotations", {})[SERVE_CONFIG_ANNOTATION] = json.dumps(desired)
        self.apply(objects)
        self.created = True
        self.wait_ready(timeout_s)

    def down(self, timeout_s: float = 300.0) -> None:
        """Delete what we created: the RayService, Redis, Services, ConfigMaps, Secret, then the namespace."""
        for fwd in self._forwarders.values():
            fwd[1].stop()
        self._forwarders.clear()
        for timer in self._timers:
            timer.cancel()
        self.heal()
        ns = self._namespace()
        if ns is None:
            return
        safety.check_namespace(ns, self.ns)
        self.core.delete_namespace(self.ns)

    # ------------------------------------------------------------------ Cluster protocol
    @property
    def capabilities(self) -> Capabilities:
        node_loss = self.is_kind or bool(self.target.node_loss_hook)
        return Capabilities(
            kill_pod=True,
            kill_node=node_loss,
            partition_pod=False,
            kill_actor=True,
            kill_redis=self.ray.gcs_ft != "off",
            switch_gcs_ft=True,
            direct_pod_endpoints=True,
            reasons={
                "kill_node": "node loss on a non-kind cluster needs --node-loss-hook (a command that removes {node})",
                "partition_pod": "partitions are not implemented on the Kubernetes target (use the local target)",
                "kill_redis": "GCS fault tolerance is off: there is no Redis",
            },
        )

    def pods(self) -> list[PodInfo]:
        out = []
        for pod in self._our_pods():
            labels = pod.metadata.labels or {}
            role = labels.get("ray.io/node-type") or ("redis" if labels.get("serve-chaos/component") == "redis" else "")
            if not role:
                continue
            status = pod.status
            ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions or []))
            phase = "Terminating" if pod.metadata.deletion_timestamp else (status.phase or "Pending")
            restarts = sum(cs.restart_count or 0 for cs in (status.container_statuses or []))
            started = status.start_time.timestamp() if status.start_time else None
            out.append(PodInfo(name=pod.metadata.name, role="worker" if role == "worker" else role,
                               node=pod.spec.node_name or "", ip=status.pod_ip or "", phase=phase, ready=ready,
                               uid=pod.metadata.uid, restarts=restarts, started_at=started))
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

    def endpoints(self) -> Endpoints:
        host = self.target.host
        pods = {}
        live = {p.name: p for p in self.pods() if p.role in ("head", "worker") and p.phase == "Running"}
        for name, (uid, fwd, port) in list(self._forwarders.items()):
            if name not in live or live[name].uid != uid:
                fwd.stop()
                del self._forwarders[name]
        for name, pod in live.items():
            if name not in self._forwarders:
                fwd = PodPortForwarder(self._portforward_opener(name), 8000)
                self._forwarders[name] = (pod.uid, fwd, fwd.start())
            pods[name] = f"http://{host}:{self._forwarders[name][2]}"
        return Endpoints(front_door=f"http://{host}:{self.target.serve_host_port}",
                         dashboard=f"http://{host}:{self.target.dashboard_host_port}", pods=pods)

    def _portforward_opener(self, pod: str) -> Callable[[], Any]:
        from kubernetes.stream import portforward

        return lambda: portforward(self.core.connect_get_namespaced_pod_portforward, pod, self.ns, ports="8000")

    def settings(self) -> dict[str, Any]:
        spec = self._rayservice().get("spec", {})
        cluster = spec.get("rayClusterConfig", {})
        gcs_ft = "gcsFaultToleranceOptions" in cluster or \
            (self._rayservice().get("metadata", {}).get("annotations") or {}).get("ray.io/ft-enabled") == "true"
        return {
            "target": self.name,
            "context": self.context,
            "gcs_ft": gcs_ft,
            "gcs_ft_form": self.ray.gcs_ft if gcs_ft else "off",
            "gcs_rpc_server_reconnect_timeout_s_workers": self.ray.gcs_reconnect_timeout_s if gcs_ft else 60,
            "ray_image": self.ray.ray_image,
            "workers": self.ray.workers,
            **node_health_check({}),
        }

    def serve_config(self) -> dict[str, Any]:
        annotations = self._rayservice().get("metadata", {}).get("annotations") or {}
        return json.loads(annotations.get(SERVE_CONFIG_ANNOTATION, "{}"))

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        t0 = time.time()
        self._rayservice()
        body = {"metadata": {"annotations": {SERVE_CONFIG_ANNOTATION: json.dumps(config)}},
                "spec": {"serveConfigV2": yaml.safe_dump({"applications": config["applications"]}, sort_keys=False)}}
        self.custom.patch_namespaced_custom_object(RAY_GROUP, RAY_VERSION, self.ns, RAY_PLURAL, self.ray.name, body)
        return ActionRecord("apply_serve_config", self.ray.name, t0, time.time(), {"replace": replace})

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
            self._timers.append(threading.Timer(down_for_s, self._scale_redis, args=(1,)))
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

    def kill_node(self, node: str, replacement_delay_s: float = 10.0) -> ActionRecord:
        t0 = time.time()
        ours = [p for p in self.pods() if p.node == node]
        if not ours:
            raise ServeChaosError(f"node {node} runs no pod of ours; refusing to kill it")
        if self.is_kind:
            self.cli.node_network(node, connect=False)
            t_cut = time.time()
            self.cli.node_kill(node)
            self.killed_nodes.append(node)
        elif self.target.node_loss_hook:
            import shlex
            import subprocess

            subprocess.run(shlex.split(self.target.node_loss_hook.replace("{node}", node)), check=True, timeout=300)
            t_cut = time.time()
        else:
            raise ServeChaosError(self.capabilities.why_not("kill_node"))
        # The guide deletes the Node object; its pods are then recreated elsewhere.
        timer = threading.Timer(replacement_delay_s, self._delete_node, args=(node,))
        timer.start()
        self._timers.append(timer)
        return ActionRecord("kill_node", node, t0, time.time(),
                            {"pods": [{"pod": p.name, "uid": p.uid} for p in ours], "t_network_cut": t_cut,
                             "replacement_delay_s": replacement_delay_s})

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
        from kubernetes.stream import stream

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
        output = stream(self.core.connect_get_namespaced_pod_exec, head.metadata.name, self.ns,
                        container="ray-head", command=command, stderr=True, stdin=False, stdout=True, tty=False)
        lines = [ln for ln in str(output).splitlines() if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"error": "no output from the driver"}
        if "error" in result:
            raise ServeChaosError(f"ray.kill of {names[0]} failed: {result['error']}")
        return ActionRecord("kill_actor", names[0] if len(names) == 1 else f"{len(names)} actors", t0, time.time(),
                            result)

    def set_gcs_ft(self, enabled: bool, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        """Switch GCS FT by rewriting the RayService (KubeRay then rolls out a new RayCluster)."""
        t0 = time.time()
        self.ray = replace(self.ray, gcs_ft="options" if enabled else "off")
        objects = render(self.ray, self._password())
        desired = serve_config or self.serve_config()
        for obj in objects:
            if obj["kind"] == "RayService":
                obj["metadata"].setdefault("annotations", {})[SERVE_CONFIG_ANNOTATION] = json.dumps(desired)
                obj["spec"]["serveConfigV2"] = yaml.safe_dump({"applications": desired["applications"]},
                                                              sort_keys=False)
                if not enabled:
                    obj["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"] = None
        self.apply(objects)
        return ActionRecord("set_gcs_ft", self.ray.name, t0, time.time(), {"enabled": enabled})

    def heal(self) -> list[ActionRecord]:
        records = []
        for node in list(self.killed_nodes):
            t0 = time.time()
            self.cli.node_network(node, connect=True)
            self.cli.node_start(node)
            self.killed_nodes.remove(node)
            records.append(ActionRecord("heal_node", node, t0, time.time(), {}))
        return records

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        out = []
        for ev in self.core.list_namespaced_event(self.ns).items:
            when = ev.last_timestamp or ev.event_time or ev.first_timestamp
            t = when.timestamp() if when else 0.0
            if t >= since:
                out.append({"t": t, "kind": ev.reason, "object": f"{ev.involved_object.kind}/{ev.involved_object.name}",
                            "message": (ev.message or "")[:300]})
        return sorted(out, key=lambda e: e["t"])

    # ------------------------------------------------------------------ readiness
    def readiness_problem(self) -> str | None:
        status = self._rayservice().get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        if status.get("serviceStatus") != "Running" and conditions.get("Ready") != "True":
            return f"RayService not ready ({status.get('serviceStatus') or conditions or 'no status'})"
        for pod in self.pods():
            if pod.phase != "Running":
                return f"pod {pod.name} is {pod.phase}"
        endpoints = self.endpoints()
        try:
            details = self._session.get(f"{endpoints.dashboard}/api/serve/applications/", timeout=5).json()
        except (requests.RequestException, ValueError) as err:
            return f"dashboard not answering ({type(err).__name__})"
        want = desired_replicas(self.serve_config())
        running = sum(1 for app in (details.get("applications") or {}).values()
                      for dep in app.get("deployments", {}).values()
                      for r in dep.get("replicas", []) if r.get("state") == "RUNNING")
        if running != want:
            return f"{running}/{want} replicas RUNNING"
        try:
            if self._session.get(endpoints.front_door + "/", timeout=5).status_code != 200:
                return "Serve endpoint not answering 200"
        except requests.RequestException as err:
            return f"Serve endpoint not reachable ({type(err).__name__})"
        return None

    def wait_ready(self, timeout_s: float = 600.0) -> None:
        deadline = time.time() + timeout_s
        problem = "not checked"
        while time.time() < deadline:
            try:
                problem = self.readiness_problem()
            except ServeChaosError as err:
                problem = err.what
            if problem is None:
                return
            time.sleep(3.0)
        raise InfrastructureError(f"the RayService was not ready within {timeout_s:.0f} s: {problem}",
                                  hint=f"`kubectl -n {self.ns} describe rayservice {self.ray.name}`")
