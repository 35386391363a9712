"""Every Kubernetes object of the kind target, generated from one source.

- Redis: Secret (password), ConfigMap (redis.conf without the password),
  Service and Deployment -- the guide's development Redis, password from the Secret.
- The app: a ConfigMap carrying ``runtime/app/sleepy_pid.py`` itself, mounted
  into every Ray pod, so the stock ``rayproject/ray`` image serves it unchanged.
- RayService ``ray.io/v1`` with ``serveConfigV2`` and GCS FT either through
  ``gcsFaultToleranceOptions`` (KubeRay 1.7), the guide's legacy form
  (annotation ``ray.io/ft-enabled`` + ``RAY_REDIS_ADDRESS``), or off.
- NodePort Services for the Serve endpoint and the dashboard (kind maps them to
  the host).
Every object carries ``app.kubernetes.io/managed-by: serve-chaos``: the target
touches nothing without it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runtime.app.serve_config import SCENARIO_APP, SleepyPidConfig
from runtime.errors import ConfigError

MANAGED_BY = {"app.kubernetes.io/managed-by": "serve-chaos"}
GCS_FT_MODES = ("options", "legacy", "off")
APP_MOUNT = "/home/ray/serve-chaos"
REDIS_SECRET_KEY = "password"
SERVE_NODE_PORT = 30800
DASHBOARD_NODE_PORT = 30826


@dataclass(frozen=True)
class KubeRayConfig:
    """The RayService under test on Kubernetes.

    ``gcs_ft``: ``options`` (gcsFaultToleranceOptions), ``legacy`` (annotation +
    RAY_REDIS_ADDRESS, as in the guide) or ``off``.  ``workers``: worker pods.
    ``node_selectors``: place the head and the workers on labelled nodes so a
    node loss does not take the head (kind-config.yaml labels them).
    """

    namespace: str = "serve-chaos"
    name: str = "serve-chaos"
    ray_image: str = "rayproject/ray:2.60.0"
    redis_image: str = "redis:7.2"
    gcs_ft: str = "options"
    workers: int = 2
    app: SleepyPidConfig = SCENARIO_APP
    head_cpus: str = "2"
    worker_cpus: str = "1"
    memory: str = "2Gi"
    node_selectors: bool = True
    worker_prestop: bool = True
    gcs_reconnect_timeout_s: int = 600
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.gcs_ft not in GCS_FT_MODES:
            raise ConfigError(f"gcs_ft must be one of {', '.join(GCS_FT_MODES)}, got {self.gcs_ft!r}")
        if not 1 <= self.workers <= 20:
            raise ConfigError(f"workers must be between 1 and 20, got {self.workers}")
        if not self.namespace or not self.namespace.replace("-", "").isalnum() or self.namespace != self.namespace.lower():
            raise ConfigError(f"namespace {self.namespace!r} is not a valid Kubernetes namespace name")

    @property
    def redis_service(self) -> str:
        return f"{self.name}-redis"

    @property
    def secret_name(self) -> str:
        return f"{self.name}-redis-password"


def labels(config: KubeRayConfig, component: str) -> dict[str, str]:
    return {**MANAGED_BY, "app.kubernetes.io/part-of": config.name, "serve-chaos/component": component,
            **config.labels}


def _meta(config: KubeRayConfig, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": config.namespace, "labels": labels(config, component)}


def namespace(config: KubeRayConfig) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": config.namespace, "labels": labels(config, "namespace")}}


def redis_objects(config: KubeRayConfig, password: str) -> list[dict[str, Any]]:
    """The guide's development Redis, with the password kept in a Secret only."""
    sel = {"serve-chaos/component": "redis", "app.kubernetes.io/part-of": config.name}
    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": _meta(config, config.secret_name, "redis"),
         "stringData": {REDIS_SECRET_KEY: password}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(config, f"{config.name}-redis-config", "redis"),
         # AOF persistence: a restarted Redis comes back with the GCS tables.
         "data": {"redis.conf": "port 6379\nbind 0.0.0.0\nprotected-mode no\nappendonly yes\n"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(config, config.redis_service, "redis"),
         "spec": {"type": "ClusterIP", "ports": [{"name": "redis", "port": 6379}], "selector": sel}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(config, config.redis_service, "redis"),
         "spec": {
             "replicas": 1,
             "selector": {"matchLabels": sel},
             "template": {
                 "metadata": {"labels": labels(config, "redis")},
                 "spec": {
                     "containers": [{
                         "name": "redis",
                         "image": config.redis_image,
                         "command": ["sh", "-c",
                                     'exec redis-server /usr/local/etc/redis/redis.conf --requirepass "$REDIS_PASSWORD"'],
                         "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {
                             "name": config.secret_name, "key": REDIS_SECRET_KEY}}}],
                         "ports": [{"containerPort": 6379}],
                         "volumeMounts": [{"name": "config", "mountPath": "/usr/local/etc/redis/redis.conf",
                                           "subPath": "redis.conf"}],
                     }],
                     "volumes": [{"name": "config", "configMap": {"name": f"{config.name}-redis-config"}}],
                 },
             },
         }},
    ]


