"""Churn: which lives (actors by role, pods) left and appeared between two snapshots,
judged against what the scenario expects to be replaced."""

from __future__ import annotations

from typing import Any, Iterable

from serve_chaos.harness.checks.identity import ROLES, actor_key, pod_lives, pod_roles, role_keys, victim_key
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.observe.probe import Snapshot


#: Proxy statuses of a proxy Serve itself is retiring (ray serve/_private/proxy_state.py ProxyStatus).
DRAINING_STATES = ("DRAINING", "DRAINED")


def drained_proxies(snapshots: Iterable[Snapshot]) -> dict[str, str | None]:
    """Proxies last seen DRAINING or DRAINED (key -> pod), ``snapshots`` in time order.  Ray 2.60's
    controller keeps proxies only on its own node and on nodes with replicas (serve/_private/
    controller.py ``_update_proxy_nodes``), drains the rest, stops them once drained (``proxy.py``
    ``is_drained``: at least ``RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S``, 30 s, and no request in
    flight) and starts a new one when replicas come back (proxy_state.py ``update``): such an end
    is Serve's placement, not a fault's effect.  Only the *last* state counts: a draining proxy
    may turn HEALTHY again, or UNHEALTHY and be replaced (``_reconcile_internal``) -- a crash."""
    last: dict[str, tuple[str | None, str | None]] = {}
    for snap in snapshots:
        for a in snap.actors:
            if a["role"] == "proxy" and a.get("actor_id"):
                last[actor_key(a)] = (a.get("state"), a.get("pod"))
    return {k: pod for k, (state, pod) in last.items() if state in DRAINING_STATES}


def churn(before: Snapshot, after: Snapshot, between: Iterable[Snapshot] = ()) -> dict[str, dict[str, Any]]:
    """Lives that left and appeared between two snapshots: actors by role (``actor_id:pid``)
    and pods (``uid#restarts``); ``pods`` says where each one was, ``roles`` each pod's role.
    ``between`` (the snapshots from ``before`` to ``after``) tells which proxies Serve drained."""
    out: dict[str, dict[str, Any]] = {}
    between = list(between)
    roles = pod_roles([before, after])
    for role in ROLES:
        b, a = role_keys(before, role), role_keys(after, role)
        where = {actor_key(x): x.get("pod") for s in (before, after) for x in s.actors
                 if x["role"] == role and x.get("actor_id")}
        serving = {x.get("pod") for x in before.actors if x["role"] == "replica" and x.get("state") == "RUNNING"}
        # A proxy on a node without replicas carries no traffic; Serve drains and
        # replaces such proxies as replicas move.
        idle = sorted(k for k in b if where.get(k) not in serving) if role == "proxy" else []
        out[role] = {"before": sorted(b), "after": sorted(a), "left": sorted(b - a), "appeared": sorted(a - b),
                     "pods": {k: where.get(k) for k in sorted((b - a) | (a - b))}, "idle_before": idle,
                     "roles": roles}
        if role == "proxy":
            out[role]["drained"] = _drained_and_returned(drained_proxies([before, *between, after]), b, a, where)
    if before.pods_ok and after.pods_ok:
        b_lives, a_lives = pod_lives(before), pod_lives(after)
        left, appeared = sorted(set(b_lives) - set(a_lives)), sorted(set(a_lives) - set(b_lives))
        out["pod"] = {"before": sorted(b_lives), "after": sorted(a_lives), "left": left, "appeared": appeared,
                      "pods": {k: {**b_lives, **a_lives}[k] for k in left + appeared}, "roles": roles}
    return out


