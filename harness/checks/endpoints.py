"""Which endpoints of the load a fault hit, and which a scope names.

A direct endpoint is a pod's own proxy: a slot (``pods:worker#1``, ``pod:<name>``;
``serve_chaos.harness.load.slots``) that follows its pod across recreations, or ``role:<role>``.
Every request record says which pod incarnation its slot aimed at (``pod``,
``incarnation``) and at what ``address``, so "the pod behind an endpoint" is read
from the records at the time that matters, never from the endpoint's name.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from serve_chaos.harness.checks.identity import pod_roles, victim_key
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.runtime.cluster import ROLE_ENDPOINT

#: Prefixes of the endpoints that aim at one pod: slots of a role, a slot started on a named pod.
SLOT_PREFIXES = ("pods:", "pod:")


def is_direct(endpoint: str) -> bool:
    """A pod's own proxy (a slot: ``pods:<role>#<n>`` or ``pod:<name>``) or the current pod of a role (``role:<role>``)."""
    return endpoint.startswith((*SLOT_PREFIXES, ROLE_ENDPOINT))


def endpoint_roles(reqs: pd.DataFrame) -> dict[str, str]:
    """Endpoint -> role of the pod it targets, as the load recorded it."""
    if reqs.empty or "role" not in reqs:
        return {}
    known = reqs.dropna(subset=["role"])
    return {str(ep): str(role) for ep, role in known.groupby("endpoint")["role"].first().items()}


def in_scope(endpoint: str, role: str | None, scope: str) -> bool:
    """``scope`` is an endpoint name, or ``pods:<role>``: every direct endpoint of that role."""
    if scope.startswith("pods:") and "#" not in scope:
        return is_direct(endpoint) and role == scope.split(":", 1)[1]
    return endpoint == scope


def pod_behind(reqs: pd.DataFrame, endpoint: str, t: float) -> str | None:
    """The pod a slot aimed at when ``t`` came: its last request sent by then (else its first
    after); a ``pod:<name>`` endpoint without records names its pod."""
    mine = reqs[reqs["endpoint"] == endpoint] if not reqs.empty else reqs
    pods = target_pods(mine).dropna()
    if not pods.empty:
        before = pods[mine.loc[pods.index, "t"] <= t]
        return str(before.iloc[-1] if not before.empty else pods.iloc[0])
    return endpoint[len("pod:"):] if endpoint.startswith("pod:") else None


def target_pods(reqs: pd.DataFrame) -> pd.Series:
    """The pod each slot request was aimed at (None for the front door and ``role:`` endpoints,
    whose records name the pod that answered, if any).  Records that name no pod (written
    before slots) were aimed at the pod their ``pod:<name>`` endpoint names."""
    if reqs.empty:
        return pd.Series(None, index=reqs.index, dtype=object)
    endpoint = reqs["endpoint"].astype(str)
    named = endpoint.str.slice(len("pod:")).where(endpoint.str.startswith("pod:"))
    return reqs["pod"].where(reqs["pod"].notna(), named).where(endpoint.str.startswith(SLOT_PREFIXES))


def aimed_at_pod(reqs: pd.DataFrame, pod: str) -> pd.Series:
    """Which requests a slot sent to ``pod``'s own proxy."""
    return (target_pods(reqs) == pod).astype(bool)


def hit_pods(fault: FaultRecord) -> set[str]:
    """Pods the fault struck: pod victims, the pods of actor victims, the pod it names.  Replicas an
    operator's change replaces on every pod (a rollout) strike no pod: their pods keep serving."""
    hit = {v["pod"] for v in fault.victims if v.get("pod") and not v.get("replaced_by_change")}
    hit |= {v["name"] for v in fault.victims if v.get("role") == "pod"}
    if fault.params.get("pod"):
        hit.add(fault.params["pod"])
    return hit


def endpoint_hit(endpoint: str, role: str | None, fault: FaultRecord, history: History) -> bool:
    """Whether the fault hit the pod behind a direct endpoint (the slot's pod when the fault
    came, or the role's pod)."""
    hit = hit_pods(fault)
    if endpoint.startswith(SLOT_PREFIXES):
        return pod_behind(history.requests, endpoint, fault.t_inject) in hit
    roles = pod_roles(history.snapshots)
    roles.update({v["name"]: v.get("pod_role", "") for v in fault.victims if v.get("role") == "pod"})
    return role in {roles.get(p) for p in hit}


def victim_incarnations(victims: list[dict[str, Any]]) -> set[str]:
    """The pod incarnations a fault took away (``identity.victim_key`` of its pod victims)."""
    return {key for v in victims if v.get("role") == "pod" for key in [victim_key(v)] if key}


def aimed_at_victims(reqs: pd.DataFrame, victims: list[dict[str, Any]]) -> pd.Series:
    """Which requests were aimed at a pod incarnation the fault took away: what they met says
    nothing about the cluster (a port-forward to a deleted pod stays dead).  Records without an
    incarnation (written before slots) count by their endpoint ``pod:<victim name>``."""
    if reqs.empty:
        return pd.Series(False, index=reqs.index, dtype=bool)
    gone = victim_incarnations(victims)
    names = {f"pod:{v['name']}" for v in victims if v.get("role") == "pod"}
    incarnation = reqs["incarnation"] if "incarnation" in reqs else pd.Series(None, index=reqs.index)
    legacy = incarnation.isna() & reqs["endpoint"].isin(names)
    return (incarnation.isin(gone) | legacy).astype(bool)


def vacated_until(history: History, victims: list[dict[str, Any]]) -> dict[str, float]:
    """Slots that aimed at a victim incarnation -> when they moved on from it (epoch s; their
    first send, made or vacant, aimed elsewhere afterwards; ``inf`` while they have not).
    Requests of such a slot still in flight before then hang on a dead pod and must not
    hold judging back (``History.judged_until``); those after it must."""
    reqs = history.requests
    if reqs.empty or not any(v.get("role") == "pod" for v in victims):
        return {}
    dead = reqs[aimed_at_victims(reqs, victims)]
    unsent = history.unsent
    out: dict[str, float] = {}
    for endpoint, group in dead.groupby("endpoint"):
        first_dead = float(group["t"].min())
        mine = reqs[(reqs["endpoint"] == endpoint) & (reqs["t"] > first_dead)]
        moved = list(mine.loc[~aimed_at_victims(mine, victims), "t"].nsmallest(1))
        if not unsent.empty:
            moved += list(unsent.loc[(unsent["endpoint"] == endpoint) & (unsent["t"] > first_dead), "t"].nsmallest(1))
        out[str(endpoint)] = float(min(moved, default=float("inf")))
    return out
