"""Every Kubernetes object of the kind target, generated from one source.

- Redis: Secret (password), ConfigMap (redis.conf without the password), a
  PersistentVolumeClaim for its append-only file, Service and Deployment
  (strategy Recreate: one pod owns the volume at a time).
- The app: its code in a ConfigMap (the bundled examples' modules, or the
  ``.py`` files of a user's ``--app-dir``) mounted into every Ray pod on its
  ``PYTHONPATH``, so the stock ``rayproject/ray`` image serves it unchanged; or,
  with ``--image``, the user's image (code inside) for every Ray pod, no ConfigMap.
- RayService ``ray.io/v1`` with ``serveConfigV2``, GCS FT either through
  ``gcsFaultToleranceOptions`` (KubeRay 1.7), the guide's legacy form
  (annotation ``ray.io/ft-enabled`` + ``RAY_REDIS_ADDRESS``), or off; and
  ``spec.serveService`` as a NodePort, so KubeRay owns the Serve Service and
  keeps its selector on the active RayCluster (``common/service.go``
  BuildServeService: ``ray.io/cluster=<active>``, ``ray.io/serve=true``).
- A NodePort Service for the dashboard, selecting the head pod by labels
  KubeRay puts on pods (``common/pod.go`` labelPod), pinned to the active
  RayCluster once it is known (serve-chaos re-pins it after an upgrade).
Every object carries ``app.kubernetes.io/managed-by: serve-chaos``: the target
touches nothing without it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from serve_chaos.runtime.app.serve_config import SCENARIO_APP
from serve_chaos.runtime.app.spec import CONFIGMAP_LIMIT, AppSpec, files_size
from serve_chaos.runtime.errors import ConfigError

MANAGED_BY = {"app.kubernetes.io/managed-by": "serve-chaos"}
GCS_FT_MODES = ("options", "legacy", "off")
APP_MOUNT = "/home/ray/serve-chaos"
REDIS_SECRET_KEY = "password"
SERVE_NODE_PORT = 30800
DASHBOARD_NODE_PORT = 30826
#: Labels KubeRay v1.7.0 puts on every Ray pod (``ray-operator/controllers/ray/common/pod.go``
#: labelPod; keys in ``utils/constant.go``).
RAY_CLUSTER_LABEL = "ray.io/cluster"
RAY_NODE_TYPE_LABEL = "ray.io/node-type"
RAY_SERVE_LABEL = "ray.io/serve"
#: ``rayv1.RedisCleanupNode``: the node type of the pod of the Redis cleanup Job, which
#: is built from the head pod (``raycluster_controller.go`` buildRedisCleanupJob).
REDIS_CLEANUP_NODE_TYPE = "redis-cleanup"
#: Node role labels of kind-config.yaml.  Redis and the operator sit with the head,
#: never on a worker node a node-loss scenario may kill.
ROLE_LABEL = "serve-chaos/role"
#: The desired Serve config as JSON on the RayService, so any later command knows it.
SERVE_CONFIG_ANNOTATION = "serve-chaos/serve-config"
#: ``AppSpec.code_id`` of the code the pods carry (image or ConfigMap digest).
APP_CODE_ANNOTATION = "serve-chaos/app-code"
#: A change of the Ray pods made by ``upgrade_cluster`` (JSON: env, labels, image), so any later
#: command renders the same cluster spec instead of rolling it back.
CLUSTER_CHANGE_ANNOTATION = "serve-chaos/cluster-change"
#: What ``upgrade_cluster`` may change in the Ray pods' template.
CLUSTER_CHANGE_KEYS = ("env", "labels", "image")


#: The oldest Ray the kind target runs.  KubeRay v1.7.0 itself sets no minimum for what we use
#: -- its Ray version gates are token auth (2.52, ``utils/validation.go``), Kubernetes token
#: auth (2.55), worker-group priority (2.56) and HTTP probes from 2.53 (``common/pod.go``
#: supportsUnifiedHealthCheck: before it, exec probes ``bash -c "wget ... | grep success"`` on
#: head and workers; a Redis username "from 2.41" there is only a comment, nothing enforces
#: it) -- so the floor is the project's
#: supported range (2.40.0), where Ray has what the kind target calls: ``ray drain-node``
#: (``ray/scripts/scripts.py``), ``/api/local_raylet_healthz`` (the exec probe), and
#: ``ray._private.gcs_utils.cleanup_redis_storage(host, port, password, use_ssl, storage_namespace)``
#: as KubeRay's Redis cleanup Job calls it (``raycluster_controller.go`` buildRedisCleanupJob);
#: checked in the 2.40.0 and 2.50.0 wheels.
MIN_RAY_VERSION = (2, 40, 0)


def check_ray_version(version: str) -> None:
    """One line when ``version`` is not X.Y.Z or is older than ``MIN_RAY_VERSION``."""
    import re

    found = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", str(version))
    floor = ".".join(map(str, MIN_RAY_VERSION))
    if not found:
        raise ConfigError(f"ray_version {version!r} is not a Ray version", hint=f"give X.Y.Z, at least {floor}")
    if tuple(int(x) for x in found.groups()) < MIN_RAY_VERSION:
        raise ConfigError(f"Ray {version} is below {floor}, the oldest the kind target runs",
                          hint=f"use --ray-version {floor} or newer")


@dataclass(frozen=True)
class KubeRayConfig:
    """The RayService under test on Kubernetes.

    ``gcs_ft``: ``options`` (gcsFaultToleranceOptions), ``legacy`` (annotation +
    RAY_REDIS_ADDRESS, as in the guide) or ``off``.  ``workers``: worker pods.
    ``num_cpus``: Ray's logical CPUs per pod (rayStartParams); ``cpu_request``
    and ``cpu_limit`` what a pod asks of its node: kind nodes share the host's
    cores, so a 2-vCPU runner cannot schedule a pod that requests 2.
    ``node_selectors``: place the head (with Redis) and the workers on nodes labelled by role
    (kind-config.yaml labels them); off -- on a cluster whose nodes carry no such labels --
    Redis follows the head by pod affinity and every Ray pod keeps to a node of its own.
    ``redis_storage``: size of Redis's volume on ``storage_class`` (kind's
    ``standard`` is its local-path provisioner).  ``ray_version``: at least
    ``MIN_RAY_VERSION`` (see there why).
    """

    namespace: str = "serve-chaos"
    name: str = "serve-chaos"
    #: The Ray the pods run: ``rayproject/ray:<ray_version>`` (and KubeRay's ``rayVersion``).
    ray_version: str = "2.60.0"
    redis_image: str = "redis:7.2"
    gcs_ft: str = "options"
    workers: int = 2
    app: AppSpec = SCENARIO_APP
    num_cpus: int = 1
    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory: str = "2Gi"
    memory_request: str = "1Gi"
    node_selectors: bool = True
    worker_prestop: bool = True
    redis_storage: str = "1Gi"
    storage_class: str = "standard"
    labels: dict[str, str] = field(default_factory=dict)
    #: ``upgrade_cluster``'s change of the Ray pods, as JSON (``{"env": {...}, "labels": {...},
    #: "image": ...}``); empty: none.
    cluster_change: str = ""

    def __post_init__(self) -> None:
        check_ray_version(self.ray_version)
        if self.gcs_ft not in GCS_FT_MODES:
            raise ConfigError(f"gcs_ft must be one of {', '.join(GCS_FT_MODES)}, got {self.gcs_ft!r}")
        if not isinstance(self.workers, int) or not 1 <= self.workers <= 20:
            raise ConfigError(f"workers must be a whole number between 1 and 20, got {self.workers!r}")
        if not self.namespace or not self.namespace.replace("-", "").isalnum() or self.namespace != self.namespace.lower():
            raise ConfigError(f"namespace {self.namespace!r} is not a valid Kubernetes namespace name")
        size = files_size(self.app.files)
        if not self.app.image and size > CONFIGMAP_LIMIT:
            raise ConfigError(f"the app's code is {size // 1024} KiB; a ConfigMap holds at most "
                              f"{CONFIGMAP_LIMIT // 1024} KiB", hint="build an image with the code and pass --image")

    @property
    def ray_image(self) -> str:
        return f"rayproject/ray:{self.ray_version}"

    @property
    def change(self) -> dict[str, Any]:
        return json.loads(self.cluster_change) if self.cluster_change else {}

    @property
    def pod_image(self) -> str:
        """The Ray pods' image: an upgrade's, the user's (code inside) or Ray's (code from the ConfigMap)."""
        return self.change.get("image") or self.app.image or self.ray_image

    @property
    def redis_service(self) -> str:
        return f"{self.name}-redis"

    @property
    def secret_name(self) -> str:
        return f"{self.name}-redis-password"

    @property
    def serve_service(self) -> str:
        """KubeRay's default name for a RayService's Serve Service (``utils.GenerateServeServiceName``)."""
        return f"{self.name}-serve-svc"

    @property
    def dashboard_service(self) -> str:
        return f"{self.name}-dashboard-nodeport"


def merge_change(current: str, change: dict[str, Any]) -> str:
    """``current`` (a cluster change as JSON) with ``change`` over it; a one-line error for
    anything but pod env vars, pod labels and the image."""
    unknown = sorted(set(change) - set(CLUSTER_CHANGE_KEYS))
    if unknown or not change:
        raise ConfigError(f"a cluster change may set {', '.join(CLUSTER_CHANGE_KEYS)}, got {sorted(change) or 'nothing'}")
    merged = json.loads(current) if current else {}
    for key in ("env", "labels"):
        values = change.get(key) or {}
        if not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
            raise ConfigError(f"a cluster change's {key} must map names to strings, got {values!r}")
        if values:
            merged[key] = {**merged.get(key, {}), **values}
    if "image" in change:
        if not isinstance(change["image"], str) or not change["image"]:
            raise ConfigError(f"a cluster change's image must be an image name, got {change['image']!r}")
        merged["image"] = change["image"]
    return json.dumps(merged, sort_keys=True)


def labels(config: KubeRayConfig, component: str) -> dict[str, str]:
    return {**MANAGED_BY, "app.kubernetes.io/part-of": config.name, "serve-chaos/component": component,
            **config.labels}


def _meta(config: KubeRayConfig, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": config.namespace, "labels": labels(config, component)}


def namespace(config: KubeRayConfig) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": config.namespace, "labels": labels(config, "namespace")}}


def redis_selector(config: KubeRayConfig) -> dict[str, str]:
    return {"serve-chaos/component": "redis", "app.kubernetes.io/part-of": config.name}


def redis_objects(config: KubeRayConfig, password: str) -> list[dict[str, Any]]:
    """The guide's development Redis with its data on a volume and the password in a Secret only.

    The append-only file lives on a PersistentVolumeClaim: scaling Redis to 0 and
    back must not empty the GCS store (an emptied store is ray-project/ray#33854,
    not the fault under test).  ``Recreate`` keeps two Redis pods off one volume.
    """
    claim = f"{config.name}-redis-data"
    pod_spec: dict[str, Any] = {
        "containers": [{
            "name": "redis",
            "image": config.redis_image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c",
                        'exec redis-server /usr/local/etc/redis/redis.conf --requirepass "$REDIS_PASSWORD"'],
            "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {
                "name": config.secret_name, "key": REDIS_SECRET_KEY}}}],
            "ports": [{"containerPort": 6379, "name": "redis"}],
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
            "volumeMounts": [{"name": "config", "mountPath": "/usr/local/etc/redis/redis.conf",
                              "subPath": "redis.conf"},
                             {"name": "data", "mountPath": "/data"}],
        }],
        "volumes": [{"name": "config", "configMap": {"name": f"{config.name}-redis-config"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
    }
    if config.node_selectors:
        pod_spec["nodeSelector"] = {ROLE_LABEL: "head"}
    else:
        pod_spec["affinity"] = with_the_head(config)
    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": _meta(config, config.secret_name, "redis"),
         "stringData": {REDIS_SECRET_KEY: password}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(config, f"{config.name}-redis-config", "redis"),
         "data": {"redis.conf": "port 6379\nbind 0.0.0.0\nprotected-mode no\n"
                                "appendonly yes\nappendfsync everysec\ndir /data\n"}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(config, claim, "redis"),
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": config.storage_class,
                  "resources": {"requests": {"storage": config.redis_storage}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(config, config.redis_service, "redis"),
         "spec": {"type": "ClusterIP", "ports": [{"name": "redis", "port": 6379, "targetPort": 6379}],
                  "selector": redis_selector(config)}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(config, config.redis_service, "redis"),
         "spec": {
             "replicas": 1,
             "strategy": {"type": "Recreate"},
             "selector": {"matchLabels": redis_selector(config)},
             "template": {"metadata": {"labels": labels(config, "redis")}, "spec": pod_spec},
         }},
    ]


def _key(path: str) -> str:
    """A ConfigMap key for a file path (keys may not hold ``/``)."""
    return path.replace("/", "__")


def app_configmap(config: KubeRayConfig) -> dict[str, Any] | None:
    """The app's code, one key per file (mounted at its path under APP_MOUNT); None with ``--image``."""
    if config.app.image:
        return None
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(config, f"{config.name}-app", "app"),
            "data": {_key(path): text for path, text in config.app.files}}