def _drained_and_returned(drained: dict[str, str | None], before: frozenset[str], after: frozenset[str],
                          where: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Proxies that left last seen draining (key -> pod), and every proxy that appeared (key -> pod):
    which of these count as Serve's return of a drained one depends on the victims."""
    return {"left": {k: drained[k] for k in sorted(before - after) if k in drained},
            "appeared": {k: where.get(k) for k in sorted(after - before)}}


def _judged_lives(got: dict[str, Any], victim_ids: set[str]) -> tuple[set[str], set[str], dict[str, Any]]:
    """The lives a churn expectation judges: all that left and appeared, except proxies Serve
    drained by itself (not a victim) and the proxies it brought back on their pods, which the
    value still shows under ``drained_by_serve``."""
    left, appeared = set(got["left"]), set(got["appeared"])
    value: dict[str, Any] = {"left": sorted(left), "appeared": sorted(appeared)}
    drained = got.get("drained") or {}
    spared = {k: pod for k, pod in (drained.get("left") or {}).items() if k not in victim_ids}
    # Serve's return: a proxy on a pod whose spared proxy left (never on a victim's pod, never unknown).
    pods = {pod for pod in spared.values() if pod}
    spared_left = set(spared)
    spared_back = {k for k, pod in (drained.get("appeared") or {}).items() if pod in pods}
    if spared_left:
        value["drained_by_serve"] = {"left": sorted(spared_left), "appeared": sorted(spared_back)}
    return left - spared_left, appeared - spared_back, value


CHURN_KINDS = ("none", "victims", "victims_left", "victims_or_idle", "at_least_victims", "all", "any", "shrunk")
#: ``none_outside:<role>[,<role>...]``: nothing changed except on pods of those roles.
NONE_OUTSIDE = "none_outside:"


def valid_churn_kind(kind: str) -> bool:
    return kind in CHURN_KINDS or (kind.startswith(NONE_OUTSIDE) and len(kind) > len(NONE_OUTSIDE))


def check_churn(
    role: str,
    expected: str,
    observed: dict[str, dict[str, list]] | None,
    victims: list[dict[str, Any]],
) -> CheckResult:
    """Compare one role's churn with what the scenario expects.

    ``none``: nothing left or appeared.  ``victims``: exactly the victims of that
    role left and as many new ones appeared.  ``victims_left``: exactly the
    victims left, whatever appeared (a lost node's proxy need not come back
    elsewhere).  ``victims_or_idle``: the victims left, and any other that left
    was idle (a proxy on a node without replicas).  ``at_least_victims``: the victims
    left (others may too) and the count is back.  ``all``: every PID changed.
    ``any``: reported, not judged.
    """
    name = f"churn.{role}"
    if not valid_churn_kind(expected):
        return CheckResult(name, UNKNOWN, detail=f"unknown expectation {expected!r}")
    if observed is None or role not in observed:
        return CheckResult(name, UNKNOWN, bound=expected, detail="no snapshot before the fault or at recovery")
    got = observed[role]
    victim_ids = {victim_key(v) for v in victims if v.get("role") == role} - {None}
    left, appeared, value = _judged_lives(got, victim_ids)
    if expected == "any":
        return CheckResult(name, PASS, value, bound="any")
    if expected.startswith(NONE_OUTSIDE):
        allowed = set(expected[len(NONE_OUTSIDE):].split(","))
        where, roles = got.get("pods", {}), got.get("roles", {})
        outside = sorted(k for k in left | appeared if roles.get(where.get(k)) not in allowed)
        ok = not outside
        return CheckResult(name, PASS if ok else FAIL, value, bound=expected,
                           detail="" if ok else f"changed outside {sorted(allowed)}: {outside}")
    if expected == "none":
        ok = not left and not appeared
        detail = "" if ok else f"expected no change, {len(left)} left and {len(appeared)} appeared"
    elif expected == "victims":
        ok = left == victim_ids and len(appeared) == len(left)
        detail = "" if ok else f"expected exactly {sorted(victim_ids)} replaced"
    elif expected == "victims_left":
        ok = left == victim_ids
        detail = "" if ok else f"expected exactly {sorted(victim_ids)} to leave"
    elif expected == "victims_or_idle":
        idle = set(got.get("idle_before", []))
        ok = victim_ids <= left and left <= victim_ids | idle
        detail = "" if ok else f"expected {sorted(victim_ids)} to leave, others only if idle ({sorted(idle)})"
    elif expected == "shrunk":
        removed = sum(int(v.get("removed") or 0) for v in victims if v.get("role") == "config")
        ok = not appeared and len(left) == removed
        detail = "" if ok else f"expected exactly {removed} to leave and none to appear"
    elif expected == "at_least_victims":
        ok = victim_ids <= left and len(got["after"]) >= len(got["before"])
        detail = "" if ok else f"expected at least {sorted(victim_ids)} replaced"
    else:  # all
        ok = bool(got["before"]) and left == set(got["before"]) and len(appeared) >= len(left)
        detail = "" if ok else "expected every one replaced"
    return CheckResult(name, PASS if ok else FAIL, value, bound=expected, detail=detail)
