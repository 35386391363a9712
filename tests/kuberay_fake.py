"""A fake Kubernetes API with a model of the KubeRay v1.7.0 operator behind it (test doubles only).

The official client builds every request (path, query, headers, body); ``FakeApiClient``
answers them from an in-memory store, so tests see exactly what ``KubeRayCluster``
sends.  ``FakeKubeRay`` then does to that store what the operator does; each
behaviour names the upstream file it imitates (``ray-operator/controllers/ray/``
at tag v1.7.0 of ray-project/kuberay unless said otherwise):

- RayClusters of a RayService are ``<rayservice>-<5 chars>``, labelled with the
  RayService's labels plus ``ray.io/originated-from-*`` (``utils/util.go``
  GenerateRayClusterName; ``rayservice_controller.go`` constructRayClusterForRayService).
- Pods ``<raycluster>-head-<5>`` and ``<raycluster>-<group>-worker-<5>`` (``utils/util.go``
  PodName with generateName; ``raycluster_controller.go`` buildHeadPod/buildWorkerPod),
  labelled by ``common/pod.go`` labelPod (template labels may not override
  ``ray.io/node-type``, ``ray.io/group``, ``ray.io/cluster``) and BuildPod
  (``ray.io/serve``: "true" on workers, "false" on the head until the RayService
  controller finds its proxy healthy: ``rayservice_controller.go`` updateHeadPodServeLabel).
- Services ``<rayservice>-head-svc`` (``common/service.go`` BuildServiceForHeadPod,
  HeadServiceLabels) and ``<rayservice>-serve-svc`` (BuildServeService: the
  user's ``spec.serveService`` with the selector replaced by
  ``ray.io/cluster=<cluster>, ray.io/serve=true`` and KubeRay's labels merged over
  the user's), pointed at a cluster only once it is ready
  (``rayservice_controller.go`` reconcileServicesToReadyCluster).
- A changed ``rayClusterConfig`` makes a pending cluster; the active one serves
  until the pending one is ready, is then replaced in the status (promotion), and
  is deleted ``RayClusterDeletionDelayDuration`` (60 s) later
  (``rayservice_controller.go`` shouldPrepareNewCluster, reconcilePromotionAndServingStatus,
  cleanUpRayClusterInstance); conditions per calculateConditions; observedGeneration
  per calculateStatus.
- Deleting a GCS-FT RayCluster runs a Redis cleanup Job whose pod is built from the
  head pod with ``ray.io/node-type=redis-cleanup`` (``raycluster_controller.go``
  buildRedisCleanupJob); the cluster's finalizer waits for it.
- A crashed Ray container is restarted in place by the kubelet: same pod UID,
  ``restartCount`` + 1 (``raycluster_controller.go`` shouldDeletePod leaves such a pod alone).
- A deleted pod is recreated under a new name (generateName).
- Server-side apply removes fields the same manager stops sending; a merge patch
  (RFC 7386) never removes a key it does not mention (kubernetes
  ``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go``; SSA semantics per
  the Kubernetes "Server-Side Apply" documentation).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import string
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from kubernetes import client
from kubernetes.client import rest

CORE_PLURALS = {"pods": "Pod", "services": "Service", "configmaps": "ConfigMap", "secrets": "Secret",
                "persistentvolumeclaims": "PersistentVolumeClaim", "events": "Event"}
APPS_PLURALS = {"deployments": "Deployment"}
RAY_PLURALS = {"rayservices": "RayService", "rayclusters": "RayCluster"}


class _Resp:
    def __init__(self, status: int, data: Any) -> None:
        self.status = status
        self.reason = "OK" if status < 300 else "Error"
        self.data = json.dumps(data).encode()
        self.headers = {"content-type": "application/json"}

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict:
        return self.headers

    def getheader(self, name: str, default: Any = None) -> Any:
        return self.headers.get(name.lower(), default)


def _rand5(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: keys set to null are removed; keys not mentioned are kept."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _paths(obj: Any, prefix: tuple = ()) -> set[tuple]:
    if isinstance(obj, dict) and obj:
        out: set[tuple] = set()
        for key, value in obj.items():
            out |= _paths(value, prefix + (key,))
        return out
    return {prefix}


def _remove(obj: dict[str, Any], path: tuple) -> None:
    node = obj
    for key in path[:-1]:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def label_selector_matches(expr: str, labels: dict[str, str]) -> bool:
    for term in filter(None, expr.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class Store:
    """Objects by (kind, namespace, name), as JSON dicts; ``applied`` keeps each object's
    last applied configuration (one field manager: ours)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applied: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.rng = random.Random(7)

    def get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, ns, name))

    def list(self, kind: str, ns: str | None = None, selector: str = "") -> list[dict[str, Any]]:
        return [o for (k, n, _), o in sorted(self.objects.items())
                if k == kind and (ns is None or n == ns)
                and label_selector_matches(selector, o["metadata"].get("labels") or {})]

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("kind") == "Secret" and obj.get("stringData"):
            # stringData is write-only: the API server merges it into data, base64-encoded
            # (kubernetes pkg/apis/core/v1 conversion of Secret).
            import base64

            obj.setdefault("data", {}).update({k: base64.b64encode(v.encode()).decode()
                                               for k, v in obj.pop("stringData").items()})
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.UUID(int=self.rng.getrandbits(128))))
        meta.setdefault("creationTimestamp", "2026-11-26T00:00:00Z")
        meta.setdefault("generation", 1)
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def delete(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        self.applied.pop((kind, ns, name), None)
        return self.objects.pop((kind, ns, name), None)

    def apply(self, key: tuple[str, str, str], body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: fields this manager applied before and now omits are removed."""
        original = self.objects.get(key)
        previous = self.applied.get(key, {})
        if original is None:
            obj = copy.deepcopy(body)
        else:
            existing = copy.deepcopy(original)
            for path in _paths(previous) - _paths(body):
                _remove(existing, path)
            obj = merge_patch(existing, body)
            self._bump_generation(original, obj)
        self.applied[key] = copy.deepcopy(body)
        return self.put(obj)

    def patch(self, key: tuple[str, str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        existing = self.objects.get(key)
        if existing is None:
            return None
        obj = merge_patch(existing, body)
        self._bump_generation(existing, obj)
        return self.put(obj)

    @staticmethod
    def _bump_generation(old: dict[str, Any], new: dict[str, Any]) -> None:
        # metadata.generation counts spec changes (status is a subresource).
        new.setdefault("metadata", {})["generation"] = old["metadata"].get("generation", 1) + (
            1 if old.get("spec") != new.get("spec") else 0)
        if "status" in old:
            new["status"] = old["status"]


class FakeApiClient(client.ApiClient):
    """Routes the client's requests to a Store (shared by every client built for one fake)."""

    def __init__(self, store: Store) -> None:
        super().__init__(client.Configuration(host="https://kube.test"))
        self.store = store

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        parsed = urlparse(url)
        call = {"method": method, "path": unquote(parsed.path), "query": parse_qs(parsed.query),
                "headers": dict(header_params or {}), "body": body}
        self.store.calls.append(call)
        status, data = answer(self.store, call)
        return rest.RESTResponse(_Resp(status, data))


def _status(code: int, reason: str = "") -> tuple[int, dict[str, Any]]:
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}


def _route(path: str) -> tuple[str, str, str, str] | None:
    """(kind, namespace, name, subresource) of an API path."""
    patterns = [
        (r"/api/v1/namespaces/([^/]+)", lambda m: ("Namespace", "", m[1], "")),
        (r"/api/v1/namespaces", lambda m: ("Namespace", "", "", "")),
        (r"/api/v1/nodes/([^/]+)", lambda m: ("Node", "", m[1], "")),
        (r"/api/v1/nodes", lambda m: ("Node", "", "", "")),
        (r"/api/v1/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?(?:/([a-z]+))?",
         lambda m: (CORE_PLURALS.get(m[2], "?"), m[1], m[3] or "", m[4] or "")),
        (r"/apis/apps/v1/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?(?:/([a-z]+))?",
         lambda m: (APPS_PLURALS.get(m[2], "?"), m[1], m[3] or "", m[4] or "")),
        (r"/apis/ray\.io/v1/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?",
         lambda m: (RAY_PLURALS.get(m[2], "?"), m[1], m[3] or "", "")),
    ]
    for pattern, build in patterns:
        hit = re.fullmatch(pattern, path)
        if hit:
            return build(hit)
    return None


def answer(store: Store, call: dict[str, Any]) -> tuple[int, Any]:
    route = _route(call["path"])
    if route is None:
        return _status(404, "NotFound")
    kind, ns, name, sub = route
    method = call["method"]
    if not name:
        if method == "GET":
            selector = (call["query"].get("labelSelector") or [""])[0]
            return 200, {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {},
                         "items": store.list(kind, ns if kind not in ("Namespace", "Node") else None, selector)}
        if method == "POST":
            body = copy.deepcopy(call["body"])
            body["metadata"].setdefault("namespace", ns) if ns else None
            if store.get(kind, ns, body["metadata"]["name"]) is not None:
                return _status(409, "AlreadyExists")
            return 201, store.put(body)
        return _status(405, "MethodNotAllowed")
    key = (kind, ns, name)
    if method == "GET":
        found = store.get(*key)
        return (200, found) if found is not None else _status(404, "NotFound")
    if method == "DELETE":
        found = store.get(*key)
        if found is None:
            return _status(404, "NotFound")
        store.delete(*key)
        return 200, found
    if method == "PATCH":
        content_type = call["headers"].get("Content-Type", "")
        if sub == "scale":
            obj = store.get(*key)
            if obj is None:
                return _status(404, "NotFound")
            obj["spec"]["replicas"] = call["body"]["spec"]["replicas"]
            return 200, {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": obj["metadata"],
                         "spec": {"replicas": obj["spec"]["replicas"]}}
        if content_type.startswith("application/apply-patch"):
            body = copy.deepcopy(call["body"])
            body.setdefault("metadata", {}).setdefault("namespace", ns) if ns else None
            return 200, store.apply(key, body)
        patched = store.patch(key, call["body"])
        return (200, patched) if patched is not None else _status(404, "NotFound")
    return _status(405, "MethodNotAllowed")


# ---------------------------------------------------------------------- the operator
def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


class FakeKubeRay:
    """What KubeRay v1.7.0 and the kubelet do to the store, one ``reconcile()`` at a time.

    Time is the fake clock ``now`` (s); tests move it.  Pods start ``Pending``; the
    test says when the kubelet has them Running and Ready (``run_pods``) and when
    the head's proxy is healthy (``proxy_healthy``), since no Ray runs here.
    """

    DELETION_DELAY_S = 60.0  # rayservice_controller.go RayClusterDeletionDelayDuration

    def __init__(self, store: Store, namespace: str = "serve-chaos") -> None:
        self.store = store
        self.ns = namespace
        self.now = 0.0
        self.lag = False
        self.delete_at: dict[str, float] = {}
        self.healthy_heads: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def rayservice(self) -> dict[str, Any]:
        (rs,) = self.store.list("RayService", self.ns)
        return rs

    def clusters(self) -> list[dict[str, Any]]:
        return self.store.list("RayCluster", self.ns)

    def pods(self, cluster: str | None = None) -> list[dict[str, Any]]:
        pods = self.store.list("Pod", self.ns)
        if cluster is None:
            return pods
        return [p for p in pods if p["metadata"]["labels"].get("ray.io/cluster") == cluster]

    # ------------------------------------------------------------------ pods (common/pod.go, utils/util.go)
    def _pod(self, cluster: dict[str, Any], node_type: str, group: str, template: dict[str, Any]) -> dict[str, Any]:
        name = cluster["metadata"]["name"]
        prefix = f"{name}-head" if node_type == "head" else f"{name}-{group}-worker"
        labels = {"ray.io/is-ray-node": "yes", "ray.io/cluster": name, "ray.io/node-type": node_type,
                  "ray.io/group": "headgroup" if node_type == "head" else group,
                  "ray.io/identifier": f"{name}-{node_type}",
                  "app.kubernetes.io/name": "kuberay", "app.kubernetes.io/created-by": "kuberay-operator"}
        for key, value in (template.get("metadata", {}).get("labels") or {}).items():
            if key not in ("ray.io/node-type", "ray.io/group", "ray.io/cluster"):
                labels[key] = value
        labels["ray.io/serve"] = "false" if node_type == "head" else "true"
        spec = copy.deepcopy(template["spec"])
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{prefix}-{_rand5(self.store.rng)}", "namespace": self.ns, "labels": labels},
                "spec": {**spec, "restartPolicy": "Always"},
                "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
                           "containerStatuses": [{"name": spec["containers"][0]["name"], "image": "i", "imageID": "",
                                                  "ready": False, "restartCount": 0}]}}

    def _reconcile_cluster(self, cluster: dict[str, Any]) -> None:
        name = cluster["metadata"]["name"]
        spec = cluster["spec"]
        pods = self.pods(name)
        if not [p for p in pods if p["metadata"]["labels"]["ray.io/node-type"] == "head"]:
            self.store.put(self._pod(cluster, "head", "headgroup", spec["headGroupSpec"]["template"]))
        for group in spec["workerGroupSpecs"]:
            have = [p for p in pods if p["metadata"]["labels"].get("ray.io/group") == group["groupName"]]
            for _ in range(group["replicas"] - len(have)):
                self.store.put(self._pod(cluster, "worker", group["groupName"], group["template"]))

    def run_pods(self, cluster: str | None = None) -> None:
        """The kubelet started every Pending pod of ``cluster`` and its readiness probe passes."""
        for pod in self.pods(cluster):
            if pod["status"]["phase"] == "Pending":
                pod["status"].update(phase="Running", podIP=f"10.244.0.{self.store.rng.randrange(2, 250)}",
                                     startTime="2026-11-26T00:00:01Z",
                                     conditions=[{"type": "Ready", "status": "True"}])
                pod["status"]["containerStatuses"][0]["ready"] = True
                pod["spec"].setdefault("nodeName", "kind-worker2" if "worker" in pod["metadata"]["name"]
                                       else "kind-worker")

    def proxy_healthy(self, cluster: str) -> None:
        self.healthy_heads.add(cluster)

    def restart_container(self, pod_name: str) -> None:
        """The kubelet restarts a crashed container in place: same UID, restartCount + 1."""
        pod = self.store.get("Pod", self.ns, pod_name)
        pod["status"]["containerStatuses"][0]["restartCount"] += 1

    def _update_head_serve_label(self, cluster: str) -> None:
        """rayservice_controller.go updateHeadPodServeLabel: true iff the head's proxy is healthy."""
        for pod in self.pods(cluster):
            if pod["metadata"]["labels"]["ray.io/node-type"] == "head":
                pod["metadata"]["labels"]["ray.io/serve"] = str(cluster in self.healthy_heads).lower()

    def _cluster_ready(self, cluster: str) -> bool:
        pods = self.pods(cluster)
        return bool(pods) and cluster in self.healthy_heads and all(p["status"]["phase"] == "Running" for p in pods)

    # ------------------------------------------------------------------ services (common/service.go)
    def _services_to(self, rs: dict[str, Any], cluster: str) -> None:
        rs_name = rs["metadata"]["name"]
        origin = {"ray.io/originated-from-cr-name": rs_name, "ray.io/originated-from-crd": "RayService"}
        head_selector = {"ray.io/cluster": cluster, "ray.io/node-type": "head",
                         "ray.io/identifier": f"{cluster}-head", "app.kubernetes.io/name": "kuberay",
                         "app.kubernetes.io/created-by": "kuberay-operator"}
        self._service(f"{rs_name}-head-svc", {**origin, "ray.io/node-type": "head",
                                              "ray.io/identifier": f"{rs_name}-head"}, head_selector,
                      [{"name": "dashboard", "port": 8265}, {"name": "serve", "port": 8000}], None)
        user = copy.deepcopy(rs["spec"].get("serveService") or {})
        labels = {**(user.get("metadata", {}).get("labels") or {}), **origin, "ray.io/serve": f"{rs_name}-serve"}
        self._service(user.get("metadata", {}).get("name") or f"{rs_name}-serve-svc", labels,
                      {"ray.io/cluster": cluster, "ray.io/serve": "true"},
                      user.get("spec", {}).get("ports") or [{"name": "serve", "port": 8000}],
                      user.get("spec", {}).get("type"))

    def _service(self, name: str, labels: dict[str, str], selector: dict[str, str], ports: list[dict[str, Any]],
                 svc_type: str | None) -> None:
        existing = self.store.get("Service", self.ns, name)
        if existing is not None and existing["spec"]["selector"].get("ray.io/cluster") == selector["ray.io/cluster"]:
            return  # rayservice_controller.go reconcileServices: only updated when the cluster switches
        self.store.put({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": self.ns, "labels": labels},
                        "spec": {"selector": selector, "ports": ports, "type": svc_type or "ClusterIP"}})

    # ------------------------------------------------------------------ the RayService controller
    def _new_cluster(self, rs: dict[str, Any]) -> str:
        name = f"{rs['metadata']['name']}-{_rand5(self.store.rng)}"
        labels = {**(rs["metadata"].get("labels") or {}), "ray.io/originated-from-cr-name": rs["metadata"]["name"],
                  "ray.io/originated-from-crd": "RayService"}
        annotations = {**(rs["metadata"].get("annotations") or {}),
                       "ray.io/hash-without-replicas-and-workers-to-delete": spec_hash(rs["spec"]["rayClusterConfig"])}
        self.store.put({"apiVersion": "ray.io/v1", "kind": "RayCluster",
                        "metadata": {"name": name, "namespace": self.ns, "labels": labels,
                                     "annotations": annotations},
                        "spec": copy.deepcopy(rs["spec"]["rayClusterConfig"])})
        return name

    def _reconcile_deployments(self) -> None:
        """A Deployment's pods are ``<deployment>-<template hash>-<5 chars>`` with the template's
        labels plus ``pod-template-hash`` (kubernetes ``pkg/controller/deployment`` and
        ``pkg/controller/replicaset``); scaled to 0, they go."""
        for deploy in self.store.list("Deployment", self.ns):
            template = deploy["spec"]["template"]
            tpl_hash = spec_hash(template)[:10]
            labels = {**template["metadata"]["labels"], "pod-template-hash": tpl_hash}
            pods = [p for p in self.store.list("Pod", self.ns)
                    if selects(deploy["spec"]["selector"]["matchLabels"], p["metadata"]["labels"])]
            for pod in pods[deploy["spec"]["replicas"]:]:
                self.store.delete("Pod", self.ns, pod["metadata"]["name"])
            for _ in range(deploy["spec"]["replicas"] - len(pods)):
                name = f"{deploy['metadata']['name']}-{tpl_hash}-{_rand5(self.store.rng)}"
                spec = copy.deepcopy(template["spec"])
                self.store.put({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": name, "namespace": self.ns, "labels": labels},
                                "spec": {**spec, "nodeName": "kind-worker"},
                                "status": {"phase": "Running", "podIP": "10.244.0.200",
                                           "conditions": [{"type": "Ready", "status": "True"}],
                                           "containerStatuses": [{"name": spec["containers"][0]["name"],
                                                                  "image": "i", "imageID": "", "ready": True,
                                                                  "restartCount": 0}]}})

    def reconcile(self) -> None:
        self._reconcile_deployments()
        rs = self.rayservice()
        status = rs.setdefault("status", {})
        active = (status.get("activeServiceStatus") or {}).get("rayClusterName")
        pending = (status.get("pendingServiceStatus") or {}).get("rayClusterName")
        current = spec_hash(rs["spec"]["rayClusterConfig"])
        base = self.store.get("RayCluster", self.ns, pending or active or "")
        if base is None or base["metadata"]["annotations"]["ray.io/hash-without-replicas-and-workers-to-delete"] != current:
            if pending:  # a spec change while upgrading replaces the pending cluster
                self._schedule_delete(pending)
            pending = self._new_cluster(rs)
        for cluster in self.clusters():
            if cluster["metadata"]["name"] in (active, pending):
                self._reconcile_cluster(cluster)
                self._update_head_serve_label(cluster["metadata"]["name"])
        if pending and self._cluster_ready(pending):
            self._services_to(rs, pending)
            if active:
                self._schedule_delete(active)
            active, pending = pending, None
        elif active:
            self._services_to(rs, active)
        status["activeServiceStatus"] = {"rayClusterName": active} if active else {}
        status["pendingServiceStatus"] = {"rayClusterName": pending} if pending else {}
        serve = self.store.get("Service", self.ns, (rs["spec"].get("serveService") or {}).get("metadata", {})
                               .get("name") or f"{rs['metadata']['name']}-serve-svc")
        endpoints = [p for p in self.store.list("Pod", self.ns) if serve is not None
                     and selects(serve["spec"]["selector"], p["metadata"]["labels"])
                     and p["status"]["phase"] == "Running"]
        status["conditions"] = [
            {"type": "Ready", "status": "True" if endpoints else "False"},
            {"type": "UpgradeInProgress", "status": "True" if active and pending else "False"},
        ]
        if not self.lag:
            status["observedGeneration"] = rs["metadata"]["generation"]
        self._collect_deleted()

    # ------------------------------------------------------------------ deletion (cleanUpRayClusterInstance)
    def _schedule_delete(self, cluster: str) -> None:
        self.delete_at.setdefault(cluster, self.now + self.DELETION_DELAY_S)

    def _collect_deleted(self) -> None:
        for name, when in list(self.delete_at.items()):
            if self.now < when:
                continue
            cluster = self.store.get("RayCluster", self.ns, name)
            if cluster is not None and cluster["spec"].get("gcsFaultToleranceOptions") is not None:
                head = next((p for p in self.pods(name) if p["metadata"]["labels"]["ray.io/node-type"] == "head"),
                            None)
                if head is not None:
                    cleanup = copy.deepcopy(head)
                    cleanup["metadata"]["name"] = f"{name}-redis-cleanup-{_rand5(self.store.rng)}"
                    cleanup["metadata"].pop("uid", None)
                    cleanup["metadata"]["labels"]["ray.io/node-type"] = "redis-cleanup"
                    cleanup["metadata"]["labels"]["job-name"] = f"{name}-redis-cleanup"
                    self.store.put(cleanup)
            for pod in self.pods(name):
                if pod["metadata"]["labels"].get("ray.io/node-type") in ("head", "worker"):
                    self.store.delete("Pod", self.ns, pod["metadata"]["name"])
            self.store.delete("RayCluster", self.ns, name)
            del self.delete_at[name]
