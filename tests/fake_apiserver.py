"""A fake Kubernetes API server (test double): the official client's requests answered from memory.

The official client builds every request (path, query, headers, body); ``FakeApiClient``
answers them from a ``Store``, so tests see exactly what the kube target sends.  What the
store does is what the API server does, each behaviour from kubernetes v1.35:

- Server-side apply per field manager (``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/
  patch.go``, structured-merge-diff; the "Server-Side Apply" documentation): a manager owns
  the fields it applied; applying again without a field it owned removes that field unless
  another manager owns it too; ``force`` moves ownership of conflicting fields to the
  applier.  Lists are atomic (no ``x-kubernetes-list-type`` on the fields we apply).
- A merge patch (RFC 7386) never removes a key it does not mention.
- ``metadata.generation`` counts spec changes (status is a subresource).
- Deletion (``staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go``): an
  object with ``metadata.finalizers`` is only marked (``deletionTimestamp``) until its
  finalizers are gone; a pod deleted with a grace period (its
  ``terminationGracePeriodSeconds``, 30 by default) stays Terminating until the kubelet
  has stopped it; ``gracePeriodSeconds=0`` removes it at once
  (``pkg/registry/core/pod/strategy.go`` CheckGracefulDelete).
- A created pod's ``podAffinity``/``podAntiAffinity`` terms get their ``matchLabelKeys``
  merged into ``labelSelector`` as ``key In (value of the pod's label)``
  (``pkg/registry/core/pod/strategy.go`` mutatePodAffinity; GA since 1.33).
- Events are listed with field selectors on ``involvedObject.name``, ``involvedObject.kind``,
  ``reason`` and ``type`` (``pkg/apis/core/v1/conversion.go`` Event field labels).
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlparse

from kubernetes import client
from kubernetes.client import rest

#: plural -> kind, per API group path prefix.
PLURALS: dict[str, dict[str, str]] = {
    "/api/v1": {"pods": "Pod", "services": "Service", "configmaps": "ConfigMap", "secrets": "Secret",
                "persistentvolumeclaims": "PersistentVolumeClaim", "events": "Event", "namespaces": "Namespace",
                "nodes": "Node"},
    "/apis/apps/v1": {"deployments": "Deployment", "daemonsets": "DaemonSet"},
    "/apis/batch/v1": {"jobs": "Job"},
    "/apis/discovery.k8s.io/v1": {"endpointslices": "EndpointSlice"},
    "/apis/ray.io/v1": {"rayservices": "RayService", "rayclusters": "RayCluster"},
    "/apis/chaos-mesh.org/v1alpha1": {"stresschaos": "StressChaos", "networkchaos": "NetworkChaos"},
    "/apis/apiextensions.k8s.io/v1": {"customresourcedefinitions": "CustomResourceDefinition"},
}
CLUSTER_SCOPED = {"Namespace", "Node", "CustomResourceDefinition"}
#: ``pkg/apis/core/types.go`` DefaultTerminationGracePeriodSeconds.
DEFAULT_GRACE_S = 30
#: What an endpoint reading the store may fail with, set by a test (status, reason).
Failure = tuple[int, str]


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


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


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


def field_paths(obj: Any, prefix: tuple = ()) -> set[tuple]:
    """Leaf paths of an applied object (dicts are walked, lists are atomic leaves)."""
    if isinstance(obj, dict) and obj:
        out: set[tuple] = set()
        for key, value in obj.items():
            out |= field_paths(value, prefix + (key,))
        return out
    return {prefix}


def _remove(obj: dict[str, Any], path: tuple) -> None:
    node: Any = obj
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """An equality selector (a Service's ``spec.selector``): empty selects nothing."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def label_selector_matches(expr: str, labels: dict[str, str]) -> bool:
    """A ``labelSelector`` query: ``k=v``, ``k!=v``, ``k`` (exists) and ``k in (a,b)`` terms."""
    for term in filter(None, re.split(r",(?![^(]*\))", expr)):
        term = term.strip()
        found = re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if found:
            values = {v.strip() for v in found[3].split(",")}
            if (labels.get(found[1]) in values) != (found[2] == "in"):
                return False
        elif "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, _, value = term.partition("=")
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A ``metav1.LabelSelector`` (matchLabels and matchExpressions In/NotIn/Exists/DoesNotExist);
    an empty one matches everything, a missing one nothing."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values or op == "NotIn" and labels.get(key) in values \
                or op == "Exists" and key not in labels or op == "DoesNotExist" and key in labels:
            return False
    return True


def field_selector_matches(expr: str, obj: dict[str, Any]) -> bool:
    for term in filter(None, expr.split(",")):
        path, _, value = term.partition("=")
        node: Any = obj
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if str(node) != value:
            return False
    return True


def merge_match_label_keys(pod: dict[str, Any]) -> None:
    """``pkg/registry/core/pod/strategy.go`` mutatePodAffinity: on create, each affinity term's
    ``matchLabelKeys`` become ``key In (pod label value)`` in its labelSelector."""
    labels = pod.get("metadata", {}).get("labels") or {}
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        terms = (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
        for term in terms:
            if term.get("labelSelector") is None:
                continue
            for key, op in [(k, "In") for k in term.get("matchLabelKeys") or []] + \
                           [(k, "NotIn") for k in term.get("mismatchLabelKeys") or []]:
                if key in labels:
                    term["labelSelector"].setdefault("matchExpressions", []).append(
                        {"key": key, "operator": op, "values": [labels[key]]})


class Store:
    """Objects by (kind, namespace, name), as JSON dicts, with each field manager's applied fields.

    ``now()`` is the API server's clock: real time plus ``offset`` (tests move it with
    ``advance``), so timestamps it writes compare with the harness's ``time.time()``.
    """

    def __init__(self, seed: int = 7) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.managed: dict[tuple[str, str, str], dict[str, set[tuple]]] = {}
        self.calls: list[dict[str, Any]] = []
        self.rng = random.Random(seed)
        self.offset = 0.0
        self.lock = threading.RLock()
        #: (method, path regex) -> (status, reason) answered instead, for tests of failures.
        self.failures: list[tuple[str, str, Failure, int]] = []

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    # ------------------------------------------------------------------ reads
    def get(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, ns, name))

    def list(self, kind: str, ns: str | None = None, selector: str = "", fields: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [o for (k, n, _), o in sorted(self.objects.items())
                    if k == kind and (ns is None or n == ns)
                    and label_selector_matches(selector, o["metadata"].get("labels") or {})
                    and field_selector_matches(fields, o)]

    # ------------------------------------------------------------------ writes
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if obj.get("kind") == "Secret" and obj.get("stringData"):
                # stringData is write-only: the API server merges it into data, base64-encoded
                # (kubernetes pkg/apis/core/v1 conversion of Secret).
                obj.setdefault("data", {}).update({k: base64.b64encode(v.encode()).decode()
                                                   for k, v in obj.pop("stringData").items()})
            meta = obj.setdefault("metadata", {})
            new = (obj["kind"], meta.get("namespace", ""), meta["name"]) not in self.objects
            meta.setdefault("uid", str(uuid.UUID(int=self.rng.getrandbits(128))))
            meta.setdefault("creationTimestamp", iso(self.now()))
            meta.setdefault("generation", 1)
            # Every write gets a new resourceVersion (apiserver: etcd's revision of the write).
            self.version = getattr(self, "version", 0) + 1
            meta["resourceVersion"] = str(self.version)
            if new and obj["kind"] == "Pod":
                merge_match_label_keys(obj)
            self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
            return obj

    def remove(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        """The object is gone from the API (after its finalizers and grace period)."""
        with self.lock:
            self.managed.pop((kind, ns, name), None)
            gone = self.objects.pop((kind, ns, name), None)
            if ns:
                self._finish_namespace(ns)
            return gone

    def delete(self, kind: str, ns: str, name: str, grace_s: int | None = None) -> dict[str, Any] | None:
        """A DELETE: marked while finalizers or (pods) a grace period remain, else removed."""
        with self.lock:
            obj = self.objects.get((kind, ns, name))
            if obj is None:
                return None
            meta = obj["metadata"]
            if kind == "Pod":
                grace = grace_s if grace_s is not None else int(
                    (obj.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))
                if grace > 0 and (obj.get("status") or {}).get("phase") in ("Running", "Pending") \
                        and (obj.get("spec") or {}).get("nodeName"):
                    meta.setdefault("deletionTimestamp", iso(self.now()))
                    meta["deletionGracePeriodSeconds"] = min(grace, meta.get("deletionGracePeriodSeconds", grace))
                    return obj
            if meta.get("finalizers"):
                meta.setdefault("deletionTimestamp", iso(self.now()))
                return obj
            if kind == "Namespace":
                return self._delete_namespace(obj)
            return self.remove(kind, ns, name)

    def _delete_namespace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The namespace controller (``pkg/controller/namespace/deletion``): the namespace stays
        Terminating while anything is left in it -- objects held by finalizers included -- and
        every object in it is deleted; it goes once it is empty."""
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("deletionTimestamp", iso(self.now()))
        for kind, ns, member in [k for k in self.objects if k[1] == name and k[0] != "Namespace"]:
            self.delete(kind, ns, member, 0)
        return self._finish_namespace(name) or obj

    def _finish_namespace(self, name: str) -> dict[str, Any] | None:
        ns_obj = self.objects.get(("Namespace", "", name))
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return None
        if any(k[1] == name for k in self.objects if k[0] != "Namespace"):
            return None
        return self.objects.pop(("Namespace", "", name))

    def finalize(self, kind: str, ns: str, name: str, finalizer: str) -> None:
        """A controller removes its finalizer; a marked object without finalizers is gone."""
        with self.lock:
            obj = self.objects.get((kind, ns, name))
            if obj is None:
                return
            meta = obj["metadata"]
            meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != finalizer]
            if not meta["finalizers"]:
                meta.pop("finalizers")
                if meta.get("deletionTimestamp"):
                    self.remove(kind, ns, name)

    def apply(self, key: tuple[str, str, str], body: dict[str, Any], manager: str) -> dict[str, Any]:
        """Server-side apply of ``body`` by ``manager`` (always with force, as the target sends)."""
        with self.lock:
            original = self.objects.get(key)
            owners = self.managed.setdefault(key, {})
            applied = field_paths(body)
            if original is None:
                obj = copy.deepcopy(body)
            else:
                existing = copy.deepcopy(original)
                others = set().union(*(paths for m, paths in owners.items() if m != manager))
                for path in owners.get(manager, set()) - applied - others:
                    _remove(existing, path)
                obj = merge_patch(existing, body)
                self._bump_generation(original, obj)
            for other, paths in owners.items():
                if other != manager:
                    paths -= applied  # force: ownership moves to the applier
            owners[manager] = applied
            return self.put(obj)

    def patch(self, key: tuple[str, str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            existing = self.objects.get(key)
            if existing is None:
                return None
            obj = merge_patch(existing, body)
            self._bump_generation(existing, obj)
            return self.put(obj)

    def event(self, regarding: dict[str, Any], event_type: str, reason: str, note: str) -> None:
        """What ``k8s.io/client-go/tools/events`` EventRecorder.Eventf writes (KubeRay v1.7.0's
        recorder), as core/v1 shows an events.k8s.io/v1 Event: ``eventTime`` set, a repeat
        counted in ``series`` (``staging/src/k8s.io/client-go/tools/events/event_broadcaster.go``)."""
        with self.lock:
            meta = regarding["metadata"]
            for ev in self.list("Event", meta.get("namespace", "")):
                if ev["involvedObject"]["uid"] == meta.get("uid") and ev["reason"] == reason \
                        and ev["message"] == note:
                    ev["series"] = {"count": (ev.get("series") or {}).get("count", 1) + 1,
                                    "lastObservedTime": iso(self.now())}
                    return
            name = f"{meta['name']}.{self.rng.getrandbits(64):016x}"
            self.put({"apiVersion": "v1", "kind": "Event",
                      "metadata": {"name": name, "namespace": meta.get("namespace", "")},
                      "involvedObject": {"kind": regarding["kind"], "name": meta["name"],
                                         "namespace": meta.get("namespace", ""), "uid": meta.get("uid")},
                      "reason": reason, "message": note, "type": event_type,
                      "eventTime": datetime.fromtimestamp(self.now(), tz=timezone.utc).strftime(
                          "%Y-%m-%dT%H:%M:%S.%fZ"),
                      "reportingComponent": "kuberay-operator", "action": "Reconcile"})

    def fail(self, method: str, path_regex: str, status: int, reason: str = "", times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``status`` (a 5xx, a 429)."""
        self.failures.append((method, path_regex, (status, reason), times))

    @staticmethod
    def _bump_generation(old: dict[str, Any], new: dict[str, Any]) -> None:
        new.setdefault("metadata", {})["generation"] = old["metadata"].get("generation", 1) + (
            1 if old.get("spec") != new.get("spec") else 0)
        if "status" in old:
            new["status"] = old["status"]


class FakeApiClient(client.ApiClient):
    """Routes the client's requests to a Store (shared by every client built for one fake)."""

    def __init__(self, store: Store, host: str = "https://kube.test") -> None:
        super().__init__(client.Configuration(host=host))
        self.store = store

    def call_api(self, method, url, header_params=None, body=None, post_params=None, _request_timeout=None):
        parsed = urlparse(url)
        call = {"method": method, "path": unquote(parsed.path), "query": parse_qs(parsed.query),
                "headers": dict(header_params or {}), "body": body}
        self.store.calls.append(call)
        status, data = answer(self.store, call)
        # Any status comes back as a response; the generated method raises ApiException for non-2xx.
        return rest.RESTResponse(_Resp(status, data))


def _status(code: int, reason: str = "") -> tuple[int, dict[str, Any]]:
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                  "message": reason}


def route(path: str) -> tuple[str, str, str, str] | None:
    """(kind, namespace, name, subresource) of an API path."""
    for prefix, plurals in PLURALS.items():
        if not path.startswith(prefix + "/"):
            continue
        parts = path[len(prefix) + 1:].split("/")
        ns = ""
        if parts[0] == "namespaces" and len(parts) >= 3:
            ns, parts = parts[1], parts[2:]
        kind = plurals.get(parts[0])
        if kind is None:
            return None
        return kind, ns, parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""
    return None


def _injected_failure(store: Store, call: dict[str, Any]) -> Failure | None:
    for i, (method, regex, failure, times) in enumerate(store.failures):
        if method == call["method"] and re.search(regex, call["path"]):
            if times <= 1:
                del store.failures[i]
            else:
                store.failures[i] = (method, regex, failure, times - 1)
            return failure
    return None


def answer(store: Store, call: dict[str, Any]) -> tuple[int, Any]:
    failure = _injected_failure(store, call)
    if failure is not None:
        return _status(*failure)
    found = route(call["path"])
    if found is None:
        return _status(404, "NotFound")
    kind, ns, name, sub = found
    method, query = call["method"], call["query"]
    if not name:
        if method == "GET":
            selector = (query.get("labelSelector") or [""])[0]
            fields = (query.get("fieldSelector") or [""])[0]
            return 200, {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {},
                         # No namespace in the path: every namespace's (``list_*_for_all_namespaces``).
                         "items": store.list(kind, None if kind in CLUSTER_SCOPED or not ns else ns, selector,
                                             fields)}
        if method == "POST":
            body = copy.deepcopy(call["body"])
            if ns:
                body["metadata"].setdefault("namespace", ns)
            if store.get(kind, ns, body["metadata"]["name"]) is not None:
                return _status(409, "AlreadyExists")
            return 201, store.put(body)
        return _status(405, "MethodNotAllowed")
    key = (kind, ns, name)
    if method == "GET":
        obj = store.get(*key)
        return (200, obj) if obj is not None else _status(404, "NotFound")
    if method == "DELETE":
        grace = (query.get("gracePeriodSeconds") or [None])[0]
        if grace is None and isinstance(call["body"], dict):
            grace = call["body"].get("gracePeriodSeconds")
        obj = store.delete(kind, ns, name, None if grace is None else int(grace))
        return (200, obj) if obj is not None else _status(404, "NotFound")
    if method == "PUT":  # an update replaces the object (its identity stays)
        existing = store.get(*key)
        if existing is None:
            return _status(404, "NotFound")
        body = copy.deepcopy(call["body"])
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != existing["metadata"].get("resourceVersion"):
            # An update over another version than the stored one is refused (the apiserver's
            # registry Store.Update: "the object has been modified"; 409 Conflict).
            return _status(409, "Conflict")
        if ns:
            body.setdefault("metadata", {})["namespace"] = ns
        body.setdefault("metadata", {}).update(uid=existing["metadata"]["uid"],
                                               creationTimestamp=existing["metadata"]["creationTimestamp"])
        Store._bump_generation(existing, body)
        return 200, store.put(body)
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
            if ns:
                body.setdefault("metadata", {}).setdefault("namespace", ns)
            return 200, store.apply(key, body, (query.get("fieldManager") or [""])[0])
        patched = store.patch(key, call["body"])
        return (200, patched) if patched is not None else _status(404, "NotFound")
    return _status(405, "MethodNotAllowed")


def new_client_factory(store: Store) -> Callable[[], FakeApiClient]:
    return lambda: FakeApiClient(store)