def _app_volume(config: KubeRayConfig) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if config.app.image:
        return None
    volume = {"name": "serve-chaos-app", "configMap": {"name": f"{config.name}-app", "items": [
        {"key": _key(path), "path": path} for path, _ in config.app.files]}}
    return volume, {"name": "serve-chaos-app", "mountPath": APP_MOUNT}


def _container(config: KubeRayConfig, name: str, env: list[dict[str, Any]],
               ports: list[dict[str, Any]], lifecycle: dict[str, Any] | None) -> dict[str, Any]:
    app = _app_volume(config)
    env = env + [{"name": k, "value": v} for k, v in sorted((config.change.get("env") or {}).items())]
    container: dict[str, Any] = {
        "name": name,
        "image": config.pod_image,
        # `kind load` puts the image on the node; a `:latest` or untagged image would default to
        # Always (kubernetes pkg/apis/core/v1/defaults.go SetDefaults_Container) and fail to pull.
        "imagePullPolicy": "IfNotPresent",
        "env": ([{"name": "PYTHONPATH", "value": APP_MOUNT}] if app else []) + env,
        "ports": ports,
        "resources": {"limits": {"cpu": config.cpu_limit, "memory": config.memory},
                      "requests": {"cpu": config.cpu_request, "memory": config.memory_request}},
    }
    if app:
        container["volumeMounts"] = [app[1]]
    if lifecycle:
        container["lifecycle"] = lifecycle
    return container


