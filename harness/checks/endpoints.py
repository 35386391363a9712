"""Which endpoints of the load a fault hit, and which a scope names."""

from __future__ import annotations

import pandas as pd

from harness.checks.identity import pod_roles
from harness.history import FaultRecord, History
from runtime.cluster import ROLE_ENDPOINT


def is_direct(endpoint: str) -> bool:
    """A pod's own proxy (``pod:<name>``) or the current pod of a role (``role:<role>``)."""
    return endpoint.startswith(("pod:", ROLE_ENDPOINT))


def endpoint_roles(reqs: pd.DataFrame) -> dict[str, str]:
    """Endpoint -> role of the pod it targets, as the load recorded it."""
    if reqs.empty or "role" not in reqs:
        return {}
    known = reqs.dropna(subset=["role"])
    return {str(ep): str(role) for ep, role in known.groupby("endpoint")["role"].first().items()}


def in_scope(endpoint: str, role: str | None, scope: str) -> bool:
    """``scope`` is an endpoint name, or ``pods:<role>``: every direct endpoint of that role."""
    if scope.startswith("pods:"):
        return is_direct(endpoint) and role == scope.split(":", 1)[1]
    return endpoint == scope


def endpoint_hit(endpoint: str, role: str | None, fault: FaultRecord, history: History) -> bool:
    """Whether the fault hit the pod behind a direct endpoint (its pod, or the role's pod)."""
    hit = {v["pod"] for v in fault.victims if v.get("pod")}
    hit |= {v["name"] for v in fault.victims if v.get("role") == "pod"}
    if fault.params.get("pod"):
        hit.add(fault.params["pod"])
    if endpoint.startswith("pod:"):
        return endpoint[len("pod:"):] in hit
    roles = pod_roles(history.snapshots)
    roles.update({v["name"]: v.get("pod_role", "") for v in fault.victims if v.get("role") == "pod"})
    return role in {roles.get(p) for p in hit}
