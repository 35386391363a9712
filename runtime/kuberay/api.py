"""Access to the Kubernetes API: REST calls on one client, every stream on a client of its own.

``kubernetes.stream.stream`` and ``portforward`` swap the transport method of
the ApiClient they are given for the length of the call (``request`` up to
client v36, ``call_api`` from v37: ``kubernetes/base/stream/stream.py``,
kubernetes-client/python#928).  A REST call made meanwhile on the same client
goes out as a websocket call, and two overlapping swaps restore each other's
replacement, breaking the client for good.  So REST calls share ``rest`` and
each exec or port-forward connection builds its own client from the same
Configuration (``stream_core``), closed when the stream ends.

Writes are server-side apply with one field manager: fields we stop sending
(the legacy GCS FT annotation after switching to ``options``) are removed,
which a create-else-merge-patch can never do.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from runtime.errors import ConfigError, InfrastructureError
from runtime.kuberay import safety

FIELD_MANAGER = "serve-chaos"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
RAY_GROUP, RAY_VERSION, RAY_PLURAL = "ray.io", "v1", "rayservices"
RAYCLUSTER_PLURAL = "rayclusters"


def load_configuration(kubeconfig: str | None, context: str | None, allowed: tuple[str, ...]) -> tuple[Any, str]:
    """The client Configuration for ``context`` (default: the current one) and that context's name."""
    from kubernetes import client
    from kubernetes import config as kconfig

    try:
        contexts, active = kconfig.list_kube_config_contexts(config_file=kubeconfig)
    except Exception as err:  # noqa: BLE001 - kubeconfig missing or unreadable
        raise ConfigError(f"cannot read a kubeconfig: {err}",
                          hint="create a cluster with `serve-chaos kind up` or point KUBECONFIG at one") from None
    name = context or (active or {}).get("name")
    if context and context not in {c["name"] for c in contexts}:
        raise ConfigError(f"kubeconfig has no context {context!r}", hint="see `kubectl config get-contexts`")
    safety.check_context(name, allowed)
    configuration = client.Configuration()
    kconfig.load_kube_config(config_file=kubeconfig, context=name, client_configuration=configuration)
    return configuration, name


def guarded(api_client: Any) -> Any:
    """The client, with an API server that does not answer turned into one InfrastructureError line
    (urllib3 would raise its retry chain through every caller)."""
    import urllib3

    call_api = api_client.call_api
    host = getattr(getattr(api_client, "configuration", None), "host", "the API server")

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return call_api(*args, **kwargs)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            reason = getattr(err, "reason", None) or err
            raise InfrastructureError(f"the Kubernetes API server {host} does not answer ({reason})",
                                      hint="is the cluster running? `kubectl cluster-info`") from None

    api_client.call_api = call
    return api_client


class KubeApi:
    """The typed APIs over a shared REST client, and fresh clients for streams.

    ``new_client()`` returns a new ``kubernetes.client.ApiClient``; tests pass
    one that talks to a fake.
    """

    def __init__(self, new_client: Callable[[], Any]) -> None:
        from kubernetes import client

        self.new_client = new_client
        self.rest = guarded(new_client())
        self.core = client.CoreV1Api(self.rest)
        self.apps = client.AppsV1Api(self.rest)
        self.custom = client.CustomObjectsApi(self.rest)

    @classmethod
    def from_configuration(cls, configuration: Any) -> "KubeApi":
        from kubernetes import client

        return cls(lambda: client.ApiClient(copy.copy(configuration)))

    def stream_core(self) -> tuple[Any, Callable[[], None]]:
        """A CoreV1Api on a client of its own for one stream, and how to close that client."""
        from kubernetes import client

        api_client = self.new_client()
        return client.CoreV1Api(api_client), getattr(api_client, "close", lambda: None)

    # ------------------------------------------------------------------ reads
    def read(self, kind: str, name: str, namespace: str) -> Any | None:
        """The object, or None when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        readers: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: self.core.read_namespace(name),
            "ConfigMap": lambda: self.core.read_namespaced_config_map(name, namespace),
            "Secret": lambda: self.core.read_namespaced_secret(name, namespace),
            "Service": lambda: self.core.read_namespaced_service(name, namespace),
            "PersistentVolumeClaim": lambda: self.core.read_namespaced_persistent_volume_claim(name, namespace),
            "Deployment": lambda: self.apps.read_namespaced_deployment(name, namespace),
            "RayService": lambda: self.custom.get_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, RAY_PLURAL, name),
        }
        try:
            return readers[kind]()
        except ApiException as err:
            if err.status == 404:
                return None
            raise InfrastructureError(f"reading {kind} {name} failed: {err.status} {err.reason}",
                                      evidence=str(err.body)[:200]) from None

    # ------------------------------------------------------------------ writes
    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply of one object of ours (refused if it exists and is not ours)."""
        from kubernetes.client.exceptions import ApiException

        kind, name = obj["kind"], obj["metadata"]["name"]
        namespace = obj["metadata"].get("namespace", "")
        existing = self.read(kind, name, namespace)
        if existing is not None:
            safety.check_owned(existing, f"{kind} {name}")
            if kind == "Secret":
                return  # never rewrite the password
        opts = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY_CONTENT_TYPE}
        appliers: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: self.core.patch_namespace(name, obj, **opts),
            "ConfigMap": lambda: self.core.patch_namespaced_config_map(name, namespace, obj, **opts),
            "Secret": lambda: self.core.patch_namespaced_secret(name, namespace, obj, **opts),
            "Service": lambda: self.core.patch_namespaced_service(name, namespace, obj, **opts),
            "PersistentVolumeClaim": lambda: self.core.patch_namespaced_persistent_volume_claim(
                name, namespace, obj, **opts),
            "Deployment": lambda: self.apps.patch_namespaced_deployment(name, namespace, obj, **opts),
            "RayService": lambda: self.custom.patch_namespaced_custom_object(
                RAY_GROUP, RAY_VERSION, namespace, RAY_PLURAL, name, obj, **opts),
        }
        try:
            appliers[kind]()
        except ApiException as err:
            raise InfrastructureError(f"applying {kind} {name} failed: {err.status} {err.reason}",
                                      evidence=str(err.body)[:300],
                                      hint=f"`kubectl -n {namespace or 'default'} describe {kind.lower()} {name}`") from None
