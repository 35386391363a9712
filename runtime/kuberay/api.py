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
import json
from typing import Any, Callable

from serve_chaos.runtime.errors import ConfigError, InfrastructureError
from serve_chaos.runtime.kuberay import safety

FIELD_MANAGER = "serve-chaos"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
RAY_GROUP, RAY_VERSION, RAY_PLURAL = "ray.io", "v1", "rayservices"
RAYCLUSTER_PLURAL = "rayclusters"
#: Custom kinds the target reads and writes: (group, version, plural).
CUSTOM_KINDS = {
    "RayService": (RAY_GROUP, RAY_VERSION, RAY_PLURAL),
    "RayCluster": (RAY_GROUP, RAY_VERSION, RAYCLUSTER_PLURAL),
    "StressChaos": ("chaos-mesh.org", "v1alpha1", "stresschaos"),
    "NetworkChaos": ("chaos-mesh.org", "v1alpha1", "networkchaos"),
}


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


class KubeApiError(InfrastructureError):
    """A Kubernetes API call that failed, as one line; ``status`` is the HTTP status (0: no answer,
    or a websocket that could not be opened)."""

    def __init__(self, what: str, status: int, hint: str = "", evidence: str = "") -> None:
        self.status = status
        super().__init__(what, hint=hint, evidence=evidence)


def kube_error(err: BaseException, what: str) -> KubeApiError:
    """Our error for a failed call: ``ApiException`` (typed calls; ``status=0`` from
    ``kubernetes/stream/ws_client.py`` when a websocket fails), or a transport error."""
    status = int(getattr(err, "status", 0) or 0)
    reason = str(getattr(err, "reason", "") or err).strip().splitlines()[0] if str(
        getattr(err, "reason", "") or err).strip() else type(err).__name__
    message = ""
    body = getattr(err, "body", None)
    if body:
        try:
            message = str(json.loads(body).get("message") or "")
        except (ValueError, AttributeError):
            message = str(body)
    line = f"{what} failed: {status} {reason}" if status else f"{what} failed: {reason}"
    return KubeApiError(line, status, evidence=" ".join(message.split())[:300])