def redis_address(config: KubeRayConfig) -> str:
    return f"{config.redis_service}.{config.namespace}.svc.cluster.local:6379"


def _gcs_ft(config: KubeRayConfig, cluster: dict[str, Any], head_env: list[dict[str, Any]],
            head_params: dict[str, str]) -> dict[str, str]:
    """Fill in the GCS FT form; returns the RayService annotations it needs.

    No ``externalStorageNamespace``: KubeRay then uses the RayCluster's UID
    (``common/pod.go`` configureRedisFT), so a new RayCluster after an upgrade
    never resurrects the old one's state, and the old one's Redis cleanup Job
    deletes only its own keys.  KubeRay itself sets
    ``RAY_gcs_rpc_server_reconnect_timeout_s=600`` on workers in both forms.
    """
    if config.gcs_ft == "options":
        cluster["gcsFaultToleranceOptions"] = {
            "redisAddress": redis_address(config),
            "redisPassword": {"valueFrom": {"secretKeyRef": {"name": config.secret_name, "key": REDIS_SECRET_KEY}}},
        }
        return {}
    if config.gcs_ft == "legacy":
        head_env += [
            {"name": "RAY_REDIS_ADDRESS", "value": redis_address(config)},
            {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": config.secret_name,
                                                                      "key": REDIS_SECRET_KEY}}},
        ]
        # Expanded by the shell KubeRay starts Ray in; the literal never leaves the Secret.
        head_params["redis-password"] = "$REDIS_PASSWORD"
        return {"ray.io/ft-enabled": "true"}
    return {}