def app_configmap(config: KubeRayConfig) -> dict[str, Any]:
    """The Serve app's source, mounted as ``runtime/app/sleepy_pid.py`` under APP_MOUNT."""
    app_dir = Path(__file__).resolve().parents[1] / "app"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(config, f"{config.name}-app", "app"),
            "data": {"sleepy_pid.py": (app_dir / "sleepy_pid.py").read_text(),
                     "__init__.py": '"""serve-chaos app package (shipped by ConfigMap)."""\n'}}


def _app_volume(config: KubeRayConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    volume = {"name": "serve-chaos-app", "configMap": {"name": f"{config.name}-app", "items": [
        {"key": "__init__.py", "path": "runtime/__init__.py"},
        {"key": "__init__.py", "path": "runtime/app/__init__.py"},
        {"key": "sleepy_pid.py", "path": "runtime/app/sleepy_pid.py"},
    ]}}
    mount = {"name": "serve-chaos-app", "mountPath": APP_MOUNT}
    return volume, mount


def _container(config: KubeRayConfig, name: str, cpus: str, env: list[dict[str, Any]],
               ports: list[dict[str, Any]], lifecycle: dict[str, Any] | None) -> dict[str, Any]:
    _, mount = _app_volume(config)
    container: dict[str, Any] = {
        "name": name,
        "image": config.ray_image,
        "env": [{"name": "PYTHONPATH", "value": APP_MOUNT}, *env],
        "ports": ports,
        "resources": {"limits": {"cpu": cpus, "memory": config.memory},
                      "requests": {"cpu": cpus, "memory": config.memory}},
        "volumeMounts": [mount],
    }
    if lifecycle:
        container["lifecycle"] = lifecycle
    return container


def rayservice(config: KubeRayConfig) -> dict[str, Any]:
    volume, _ = _app_volume(config)
    redis_address = f"{config.redis_service}.{config.namespace}.svc.cluster.local:6379"
    head_env: list[dict[str, Any]] = []
    worker_env: list[dict[str, Any]] = []
    head_params: dict[str, str] = {"dashboard-host": "0.0.0.0", "num-cpus": config.head_cpus}
    annotations: dict[str, str] = {}
    cluster: dict[str, Any] = {"rayVersion": config.ray_image.rsplit(":", 1)[-1].split("-")[0]}
    if config.gcs_ft == "options":
        cluster["gcsFaultToleranceOptions"] = {
            "redisAddress": redis_address,
            "redisPassword": {"valueFrom": {"secretKeyRef": {"name": config.secret_name, "key": REDIS_SECRET_KEY}}},
        }
    elif config.gcs_ft == "legacy":
        annotations["ray.io/ft-enabled"] = "true"
        head_env += [
            {"name": "RAY_REDIS_ADDRESS", "value": redis_address},
            {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": config.secret_name,
                                                                      "key": REDIS_SECRET_KEY}}},
        ]
        # Expanded by the shell KubeRay starts Ray in; the literal never leaves the Secret.
        head_params["redis-password"] = "$REDIS_PASSWORD"
        worker_env.append({"name": "RAY_gcs_rpc_server_reconnect_timeout_s",
                           "value": str(config.gcs_reconnect_timeout_s)})
    head_pod_spec: dict[str, Any] = {
        "containers": [_container(config, "ray-head", config.head_cpus, head_env, [
            {"containerPort": 6379, "name": "gcs"}, {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"}, {"containerPort": 8000, "name": "serve"}], None)],
        "volumes": [volume],
    }
    prestop = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}} if config.worker_prestop else None
    worker_pod_spec: dict[str, Any] = {
        "containers": [_container(config, "ray-worker", config.worker_cpus, worker_env,
                                  [{"containerPort": 8000, "name": "serve"}], prestop)],
        "volumes": [volume],
    }
    if config.node_selectors:
        head_pod_spec["nodeSelector"] = {"serve-chaos/role": "head"}
        worker_pod_spec["nodeSelector"] = {"serve-chaos/role": "worker"}
    pod_labels = labels(config, "ray")
    cluster["headGroupSpec"] = {
        "rayStartParams": head_params,
        "template": {"metadata": {"labels": pod_labels}, "spec": head_pod_spec},
    }
    cluster["workerGroupSpecs"] = [{
        "groupName": "workers",
        "replicas": config.workers,
        "minReplicas": config.workers,
        "maxReplicas": config.workers,
        "rayStartParams": {},
        "template": {"metadata": {"labels": pod_labels}, "spec": worker_pod_spec},
    }]
    meta = _meta(config, config.name, "rayservice")
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": meta,
        "spec": {
            "serveConfigV2": serve_config_v2(config.app),
            "rayClusterConfig": cluster,
        },
    }


def serve_config_v2(app: SleepyPidConfig) -> str:
    """serveConfigV2 is a YAML string of the Serve config (proxy and HTTP options are KubeRay's)."""
    config = copy.deepcopy(app.to_serve_config())
    return yaml.safe_dump({"applications": config["applications"]}, sort_keys=False)


def node_port_services(config: KubeRayConfig) -> list[dict[str, Any]]:
    """The Serve endpoint (pods KubeRay marks ray.io/serve=true) and the head's dashboard on NodePorts."""
    origin = {"ray.io/originated-from-crd": "RayService", "ray.io/originated-from-cr-name": config.name}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(config, f"{config.name}-serve-nodeport", "serve"),
         "spec": {"type": "NodePort", "selector": {**origin, "ray.io/serve": "true"},
                  "ports": [{"name": "serve", "port": 8000, "targetPort": 8000, "nodePort": SERVE_NODE_PORT}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta(config, f"{config.name}-dashboard-nodeport", "dashboard"),
         "spec": {"type": "NodePort", "selector": {**origin, "ray.io/node-type": "head"},
                  "ports": [{"name": "dashboard", "port": 8265, "targetPort": 8265,
                             "nodePort": DASHBOARD_NODE_PORT}]}},
    ]


def render(config: KubeRayConfig, password: str) -> list[dict[str, Any]]:
    """All objects, in apply order."""
    objects = [namespace(config), app_configmap(config)]
    if config.gcs_ft != "off":
        objects += redis_objects(config, password)
    objects.append(rayservice(config))
    objects += node_port_services(config)
    return objects


def to_yaml(objects: list[dict[str, Any]], redact: bool = True) -> str:
    """Multi-document YAML; Secret values are redacted unless asked otherwise."""
    docs = []
    for obj in objects:
        if redact and obj.get("kind") == "Secret":
            obj = {**obj, "stringData": {k: "<redacted>" for k in obj.get("stringData", {})}}
        docs.append(yaml.safe_dump(obj, sort_keys=False))
    return "---\n".join(docs)