#: Answers that mean "try again": 429 (the request was not processed, any method may be sent
#: again) and the 5xx a busy or restarting API server gives (only idempotent methods).
RETRY_ANY = frozenset({429})
RETRY_IDEMPOTENT = frozenset({500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PATCH", "PUT"})
ATTEMPTS = 4


def _retryable(method: str, status: int) -> bool:
    return status in RETRY_ANY or (status in RETRY_IDEMPOTENT and method.upper() in IDEMPOTENT)


def guarded(api_client: Any) -> Any:
    """The client, with transient answers retried (``RETRY_ANY``/``RETRY_IDEMPOTENT``, up to
    ``ATTEMPTS`` sends, backing off 0.2 s doubling to 2 s) and an API server that does not
    answer turned into one InfrastructureError line (urllib3 would raise its retry chain
    through every caller).  Our PATCHes are server-side applies or absolute scales, so
    sending one again changes nothing more."""
    import urllib3
    from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_attempt, wait_exponential

    call_api = api_client.call_api
    host = getattr(getattr(api_client, "configuration", None), "host", "the API server")

    class Unreachable(Exception):
        pass

    def call(method: str, *args: Any, **kwargs: Any) -> Any:
        def once() -> Any:
            try:
                return call_api(method, *args, **kwargs)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                if method.upper() in IDEMPOTENT:
                    raise Unreachable(getattr(err, "reason", None) or err) from None
                raise InfrastructureError(f"the Kubernetes API server {host} does not answer "
                                          f"({getattr(err, 'reason', None) or err})",
                                          hint="is the cluster running? `kubectl cluster-info`") from None

        retrying = Retrying(stop=stop_after_attempt(ATTEMPTS), wait=wait_exponential(multiplier=0.2, max=2.0),
                            retry=retry_if_exception_type(Unreachable) | retry_if_result(
                                lambda r: _retryable(method, int(getattr(r, "status", 200)))),
                            retry_error_callback=lambda state: state.outcome.result()
                            if not state.outcome.failed else _unreachable(state.outcome.exception()))
        return retrying(once)

    def _unreachable(err: BaseException) -> Any:
        raise InfrastructureError(f"the Kubernetes API server {host} does not answer ({err})",
                                  hint="is the cluster running? `kubectl cluster-info`") from None

    api_client.call_api = call
    return api_client


class Typed:
    """A typed API (``CoreV1Api``, ...) whose every call raises ``KubeApiError``, never ``ApiException``."""

    def __init__(self, api: Any) -> None:
        self._api = api

    @property
    def api_client(self) -> Any:
        return self._api.api_client

    def __getattr__(self, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        method = getattr(self._api, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except ApiException as err:
                target = "/".join(str(a) for a in args[:1])
                raise kube_error(err, f"{name.replace('_', ' ')} {target}".strip()) from None

        call.__name__ = name
        return call


class KubeApi:
    """The typed APIs over a shared REST client, and fresh clients for streams.

    ``new_client()`` returns a new ``kubernetes.client.ApiClient``; tests pass
    one that talks to a fake.
    """

    def __init__(self, new_client: Callable[[], Any]) -> None:
        from kubernetes import client

        self.new_client = new_client
        self.rest = guarded(new_client())
        self.core = Typed(client.CoreV1Api(self.rest))
        self.apps = Typed(client.AppsV1Api(self.rest))
        self.custom = Typed(client.CustomObjectsApi(self.rest))
        self.extensions = Typed(client.ApiextensionsV1Api(self.rest))

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
        readers: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: self.core.read_namespace(name),
            "ConfigMap": lambda: self.core.read_namespaced_config_map(name, namespace),
            "Secret": lambda: self.core.read_namespaced_secret(name, namespace),
            "Service": lambda: self.core.read_namespaced_service(name, namespace),
            "PersistentVolumeClaim": lambda: self.core.read_namespaced_persistent_volume_claim(name, namespace),
            "Deployment": lambda: self.apps.read_namespaced_deployment(name, namespace),
        }
        try:
            if kind in CUSTOM_KINDS:
                group, version, plural = CUSTOM_KINDS[kind]
                return self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
            return readers[kind]()
        except KubeApiError as err:
            if err.status == 404:
                return None
            raise KubeApiError(f"reading {kind} {name} failed: {err.what.split(' failed: ', 1)[-1]}", err.status,
                               evidence=err.evidence) from None

    # ------------------------------------------------------------------ writes
    def apply(self, obj: dict[str, Any], manager: str = FIELD_MANAGER) -> None:
        """Server-side apply of one object of ours (refused if it exists and is not ours).
        ``manager`` owns what it applies: another manager's fields are left alone."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        namespace = obj["metadata"].get("namespace", "")
        existing = self.read(kind, name, namespace)
        if existing is not None:
            safety.check_owned(existing, f"{kind} {name}")
            if kind == "Secret":
                return  # never rewrite the password
        opts = {"field_manager": manager, "force": True, "_content_type": APPLY_CONTENT_TYPE}
        appliers: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: self.core.patch_namespace(name, obj, **opts),
            "ConfigMap": lambda: self.core.patch_namespaced_config_map(name, namespace, obj, **opts),
            "Secret": lambda: self.core.patch_namespaced_secret(name, namespace, obj, **opts),
            "Service": lambda: self.core.patch_namespaced_service(name, namespace, obj, **opts),
            "PersistentVolumeClaim": lambda: self.core.patch_namespaced_persistent_volume_claim(
                name, namespace, obj, **opts),
            "Deployment": lambda: self.apps.patch_namespaced_deployment(name, namespace, obj, **opts),
        }
        try:
            if kind in CUSTOM_KINDS:
                group, version, plural = CUSTOM_KINDS[kind]
                self.custom.patch_namespaced_custom_object(group, version, namespace, plural, name, obj, **opts)
            else:
                appliers[kind]()
        except KubeApiError as err:
            raise KubeApiError(f"applying {kind} {name} failed: {err.what.split(' failed: ', 1)[-1]}", err.status,
                               evidence=err.evidence,
                               hint=f"`kubectl -n {namespace or 'default'} describe {kind.lower()} {name}`") from None

    def create(self, obj: dict[str, Any]) -> None:
        """Create a ConfigMap (409 AlreadyExists when one appeared meanwhile)."""
        assert obj["kind"] == "ConfigMap", "only the lease's ConfigMap is written this way"
        self.core.create_namespaced_config_map(obj["metadata"]["namespace"], obj)

    def replace(self, obj: dict[str, Any]) -> None:
        """Replace a ConfigMap of ours over the ``metadata.resourceVersion`` it carries (409 Conflict
        when the object changed since that version)."""
        assert obj["kind"] == "ConfigMap", "only the lease's ConfigMap is written this way"
        self.core.replace_namespaced_config_map(obj["metadata"]["name"], obj["metadata"]["namespace"], obj)

    def delete_custom(self, kind: str, name: str, namespace: str) -> bool:
        """Delete a custom object of ours; False when it was gone already."""
        group, version, plural = CUSTOM_KINDS[kind]
        existing = self.read(kind, name, namespace)
        if existing is None:
            return False
        safety.check_owned(existing, f"{kind} {name}")
        try:
            self.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
        except KubeApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    def crd_installed(self, name: str) -> bool:
        """Whether the CustomResourceDefinition ``name`` (e.g. ``stresschaos.chaos-mesh.org``) exists."""
        try:
            self.extensions.read_custom_resource_definition(name)
        except KubeApiError as err:
            if err.status == 404:
                return False
            raise
        return True