def rayservice(config: KubeRayConfig, serve_config: dict[str, Any] | None = None) -> dict[str, Any]:
    app = _app_volume(config)
    volumes = [app[0]] if app else []
    head_env: list[dict[str, Any]] = []
    head_params: dict[str, str] = {"dashboard-host": "0.0.0.0", "num-cpus": str(config.num_cpus)}
    # The Ray version KubeRay is told is Ray's image's (a user's image must hold the same Ray).
    # KubeRay reads it to choose the pods' probes (common/pod.go supportsUnifiedHealthCheck); a
    # user's image must hold this Ray too.
    cluster: dict[str, Any] = {"rayVersion": config.ray_version}
    desired = serve_config or config.app.to_serve_config()
    annotations = {**_gcs_ft(config, cluster, head_env, head_params),
                   SERVE_CONFIG_ANNOTATION: json.dumps(desired, sort_keys=True),
                   APP_CODE_ANNOTATION: config.app.code_id()}
    if config.cluster_change:
        annotations[CLUSTER_CHANGE_ANNOTATION] = config.cluster_change
    head_pod_spec: dict[str, Any] = {
        "containers": [_container(config, "ray-head", head_env, [
            {"containerPort": 6379, "name": "gcs"}, {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"}, {"containerPort": SERVE_PORT, "name": "serve"}], None)],
        "volumes": volumes,
    }
    prestop = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}} if config.worker_prestop else None
    worker_pod_spec: dict[str, Any] = {
        "containers": [_container(config, "ray-worker", [], [{"containerPort": SERVE_PORT, "name": "serve"}], prestop)],
        "volumes": volumes,
    }
    if config.node_selectors:
        head_pod_spec["nodeSelector"] = {ROLE_LABEL: "head"}
        worker_pod_spec["nodeSelector"] = {ROLE_LABEL: "worker"}
    pod_labels = {**labels(config, "ray"), **(config.change.get("labels") or {})}
    cluster["headGroupSpec"] = {
        "rayStartParams": head_params,
        "template": {"metadata": {"labels": pod_labels}, "spec": head_pod_spec},
    }
    cluster["workerGroupSpecs"] = [{
        "groupName": "workers",
        "replicas": config.workers,
        "minReplicas": config.workers,
        "maxReplicas": config.workers,
        "rayStartParams": {"num-cpus": str(config.num_cpus)},
        "template": {"metadata": {"labels": pod_labels}, "spec": worker_pod_spec},
    }]
    digest = spec_digest(cluster)
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        group["template"]["metadata"]["labels"] = {**pod_labels, SPEC_LABEL: digest}
        group["template"]["spec"]["affinity"] = one_ray_pod_per_node(digest)
    meta = {**_meta(config, config.name, "rayservice"), "annotations": annotations}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": meta,
        "spec": {
            "serveConfigV2": serve_config_v2(desired),
            "rayClusterConfig": cluster,
            "serveService": serve_service(config),
        },
    }


#: A label on every Ray pod whose value names the cluster spec it was made from (``spec_digest``):
#: each RayCluster of a RayService is made from another spec -- an upgrade is a spec change -- so
#: it tells one RayCluster's pods from another's in a selector, which the template cannot do with
#: ``ray.io/cluster`` (KubeRay names the RayCluster after the template is written).
SPEC_LABEL = "serve-chaos/cluster-spec"


def spec_digest(cluster_spec: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(cluster_spec, sort_keys=True).encode()).hexdigest()[:16]


def one_ray_pod_per_node(digest: str) -> dict[str, Any]:
    """A Ray pod never joins a node that runs another Ray pod (head or worker) of the same RayCluster.

    Required anti-affinity on ``kubernetes.io/hostname`` among pods labelled ``ray.io/is-ray-node``
    (``common/pod.go`` labelPod) with this cluster spec's ``SPEC_LABEL``: the new RayCluster of an
    upgrade may share nodes with the old one, and a lost worker's replacement lands on the spare
    node instead of next to the survivor or the head.  A plain label selector, so it means the same
    on every Kubernetes release (``matchLabelKeys``, which scoped this before, is dropped by API
    servers before 1.31 -- or with the MatchLabelKeysInPodAffinity gate off -- and the rule then
    applies across RayClusters: an upgrade's new workers find no node and it never completes).
    """
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": {"ray.io/is-ray-node": "yes", SPEC_LABEL: digest}},
    }]}}


