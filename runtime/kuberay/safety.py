"""What the Kubernetes target may touch: which contexts, which namespace, which objects.

- a context named ``kind-*``, or one the user named with ``--allow-context``;
- only its own namespace, and only if that namespace is ours (labelled) or absent;
- only objects carrying ``app.kubernetes.io/managed-by: serve-chaos``.
Each refusal is a one-line ConfigError that says how to proceed.
"""

from __future__ import annotations

from typing import Any

from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.kuberay.manifests import MANAGED_BY

MANAGED_KEY, MANAGED_VALUE = next(iter(MANAGED_BY.items()))
MANAGED_SELECTOR = f"{MANAGED_KEY}={MANAGED_VALUE}"


def check_context(context: str | None, allowed: tuple[str, ...] = ()) -> str:
    if not context:
        raise ConfigError("no Kubernetes context is selected",
                          hint="create one with `serve-chaos kind up` or pass --kube-context")
    if context.startswith("kind-") or context in allowed:
        return context
    raise ConfigError(
        f"refusing to act on context {context!r}: only kind-* contexts are allowed by default",
        hint=f"pass --allow-context {context} if this cluster is meant for chaos experiments",
    )


def labels_of(obj: Any) -> dict[str, str]:
    """Labels of a kubernetes-client model or a plain dict."""
    meta = obj.get("metadata") if isinstance(obj, dict) else getattr(obj, "metadata", None)
    if meta is None:
        return {}
    found = meta.get("labels") if isinstance(meta, dict) else getattr(meta, "labels", None)
    return dict(found or {})


def is_ours(obj: Any) -> bool:
    return labels_of(obj).get(MANAGED_KEY) == MANAGED_VALUE


def check_owned(obj: Any, what: str) -> None:
    if not is_ours(obj):
        raise ConfigError(f"refusing to touch {what}: it does not carry the label {MANAGED_SELECTOR}",
                          hint="serve-chaos only changes objects it created")


def check_namespace(ns: Any | None, name: str) -> None:
    """Our namespace must be absent (we create it) or carry our label."""
    if ns is not None and not is_ours(ns):
        raise ConfigError(f"refusing to use namespace {name!r}: it exists and was not created by serve-chaos",
                          hint="pass --namespace with a name of our own")
