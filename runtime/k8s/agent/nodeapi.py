"""The node agent's calls to the API server, as the node (``system:node:<name>``), on plain dicts.

One ApiClient for REST calls and one per watch stream (the official client's advice: a
client is not safe to share with a stream).  Every read returns the object as the API
serialises it (camelCase keys) or None for a 404.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def _new_client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


class NodeApi:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.api = _new_client(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def _raw(self, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        try:
            resp = method(*args, _preload_content=False, **kwargs)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return json.loads(resp.data)

    # ------------------------------------------------------------------ reads the Node authorizer allows
    def read_configmap(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._raw(self.core.read_namespaced_config_map, name, ns)

    def read_secret(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._raw(self.core.read_namespaced_secret, name, ns)

    def read_pvc(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._raw(self.core.read_namespaced_persistent_volume_claim, name, ns)

    def read_pv(self, name: str) -> dict[str, Any] | None:
        return self._raw(self.core.read_persistent_volume, name)

    def read_pod(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._raw(self.core.read_namespaced_pod, name, ns)

    def token(self, ns: str, service_account: str, pod: str, uid: str, audience: str | None, seconds: int) -> str:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [audience] if audience else None, "expirationSeconds": seconds,
                         "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}}}
        answer = self._raw(self.core.create_namespaced_service_account_token, service_account, ns, body)
        return (answer or {}).get("status", {}).get("token", "")

    # ------------------------------------------------------------------ pods
    def patch_pod_status(self, ns: str, name: str, status: dict[str, Any], uid: str) -> None:
        body = {"metadata": {"uid": uid}, "status": status}
        self.core.patch_namespaced_pod_status(name, ns, body, _content_type="application/strategic-merge-patch+json")

    def delete_pod(self, ns: str, name: str, uid: str) -> None:
        """The kubelet's last word on a pod it stopped: delete it now, if it is still that pod."""
        try:
            self.core.delete_namespaced_pod(name, ns, body=client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)))
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    def event(self, pod: dict[str, Any], reason: str, message: str, kind: str, node: str) -> None:
        meta = pod["metadata"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta["uid"]},
                "reason": reason, "message": message[:1000], "type": kind, "count": 1,
                "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "kubelet", "host": node},
                "reportingComponent": "kubelet", "reportingInstance": node}
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException:
            pass  # events are best effort, as the kubelet's recorder is

    def watch_pods(self, node: str, timeout_s: int = 300) -> Iterator[tuple[str, dict[str, Any], str]]:
        """(event type, pod, resourceVersion) for the pods bound to ``node``: the list first (as ADDED),
        then changes, until the stream ends."""
        stream_client = _new_client(self.kubeconfig)
        try:
            core = client.CoreV1Api(stream_client)
            selector = f"spec.nodeName={node}"
            listed = json.loads(core.list_pod_for_all_namespaces(field_selector=selector,
                                                                 _preload_content=False).data)
            version = listed["metadata"]["resourceVersion"]
            for pod in listed.get("items") or []:
                yield "ADDED", pod, version
            yield "SYNCED", {}, version
            w = watch.Watch()
            for event in w.stream(core.list_pod_for_all_namespaces, field_selector=selector,
                                  resource_version=version, timeout_seconds=timeout_s,
                                  allow_watch_bookmarks=False):
                raw = event.get("raw_object") or {}
                if event.get("type") == "ERROR":
                    return
                yield event["type"], raw, (raw.get("metadata") or {}).get("resourceVersion", version)
        finally:
            stream_client.close()