def with_the_head(config: KubeRayConfig) -> dict[str, Any]:
    """Redis on the Ray head's node, on a cluster without role labels: a worker node's loss must
    never take Redis with it (on kind its node selector does this).  Required at scheduling only:
    Redis stays where it is when the head moves."""
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": {RAY_NODE_TYPE_LABEL: "head", "app.kubernetes.io/part-of": config.name}},
    }]}}


def serve_service(config: KubeRayConfig) -> dict[str, Any]:
    """``spec.serveService``: the Serve Service as a NodePort (kind maps it to the host).

    KubeRay replaces its selector with the active cluster's (``common/service.go``
    BuildServeService) and keeps our port, matched by the name ``serve`` of the
    head container's port, with its nodePort.
    """
    return {"metadata": {"name": config.serve_service, "labels": labels(config, "serve")},
            "spec": {"type": "NodePort",
                     "ports": [{"name": "serve", "port": 8000, "targetPort": 8000, "nodePort": SERVE_NODE_PORT}]}}


#: The port of the Ray containers' port named ``serve``: KubeRay's Serve Service targets it and
#: its worker readiness probe asks it for ``/-/healthz`` (``common/pod.go``; ``utils/constant.go``
#: DefaultServingPort).
SERVE_PORT = 8000


def serve_config_v2(serve_config: dict[str, Any]) -> str:
    """serveConfigV2: the user's Serve config as YAML, whole -- ``proxy_location``,
    ``logging_config``, ``grpc_options``, ``http_options`` are honoured as on the local
    target -- except where the proxies listen, which the pods' ports fix: ``http_options.host``
    0.0.0.0 and ``.port`` 8000."""
    config = copy.deepcopy(serve_config)
    config["http_options"] = {**(config.get("http_options") or {}), "host": "0.0.0.0", "port": SERVE_PORT}
    return yaml.safe_dump(config, sort_keys=False)


