"""A fake Kubernetes API at the HTTP layer of the official client (a test double for pure logic).

The real client builds every request -- path, query string, headers, body --
and this fake records them and answers from a small in-memory store, so tests
check what KubeRayCluster sends against the API's documented paths.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from kubernetes import client
from kubernetes.client import rest

MANAGED = {"app.kubernetes.io/managed-by": "serve-chaos", "app.kubernetes.io/part-of": "serve-chaos"}


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


def pod(name: str, role: str | None, node: str = "kind-worker", labels: dict | None = None, uid: str | None = None,
        phase: str = "Running", ready: bool = True) -> dict[str, Any]:
    base = dict(MANAGED if labels is None else labels)
    if role in ("head", "worker"):
        base["ray.io/node-type"] = role
    elif role == "redis":
        base["serve-chaos/component"] = "redis"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "serve-chaos", "uid": uid or f"uid-{name}", "labels": base},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase, "podIP": "10.244.1.5",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "c", "image": "i", "imageID": "x", "ready": ready,
                                              "restartCount": 1}]}}


class FakeKube(client.ApiClient):
    def __init__(self) -> None:
        super().__init__(client.Configuration(host="https://kube.test"))
        self.calls: list[dict[str, Any]] = []
        self.pods: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, Any]] = {}  # "Kind/name" -> object

    # -------------------------------------------------------------- recording
    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        parsed = urlparse(url)
        call = {"method": method, "path": unquote(parsed.path), "query": parse_qs(parsed.query),
                "headers": dict(header_params or {}), "body": body}
        self.calls.append(call)
        status, data = self.answer(call)
        return rest.RESTResponse(_Resp(status, data))

    def paths(self, method: str | None = None) -> list[str]:
        return [c["path"] for c in self.calls if method is None or c["method"] == method]

    # -------------------------------------------------------------- answers
    def answer(self, call: dict[str, Any]) -> tuple[int, Any]:
        m, path = call["method"], call["path"]
        if m == "GET" and re.fullmatch(r"/api/v1/namespaces/[^/]+/pods", path):
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": list(self.pods.values())}
        hit = re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/([^/]+)", path)
        if hit:
            name = hit.group(1)
            if name not in self.pods:
                return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
            found = self.pods[name]
            if m == "DELETE":
                self.pods.pop(name)
            return 200, found
        if m == "GET" and path == "/api/v1/nodes":
            return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": []}
        if m == "DELETE" and path.startswith("/api/v1/nodes/"):
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        if m == "POST":
            kind = (call["body"] or {}).get("kind", "?")
            self.objects[f"{kind}/{call['body']['metadata']['name']}"] = call["body"]
            return 201, call["body"]
        hit = re.fullmatch(r".*/(namespaces|configmaps|secrets|services|deployments|rayservices)/([^/]+)", path)
        if hit and m == "GET":
            kinds = {"namespaces": "Namespace", "configmaps": "ConfigMap", "secrets": "Secret",
                     "services": "Service", "deployments": "Deployment", "rayservices": "RayService"}
            key = f"{kinds[hit.group(1)]}/{hit.group(2)}"
            if key in self.objects:
                return 200, self.objects[key]
        if m == "PATCH":
            return 200, {"apiVersion": "ray.io/v1", "kind": "RayService", "metadata": {"name": "x"}}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