def dashboard_selector(active_cluster: str | None) -> dict[str, str]:
    """The head pod of the active RayCluster, by labels KubeRay puts on pods (``common/pod.go`` labelPod)."""
    selector = {RAY_NODE_TYPE_LABEL: "head", "app.kubernetes.io/created-by": "kuberay-operator"}
    if active_cluster:
        selector[RAY_CLUSTER_LABEL] = active_cluster
    return selector


def dashboard_service(config: KubeRayConfig, active_cluster: str | None) -> dict[str, Any]:
    """The head's dashboard on a NodePort.  Until the active RayCluster is known (a
    fresh RayService) it selects any head of the namespace; ``up`` pins it."""
    selector = {**dashboard_selector(active_cluster), "app.kubernetes.io/part-of": config.name}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(config, config.dashboard_service, "dashboard"),
            "spec": {"type": "NodePort", "selector": selector,
                     "ports": [{"name": "dashboard", "port": 8265, "targetPort": 8265,
                                "nodePort": DASHBOARD_NODE_PORT}]}}


def render(config: KubeRayConfig, password: str, serve_config: dict[str, Any] | None = None,
           active_cluster: str | None = None) -> list[dict[str, Any]]:
    """All objects, in apply order."""
    code = app_configmap(config)
    objects = [namespace(config), *([code] if code else [])]
    if config.gcs_ft != "off":
        objects += redis_objects(config, password)
    objects.append(rayservice(config, serve_config))
    objects.append(dashboard_service(config, active_cluster))
    return objects


def to_yaml(objects: list[dict[str, Any]], redact: bool = True) -> str:
    """Multi-document YAML; Secret values are redacted unless asked otherwise."""
    docs = []
    for obj in objects:
        if redact and obj.get("kind") == "Secret":
            obj = {**obj, "stringData": {k: "<redacted>" for k in obj.get("stringData", {})}}
        docs.append(yaml.safe_dump(obj, sort_keys=False))
    return "---\n".join(docs)
