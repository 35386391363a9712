"""Checks: pure functions of a History.  No I/O, no clock, no cluster.

Definitions (all times epoch seconds, durations seconds):

- **availability** over a window = successful / judged requests whose intended
  send time ``t`` lies in ``[start, end)``; ``None`` when there were none.
- **outage window** (per endpoint) = from the intended time of a failed request
  that follows a success (or opens the run) to the intended time of the next
  success.  If no success follows, the window is *open* and ends at its last
  failure.  Its ``duration`` is ``end - start``.
- **first success** after a fault = end of the first outage window that ends
  after the fault, minus the fault time; 0 when nothing failed after the fault;
  ``None`` when that window never closed.
- **service restored** = the same for the *last* such window.
- **steady state** holds at ``t`` when, over ``[t, t + hold_s]``: every probe
  answered; the desired number of replicas is RUNNING with one unchanging set
  of PIDs; exactly one Serve controller is alive; every node with a replica has
  a HEALTHY proxy; no victim of the fault is still present; no request failed; and every
  proxy that served traffic reached the replicas it should (its node's
  replicas if it has any -- Serve prefers local replicas -- else all) and no
  replica outside the RUNNING set.
- **recovery time** = first steady state at or after the fault, minus the fault time.
- **churn** by role = PIDs (pod UIDs for pods) present before the fault and
  gone at recovery (``left``) and new ones (``appeared``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable

import pandas as pd

from harness.history import FaultRecord, History
from harness.observe import Snapshot
from runtime.cluster import ROLE_ENDPOINT, incarnation

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
ROLES = ("replica", "proxy", "controller")
#: A proxy must have served this many successes in a window before we judge what it reached.
MIN_REQUESTS_FOR_REACH = 10


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class CheckResult:
    """One judged quantity.  ``bound`` is human-readable (">= 0.999", "<= 30 s")."""

    name: str
    status: str
    value: Any = None
    bound: str | None = None
    unit: str = ""
    detail: str = ""

    def line(self) -> str:
        value = _fmt(self.value, self.unit)
        text = f"{self.name} = {value}"
        if self.bound:
            text += f" (bound {self.bound})"
        if self.detail:
            text += f": {self.detail}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if unit == "ratio":
            return f"{value:.4f}"
        return f"{value:.2f}{' ' + unit if unit else ''}"
    return f"{value}{' ' + unit if unit and not isinstance(value, (list, dict)) else ''}"


def combine(statuses: Iterable[str]) -> str:
    """fail beats unknown beats pass."""
    statuses = list(statuses)
    if FAIL in statuses:
        return FAIL
    if UNKNOWN in statuses:
        return UNKNOWN
    return PASS


# ---------------------------------------------------------------------- availability & outages
def availability(df: pd.DataFrame, start: float | None = None, end: float | None = None) -> float | None:
    if df.empty:
        return None
    mask = pd.Series(True, index=df.index)
    if start is not None:
        mask &= df["t"] >= start
    if end is not None:
        mask &= df["t"] < end
    sel = df.loc[mask, "ok"]
    if sel.empty:
        return None
    return float(sel.mean())


@dataclass(frozen=True)
class Window:
    endpoint: str
    start: float
    end: float
    failures: int
    closed: bool

    @property
    def duration(self) -> float:
        return self.end - self.start


def outage_windows(df: pd.DataFrame, endpoint: str | None = None) -> list[Window]:
    """Outage windows of each endpoint (or of ``endpoint`` only), ordered by start."""
    windows: list[Window] = []
    if df.empty:
        return windows
    groups = [(endpoint, df[df["endpoint"] == endpoint])] if endpoint else list(df.groupby("endpoint", sort=True))
    for name, group in groups:
        start: float | None = None
        last_fail = 0.0
        failures = 0
        for t, ok in zip(group["t"].to_numpy(), group["ok"].to_numpy()):
            if not ok:
                if start is None:
                    start = float(t)
                    failures = 0
                failures += 1
                last_fail = float(t)
            elif start is not None:
                windows.append(Window(str(name), start, float(t), failures, True))
                start = None
        if start is not None:
            windows.append(Window(str(name), start, last_fail, failures, False))
    return sorted(windows, key=lambda w: (w.start, w.endpoint))


def longest_outage(windows: list[Window]) -> Window | None:
    return max(windows, key=lambda w: w.duration, default=None)


def first_success_after(windows: list[Window], t_fault: float) -> float | None:
    after = [w for w in windows if w.end >= t_fault]
    if not after:
        return 0.0
    first = after[0]
    return first.end - t_fault if first.closed else None


def service_restored_after(windows: list[Window], t_fault: float) -> float | None:
    after = [w for w in windows if w.end >= t_fault]
    if not after:
        return 0.0
    last = after[-1]
    return last.end - t_fault if last.closed else None


def failure_span(df: pd.DataFrame, t_fault: float) -> float:
    """Seconds from the first to the last failed request sent at or after the fault (0 if none)."""
    if df.empty:
        return 0.0
    failed = df[(~df["ok"]) & (df["t"] >= t_fault)]["t"]
    return float(failed.max() - failed.min()) if len(failed) else 0.0


def error_classes(df: pd.DataFrame) -> dict[str, int]:
    if df.empty:
        return {}
    failed = df[~df["ok"]]
    return {str(k): int(v) for k, v in failed["error"].fillna("unknown").value_counts().items()}


def latency_percentiles(df: pd.DataFrame, start: float | None = None, end: float | None = None) -> dict[str, float | None]:
    """p50/p90/p99 latency (ms) of successful requests in ``[start, end)``."""
    sel = df[df["ok"]] if not df.empty else df
    if start is not None and not sel.empty:
        sel = sel[sel["t"] >= start]
    if end is not None and not sel.empty:
        sel = sel[sel["t"] < end]
    if sel.empty:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
    q = sel["latency_ms"].astype(float).quantile([0.5, 0.9, 0.99])
    return {"p50_ms": float(q[0.5]), "p90_ms": float(q[0.9]), "p99_ms": float(q[0.99])}


# ---------------------------------------------------------------------- snapshots
def actor_key(actor: dict[str, Any]) -> str:
    """One life of a Serve actor.  The actor id tells actors apart across pods (each
    pod has its own PID namespace, so PIDs repeat); the PID tells a restart of the
    same actor (Ray keeps its id) from the life before."""
    return f"{actor.get('actor_id')}:{actor.get('pid')}"


def replica_keys(snap: Snapshot, running_only: bool = True) -> frozenset[str]:
    return frozenset(
        actor_key(a)
        for a in snap.actors
        if a["role"] == "replica" and a.get("actor_id") and (not running_only or a.get("state") == "RUNNING")
    )


def role_keys(snap: Snapshot, role: str) -> frozenset[str]:
    return frozenset(actor_key(a) for a in snap.actors if a["role"] == role and a.get("actor_id"))


def pod_lives(snap: Snapshot) -> dict[str, str]:
    """Running pods by incarnation (UID and in-place restarts) -> pod name."""
    return {incarnation(p.get("uid", ""), p.get("restarts")): p["name"] for p in snap.pods
            if p.get("uid") and p.get("phase") in ("Running", None)}


def pod_roles(snapshots: Iterable[Snapshot]) -> dict[str, str]:
    """Pod name -> role, from every snapshot given."""
    return {p["name"]: p.get("role", "") for s in snapshots for p in s.pods if p.get("name")}


def victim_key(victim: dict[str, Any]) -> str | None:
    """What identifies a victim's life: a pod incarnation or an actor key."""
    if victim.get("role") == "pod":
        return incarnation(victim.get("uid", ""), victim.get("restarts")) if victim.get("uid") else None
    return actor_key(victim) if victim.get("actor_id") else None


def victim_present(snap: Snapshot, victim: dict[str, Any]) -> bool:
    """Whether the snapshot still shows this life of the victim (same actor id and PID,
    or same pod UID and restart count)."""
    role = victim.get("role")
    if role in ROLES:
        for actor in snap.actors:
            if actor["role"] != role:
                continue
            if victim.get("actor_id"):
                if actor.get("actor_id") == victim["actor_id"] and (
                        not victim.get("pid") or actor.get("pid") == victim["pid"]):
                    return True
            elif victim.get("pid") and actor.get("pid") == victim["pid"] and actor.get("pod") == victim.get("pod"):
                return True
        return False
    if role == "pod":
        return victim_key(victim) in pod_lives(snap)
    return False


def victims_observable(snap: Snapshot, victims: list[dict[str, Any]]) -> bool:
    needs_actors = any(v.get("role") in ROLES for v in victims)
    needs_pods = any(v.get("role") == "pod" for v in victims)
    return (not needs_actors or snap.actors_ok) and (not needs_pods or snap.pods_ok)


# ---------------------------------------------------------------------- steady state
@dataclass
class SteadyState:
    """Why steady state does or does not hold over a window."""

    holds: bool
    reason: str = ""


def proxy_reach_problems(snap: Snapshot, ok_requests: pd.DataFrame) -> list[str]:
    """What proxies failed to reach, judged from successful requests grouped by serving pod."""
    running = {
        int(a["pid"]): a.get("pod")
        for a in snap.actors
        if a["role"] == "replica" and a.get("pid") and a.get("state") == "RUNNING"
    }
    problems: list[str] = []
    if ok_requests.empty or not running:
        return problems
    for pod, group in ok_requests.groupby("pod"):
        if not pod or len(group) < MIN_REQUESTS_FOR_REACH:
            continue
        seen = {int(p) for p in group["pid"].dropna()}
        stale = seen - set(running)
        if stale:
            problems.append(f"proxy on {pod} answered from replicas not RUNNING: {sorted(stale)}")
        local = {pid for pid, rpod in running.items() if rpod == pod}
        expected = local or set(running)
        missing = expected - seen
        if missing:
            problems.append(f"proxy on {pod} did not reach replicas {sorted(missing)}")
    return problems


def steady_state_over(
    history: History,
    window: list[Snapshot],
    t0: float,
    t1: float,
    victims: list[dict[str, Any]],
    reqs: pd.DataFrame | None = None,
) -> SteadyState:
    if len(window) < 2:
        return SteadyState(False, "fewer than 2 probes in the window")
    want = history.desired_replicas
    pid_sets = set()
    for snap in window:
        if not snap.ok:
            return SteadyState(False, f"dashboard not answering at {snap.t:.1f} ({', '.join(snap.errors) or 'no data'})")
        if want and snap.replicas_running != want:
            return SteadyState(False, f"{snap.replicas_running}/{want} replicas RUNNING")
        keys = replica_keys(snap)
        if want and len(keys) != want:
            return SteadyState(False, f"{len(keys)}/{want} RUNNING replicas alive in Ray")
        pid_sets.add(keys)
        controllers = sum(1 for a in snap.actors if a["role"] == "controller")
        if controllers != 1:
            return SteadyState(False, f"{controllers} Serve controllers alive")
        replica_nodes = {a.get("node_ip") for a in snap.actors if a["role"] == "replica" and a.get("state") == "RUNNING"}
        proxy_nodes = {a.get("node_ip") for a in snap.actors if a["role"] == "proxy" and a.get("state") == "HEALTHY"}
        if replica_nodes - proxy_nodes:
            return SteadyState(False, f"no HEALTHY proxy on node(s) {sorted(map(str, replica_nodes - proxy_nodes))}")
        for victim in victims:
            if victim_present(snap, victim):
                return SteadyState(False, f"victim {victim.get('role')} {victim.get('name') or victim.get('pid')} "
                                          f"on {victim.get('pod') or victim.get('node') or '?'} still present")
    if len(pid_sets) != 1:
        return SteadyState(False, "replicas changing")
    df = history.judged_requests() if reqs is None else reqs
    if not df.empty:
        in_window = df[(df["t"] >= t0) & (df["t"] <= t1)]
        # A port-forward to a deleted pod stays dead; it says nothing about the cluster.
        gone = {f"pod:{v['name']}" for v in victims if v.get("role") == "pod"}
        if gone:
            in_window = in_window[~in_window["endpoint"].isin(gone)]
        failed = int((~in_window["ok"]).sum())
        if failed:
            return SteadyState(False, f"{failed} requests failed")
        problems = proxy_reach_problems(window[-1], in_window[in_window["ok"]])
        if problems:
            return SteadyState(False, "; ".join(problems))
    return SteadyState(True)


def first_steady_state(
    history: History,
    t_from: float,
    hold_s: float,
    victims: list[dict[str, Any]] | None = None,
) -> tuple[float | None, str]:
    """Earliest probe time ``t >= t_from`` where steady state holds over ``[t, t + hold_s]``.

    Returns ``(t, "")`` or ``(None, reason it does not hold at the latest candidate)``.
    """
    victims = victims or []
    snaps = [s for s in history.snapshots if s.t >= t_from]
    gone = {f"pod:{v['name']}" for v in victims if v.get("role") == "pod"}
    reqs = history.judged_requests(gone)
    judged_until = history.judged_until(gone)
    if not history.requests.empty and judged_until == float("inf"):
        judged_until = float(history.requests["t"].max())
    last_t = snaps[-1].t if snaps else None
    reason = "no probes after the fault"
    for i, snap in enumerate(snaps):
        t0 = snap.t
        if last_t is None or last_t < t0 + hold_s:
            reason = reason if i else "not enough probes yet"
            break
        if t0 + hold_s > judged_until:
            # The window must lie where every request's outcome is known.
            reason = (f"{reason}; later windows not judged yet" if i else "waiting for request outcomes")
            break
        window = [s for s in snaps[i:] if s.t <= t0 + hold_s]
        state = steady_state_over(history, window, t0, t0 + hold_s, victims, reqs)
        if state.holds:
            return t0, ""
        reason = state.reason
    return None, reason


# ---------------------------------------------------------------------- churn
def snapshot_before(history: History, t: float) -> Snapshot | None:
    """The last good snapshot whose probing *finished* before ``t`` (so none of it saw the fault)."""
    before = [s for s in history.snapshots if (s.t_end or s.t) < t and s.ok]
    return before[-1] if before else None


def snapshot_at_or_after(history: History, t: float) -> Snapshot | None:
    after = [s for s in history.snapshots if s.t >= t and s.ok]
    return after[0] if after else None


def churn(before: Snapshot, after: Snapshot) -> dict[str, dict[str, Any]]:
    """Lives that left and appeared between two snapshots: actors by role (``actor_id:pid``)
    and pods (``uid#restarts``); ``pods`` says where each one was, ``roles`` each pod's role."""
    out: dict[str, dict[str, Any]] = {}
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
    if before.pods_ok and after.pods_ok:
        b_lives, a_lives = pod_lives(before), pod_lives(after)
        left, appeared = sorted(set(b_lives) - set(a_lives)), sorted(set(a_lives) - set(b_lives))
        out["pod"] = {"before": sorted(b_lives), "after": sorted(a_lives), "left": left, "appeared": appeared,
                      "pods": {k: {**b_lives, **a_lives}[k] for k in left + appeared}, "roles": roles}
    return out


CHURN_KINDS = ("none", "victims", "victims_left", "victims_or_idle", "at_least_victims", "all", "any")
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
    left, appeared = set(got["left"]), set(got["appeared"])
    value = {"left": sorted(left), "appeared": sorted(appeared)}
    victim_ids = {victim_key(v) for v in victims if v.get("role") == role} - {None}
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
    elif expected == "at_least_victims":
        ok = victim_ids <= left and len(got["after"]) >= len(got["before"])
        detail = "" if ok else f"expected at least {sorted(victim_ids)} replaced"
    else:  # all
        ok = bool(got["before"]) and left == set(got["before"]) and len(appeared) >= len(left)
        detail = "" if ok else "expected every one replaced"
    return CheckResult(name, PASS if ok else FAIL, value, bound=expected, detail=detail)


# ---------------------------------------------------------------------- fault verification
def fault_effect(history: History, fault: FaultRecord) -> CheckResult:
    """Did the fault change what it should?  fail if every victim was still there at the end."""
    name = "fault.took_effect"
    if not fault.victims:
        return CheckResult(name, FAIL, detail="the fault recorded no victim")
    after = [s for s in history.snapshots if s.t >= fault.t_inject and victims_observable(s, fault.victims)]
    if not after:
        return CheckResult(name, UNKNOWN, detail="no usable probe after the fault")
    gone_at: dict[int, float] = {}
    for snap in after:
        for i, victim in enumerate(fault.victims):
            if i not in gone_at and not victim_present(snap, victim):
                gone_at[i] = snap.t
    if len(gone_at) == len(fault.victims):
        delay = max(gone_at.values()) - fault.t_inject
        return CheckResult(name, PASS, round(delay, 3), unit="s",
                           detail=f"all {len(fault.victims)} victims gone")
    missing = [v for i, v in enumerate(fault.victims) if i not in gone_at]
    return CheckResult(name, FAIL, len(gone_at), detail=f"still present after the fault: {missing}")


# ---------------------------------------------------------------------- SLOs
@dataclass(frozen=True)
class SLO:
    """What a scenario promises.  ``None`` means "not judged".

    Availabilities are ratios in [0, 1]; durations seconds; latency ms.
    ``endpoint_availability`` maps an endpoint (``front``, ``role:head``) or a
    scope (``pods:worker``: every direct endpoint of a worker pod) to the
    minimum availability *during the fault* on each matching endpoint.
    """

    min_availability: float | None = None
    min_availability_during_fault: float | None = None
    min_availability_after_recovery: float | None = None
    max_outage_s: float | None = None
    max_first_success_s: float | None = None
    max_recovery_s: float | None = None
    max_p99_ms: float | None = None
    endpoint_availability: dict[str, float] = field(default_factory=dict)
    #: Longest span (s) from the first to the last failed request after the fault on
    #: the primary endpoint: how long errors went on, however interleaved.
    max_failure_span_s: float | None = None
    #: Longest time (s) from the fault until every victim is gone (e.g. an unhealthy
    #: replica killed, a lost node's actors declared dead).
    max_fault_effect_s: float | None = None
    #: Minimum availability during the fault through each pod's own endpoint,
    #: except pods the fault hit (the guide's "other proxies keep accepting").
    other_pods_min_availability_during_fault: float | None = None
    #: Longest outage (s) allowed through each pod's own endpoint, except pods the fault hit.
    other_pods_max_outage_s: float | None = None
    #: The endpoint the headline figures are about.
    primary_endpoint: str = "front"

    def __post_init__(self) -> None:
        for name in ("min_availability", "min_availability_during_fault", "min_availability_after_recovery",
                     "other_pods_min_availability_during_fault"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a ratio in [0, 1], got {value}")
        for name in ("max_outage_s", "max_first_success_s", "max_recovery_s", "max_p99_ms", "max_fault_effect_s",
                     "other_pods_max_outage_s", "max_failure_span_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for glob, value in self.endpoint_availability.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"endpoint_availability[{glob!r}] must be in [0, 1], got {value}")


def _min_check(name: str, value: float | None, bound: float | None, unit: str = "ratio") -> CheckResult | None:
    if bound is None:
        return None
    if value is None:
        return CheckResult(name, UNKNOWN, None, f">= {bound}", unit, "no requests in the window")
    return CheckResult(name, PASS if value >= bound else FAIL, value, f">= {bound}", unit)


def _max_check(name: str, value: float | None, bound: float | None, unit: str, none_means: str) -> CheckResult | None:
    if bound is None:
        return None
    if value is None:
        return CheckResult(name, FAIL if none_means == FAIL else UNKNOWN, None, f"<= {bound} {unit}", unit,
                           "never reached" if none_means == FAIL else "not measurable")
    return CheckResult(name, PASS if value <= bound else FAIL, value, f"<= {bound} {unit}", unit)


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


def _worst_min(name: str, endpoints: list[str], per_endpoint: dict[str, Any], key: str, bound: float,
               none_detail: str) -> CheckResult:
    """The lowest ``key`` over ``endpoints`` against a floor; the detail names the endpoint."""
    values = [(per_endpoint[ep][key], ep) for ep in endpoints if per_endpoint[ep][key] is not None]
    if not values:
        return CheckResult(name, UNKNOWN, None, f">= {bound}", "ratio", none_detail if not endpoints
                           else "no requests in the window")
    value, worst = min(values)
    return CheckResult(name, PASS if value >= bound else FAIL, value, f">= {bound}", "ratio",
                       f"lowest on {worst} of {len(values)}")


def _worst_max(name: str, endpoints: list[str], per_endpoint: dict[str, Any], key: str, bound: float,
               none_detail: str) -> CheckResult:
    """The highest ``key`` over ``endpoints`` against a ceiling; an outage still open fails."""
    if not endpoints:
        return CheckResult(name, UNKNOWN, None, f"<= {bound} s", "s", none_detail)
    value, worst = max((per_endpoint[ep][key], ep) for ep in endpoints)
    still_open = [ep for ep in endpoints if not per_endpoint[ep].get("longest_outage_closed", True)]
    if still_open:
        return CheckResult(name, FAIL, value, f"<= {bound} s", "s",
                           f"outage still open when load stopped on {', '.join(still_open)}")
    return CheckResult(name, PASS if value <= bound else FAIL, value, f"<= {bound} s", "s",
                       f"highest on {worst} of {len(endpoints)}")


ExtraCheck = Callable[[History, FaultRecord], CheckResult]
ExtraMetric = Callable[[History, FaultRecord], dict[str, Any]]


@dataclass
class Evaluation:
    """Metrics (plain data for the verdict JSON) and the judged checks."""

    metrics: dict[str, Any]
    checks: list[CheckResult]
    t_recovered: float | None

    @property
    def status(self) -> str:
        return combine(c.status for c in self.checks)

    def violations(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status != PASS]


def evaluate(
    history: History,
    slo: SLO,
    expected_churn: dict[str, str],
    hold_s: float = 5.0,
    t_recovered: float | None = None,
    extra_checks: Iterable[ExtraCheck] = (),
    recovery_from: float | None = None,
    extra_metrics: Iterable[ExtraMetric] = (),
    verify: ExtraCheck | None = None,
) -> Evaluation:
    """All metrics and SLO checks of a single-fault run.

    ``recovery_from`` (epoch s): for a fault with a duration (a partition), the
    time it ended; steady state is searched from then, and the recovery SLO
    applies to the time after the fault ended.
    """
    if not history.faults:
        return Evaluation({}, [CheckResult("fault.took_effect", FAIL, detail="no fault was injected")], None)
    fault = history.faults[0]
    t_fault = fault.t_inject
    reqs = history.judged_requests()
    t_search = recovery_from if recovery_from is not None else t_fault
    if t_recovered is None:
        t_recovered, not_steady = first_steady_state(history, t_search, hold_s, fault.victims)
    else:
        not_steady = ""
    recovery_s = None if t_recovered is None else t_recovered - t_fault
    recovery_after_end_s = None if t_recovered is None or recovery_from is None else t_recovered - recovery_from
    end_fault = t_recovered if t_recovered is not None else None

    windows = outage_windows(reqs)
    endpoints = sorted(reqs["endpoint"].unique()) if not reqs.empty else []
    per_endpoint: dict[str, Any] = {}
    for ep in endpoints:
        ep_df = reqs[reqs["endpoint"] == ep]
        ep_windows = [w for w in windows if w.endpoint == ep]
        longest = longest_outage(ep_windows)
        per_endpoint[ep] = {
            "requests": int(len(ep_df)),
            "failed": int((~ep_df["ok"]).sum()),
            "availability": availability(ep_df),
            "availability_before_fault": availability(ep_df, None, t_fault),
            "availability_during_fault": availability(ep_df, t_fault, end_fault),
            "availability_after_recovery": availability(ep_df, t_recovered) if t_recovered else None,
            "longest_outage_s": longest.duration if longest else 0.0,
            "longest_outage_closed": longest.closed if longest else True,
            "outage_windows": [asdict(w) for w in ep_windows],
            "first_success_s": first_success_after(ep_windows, t_fault),
            "failure_span_s": failure_span(ep_df, t_fault),
            "service_restored_s": service_restored_after(ep_windows, t_fault),
            "errors": error_classes(ep_df),
            "latency": latency_percentiles(ep_df),
            "latency_during_fault": latency_percentiles(ep_df, t_fault, end_fault),
        }
    before = snapshot_before(history, t_fault)
    if t_recovered is not None:
        after = snapshot_at_or_after(history, t_recovered)
    else:
        # Not recovered: the last picture before the load stopped and healing began.
        end = history.t_load_stop if history.t_load_stop is not None else float("inf")
        late = [s for s in history.snapshots if s.ok and s.t < end]
        after = late[-1] if late else None
    observed_churn = churn(before, after) if before and after else None
    effect = (verify or fault_effect)(history, fault)
    metrics: dict[str, Any] = {
        "t_fault": t_fault,
        "t_recovered": t_recovered,
        "recovery_s": recovery_s,
        "fault_duration_s": None if recovery_from is None else recovery_from - t_fault,
        "recovery_after_fault_end_s": recovery_after_end_s,
        "not_recovered_reason": not_steady if t_recovered is None else "",
        "fault_effect_s": effect.value if effect.status == PASS else None,
        "requests": int(len(reqs)),
        "failed": int((~reqs["ok"]).sum()) if not reqs.empty else 0,
        "availability": availability(reqs),
        "endpoints": per_endpoint,
        "churn": observed_churn,
        "victims": fault.victims,
    }

    primary = per_endpoint.get(slo.primary_endpoint, {})
    checks: list[CheckResult] = [effect]
    recovery_name = "recovery_s" if recovery_from is None else "recovery_after_fault_end_s"
    recovery_judged = recovery_s if recovery_from is None else recovery_after_end_s
    prefix = f"{slo.primary_endpoint}."
    candidates = [
        _min_check(prefix + "availability", primary.get("availability"), slo.min_availability),
        _min_check(prefix + "availability_during_fault", primary.get("availability_during_fault"),
                   slo.min_availability_during_fault),
        _min_check(prefix + "availability_after_recovery", primary.get("availability_after_recovery"),
                   slo.min_availability_after_recovery),
        _max_check(prefix + "longest_outage_s", primary.get("longest_outage_s") if primary else None,
                   slo.max_outage_s, "s", UNKNOWN),
        _max_check(prefix + "first_success_s", primary.get("first_success_s") if primary else None,
                   slo.max_first_success_s, "s", FAIL),
        _max_check(recovery_name, recovery_judged, slo.max_recovery_s, "s", FAIL),
        _max_check(prefix + "p99_ms", (primary.get("latency") or {}).get("p99_ms") if primary else None,
                   slo.max_p99_ms, "ms", UNKNOWN),
        _max_check(prefix + "failure_span_s", primary.get("failure_span_s") if primary else None,
                   slo.max_failure_span_s, "s", UNKNOWN),
    ]
    if slo.max_recovery_s is not None and recovery_judged is None:
        candidates[5] = CheckResult(recovery_name, FAIL, None, f"<= {slo.max_recovery_s} s", "s",
                                    f"no steady state before the deadline ({not_steady})")
    if primary.get("longest_outage_closed") is False and slo.max_outage_s is not None:
        candidates[3] = CheckResult(prefix + "longest_outage_s", FAIL, primary["longest_outage_s"],
                                    f"<= {slo.max_outage_s} s", "s", "outage still open when load stopped")
    checks += [c for c in candidates if c is not None]
    ep_roles = endpoint_roles(reqs)
    for scope, bound in slo.endpoint_availability.items():
        matched = [ep for ep in endpoints if in_scope(ep, ep_roles.get(ep), scope)]
        checks.append(_worst_min(f"{scope}.availability_during_fault", matched, per_endpoint,
                                 "availability_during_fault", bound, "no such endpoint in the load"))
    others = [ep for ep in endpoints if is_direct(ep) and not endpoint_hit(ep, ep_roles.get(ep), fault, history)]
    none_left = "no direct pod endpoint besides the victim's in the load"
    if slo.other_pods_max_outage_s is not None:
        checks.append(_worst_max("other_pods.longest_outage_s", others, per_endpoint, "longest_outage_s",
                                 slo.other_pods_max_outage_s, none_left))
    if slo.other_pods_min_availability_during_fault is not None:
        checks.append(_worst_min("other_pods.availability_during_fault", others, per_endpoint,
                                 "availability_during_fault", slo.other_pods_min_availability_during_fault, none_left))
    for role, expectation in expected_churn.items():
        checks.append(check_churn(role, expectation, observed_churn, fault.victims))
    for extra in extra_checks:
        try:
            checks.append(extra(history, fault))
        except Exception as err:  # noqa: BLE001 - a crashed check is "unknown", not a crash
            checks.append(CheckResult(getattr(extra, "__name__", "extra"), UNKNOWN,
                                      detail=f"check crashed: {type(err).__name__}: {err}"))
    if slo.max_fault_effect_s is not None:
        checks.append(_max_check("fault.effect_s", effect.value if effect.status == PASS else None,
                                 slo.max_fault_effect_s, "s", FAIL))
    extra: dict[str, Any] = {}
    for fn in extra_metrics:
        try:
            extra.update(fn(history, fault))
        except Exception as err:  # noqa: BLE001 - a broken metric must not hide the verdict
            extra[getattr(fn, "__name__", "metric")] = f"failed: {type(err).__name__}: {err}"
    metrics["extra"] = extra
    metrics["status_by_check"] = {c.name: c.status for c in checks}
    return Evaluation(metrics, checks, t_recovered)




# ---------------------------------------------------------------------- scenario-specific checks
def proxy_restarted_by_ray(history: History, fault: FaultRecord) -> CheckResult:
    """The guide: after ``ray.kill(proxy, no_restart=False)`` the *same* ProxyActor
    restarts with a new PID.  pass when that happens; fail when the node's proxy
    came back only as a different actor (or not at all)."""
    name = "proxy.restarted_by_ray"
    victim = next((v for v in fault.victims if v.get("role") == "proxy"), None)
    if victim is None:
        return CheckResult(name, UNKNOWN, detail="no proxy victim recorded")
    replaced_at: tuple[float, str] | None = None
    for snap in history.snapshots:
        if snap.t < fault.t_inject or not snap.actors_ok:
            continue
        for actor in snap.actors:
            if actor["role"] != "proxy" or actor.get("node_ip") != victim.get("node_ip"):
                continue
            if actor.get("actor_id") == victim.get("actor_id") and actor.get("pid") != victim.get("pid"):
                return CheckResult(name, PASS, round(snap.t - fault.t_inject, 2), unit="s",
                                   detail="same actor, new PID")
            if actor.get("actor_id") != victim.get("actor_id") and replaced_at is None:
                replaced_at = (snap.t, str(actor.get("actor_id")))
    if replaced_at is not None:
        return CheckResult(name, FAIL, None, "same actor restarts", "",
                           f"Ray did not restart the proxy actor; a new ProxyActor {replaced_at[1][:12]} "
                           f"replaced it {replaced_at[0] - fault.t_inject:.1f} s after the kill")
    return CheckResult(name, FAIL, None, "same actor restarts", "", "no proxy came back on that node")


# ---------------------------------------------------------------------- scenario metrics
def _after(history: History, fault: FaultRecord) -> list[Snapshot]:
    return [s for s in history.snapshots if s.t >= fault.t_inject]


def ray_node_death(history: History, fault: FaultRecord) -> dict[str, Any]:
    """Seconds from the fault until the State API lists the victim's Ray node(s) DEAD."""
    ids = list(fault.params.get("ray_node_ids") or [])
    dead_at: dict[str, float] = {}
    for snap in _after(history, fault):
        if not snap.nodes_ok:
            continue
        for node in snap.nodes:
            if node["node_id"] in ids and node.get("state") == "DEAD" and node["node_id"] not in dead_at:
                dead_at[node["node_id"]] = snap.t
    declared = len(dead_at) == len(ids) and bool(ids)
    return {"ray_node_ids": ids,
            "ray_node_dead_s": (max(dead_at.values()) - fault.t_inject) if declared else None}


def dashboard_downtime(history: History, fault: FaultRecord) -> dict[str, Any]:
    """How long the dashboard (GCS-backed APIs on the head) did not answer after the fault (s)."""
    down_from = None
    for snap in _after(history, fault):
        if not snap.serve_ok and down_from is None:
            down_from = snap.t
        elif snap.serve_ok and down_from is not None:
            return {"dashboard_down_s": snap.t - fault.t_inject, "dashboard_first_failure_s": down_from - fault.t_inject}
    if down_from is None:
        return {"dashboard_down_s": 0.0}
    return {"dashboard_down_s": None, "dashboard_first_failure_s": down_from - fault.t_inject}


def replicas_by_pod(snap: Snapshot) -> dict[str, int]:
    out: dict[str, int] = {}
    for actor in snap.actors:
        if actor["role"] == "replica" and actor.get("state") == "RUNNING":
            out[actor.get("pod") or "?"] = out.get(actor.get("pod") or "?", 0) + 1
    return dict(sorted(out.items()))


def replica_spread(history: History, fault: FaultRecord) -> dict[str, Any]:
    """Replicas per pod before the fault and at the end, what the fault cost and the floor reached."""
    before = snapshot_before(history, fault.t_inject)
    good = [s for s in history.snapshots if s.ok and (history.t_load_stop is None or s.t < history.t_load_stop)]
    after = good[-1] if good else None
    victim_ids = {v.get("actor_id") for v in fault.victims if v.get("role") == "replica"}
    floor = None
    for snap in _after(history, fault):
        if not snap.ok:
            continue
        alive = sum(1 for a in snap.actors if a["role"] == "replica" and a.get("state") == "RUNNING"
                    and a.get("actor_id") not in victim_ids)
        floor = alive if floor is None else min(floor, alive)
    return {
        "replicas_per_pod_before": replicas_by_pod(before) if before else None,
        "replicas_per_pod_after": replicas_by_pod(after) if after else None,
        "replicas_lost_with_fault": len(victim_ids),
        "min_running_replicas_during_fault": floor,
    }


def recreated_pods(history: History, fault: FaultRecord) -> dict[str, Any]:
    """What became of each pod the fault deleted: its new incarnation, node, replicas, proxy, readiness."""
    victims = {v["name"]: v for v in fault.victims if v.get("role") == "pod"}
    good = [s for s in history.snapshots if s.ok and s.pods_ok and (history.t_load_stop is None or s.t < history.t_load_stop)]
    if not good or not victims:
        return {"recreated_pods": {}}
    last = good[-1]
    out = {}
    for pod in last.pods:
        if pod["name"] not in victims:
            continue
        out[pod["name"]] = {
            "recreated": pod.get("uid") != victims[pod["name"]].get("uid"),
            "node": pod.get("node"),
            "ready": pod.get("ready"),
            "replicas": sum(1 for a in last.actors if a["role"] == "replica" and a.get("pod") == pod["name"]),
            "proxy": any(a["role"] == "proxy" for a in last.actors if a.get("pod") == pod["name"]),
        }
    return {"recreated_pods": out}


def strict_spread(history: History, fault: FaultRecord) -> CheckResult:
    """``max_replicas_per_node=1`` promise: before the fault no node hosted two replicas."""
    before = snapshot_before(history, fault.t_inject)
    if before is None:
        return CheckResult("spread.max_replicas_per_pod", UNKNOWN, detail="no probe before the fault")
    per_pod = replicas_by_pod(before)
    worst = max(per_pod.values(), default=0)
    return CheckResult("spread.max_replicas_per_pod", PASS if worst <= 1 else FAIL, worst, "<= 1", "",
                       "" if worst <= 1 else f"replicas per pod: {per_pod}")


def capacity_floor(history: History, fault: FaultRecord) -> CheckResult:
    """Losing a node costs at most the replicas on it: RUNNING replicas other than the
    victims never dropped below the desired count minus the victims."""
    spread = replica_spread(history, fault)
    floor = spread["min_running_replicas_during_fault"]
    bound = history.desired_replicas - spread["replicas_lost_with_fault"]
    if floor is None:
        return CheckResult("capacity.min_running_replicas", UNKNOWN, detail="no usable probe after the fault")
    return CheckResult("capacity.min_running_replicas", PASS if floor >= bound else FAIL, floor, f">= {bound}", "",
                       "" if floor >= bound else "the fault cost more replicas than the lost node hosted")


def serve_when_ready(history: History, fault: FaultRecord) -> CheckResult:
    """A pod that comes back into the front door's rotation must serve what it is sent.

    For every direct pod endpoint in the load: once the pod was seen not ready
    after the fault and then ready again, requests sent to it while it stayed
    ready must succeed.  Catches proxies that pass ``/-/healthz`` before they
    can route (their requests hang or get 404).
    """
    name = "pods.serve_when_ready"
    reqs = history.judged_requests()
    direct = sorted({e for e in reqs["endpoint"].unique() if is_direct(e)}) if not reqs.empty else []
    if not direct:
        return CheckResult(name, UNKNOWN, detail="no direct pod endpoint in the load")
    snaps = [s for s in history.snapshots if s.t >= fault.t_inject and s.pods_ok]
    bad: list[str] = []
    total = 0
    for endpoint in direct:
        kind, _, pod = endpoint.partition(":")
        seen_down = False
        start = None
        windows = []
        last_ready_t = None
        for snap in snaps:
            if kind == "role":
                ready = any(p.get("role") == pod and p.get("ready") and p.get("phase") == "Running" for p in snap.pods)
            else:
                ready = any(p.get("name") == pod and p.get("ready") for p in snap.pods)
            if not ready:
                if start is not None:
                    windows.append((start, last_ready_t))
                    start = None
                seen_down = True
            else:
                last_ready_t = snap.t
                if seen_down and start is None:
                    start = snap.t
        if start is not None:
            windows.append((start, last_ready_t))
        ep = reqs[reqs["endpoint"] == endpoint]
        for t0, t1 in windows:
            failed = ep[(ep["t"] >= t0) & (ep["t"] <= t1) & (~ep["ok"])]
            if len(failed):
                total += len(failed)
                errors = ",".join(sorted(set(failed["error"].fillna("?"))))
                bad.append(f"{pod}: {len(failed)} {errors} from {failed['t'].min() - fault.t_inject:.1f} s "
                           f"to {failed['t'].max() - fault.t_inject:.1f} s after the fault while ready")
    if bad:
        return CheckResult(name, FAIL, total, "0 failed", "", "; ".join(bad))
    return CheckResult(name, PASS, 0, "0 failed")


def partition_effect(history: History, fault: FaultRecord) -> CheckResult:
    """A partition took effect when its pod stopped answering: its direct requests
    failed, or the front door's readiness check dropped it, while it lasted."""
    name = "fault.took_effect"
    pod = fault.params.get("pod")
    end = fault.t_heal if fault.t_heal is not None else float("inf")
    reqs = history.judged_requests()
    if not reqs.empty:
        direct = reqs[(reqs["endpoint"] == f"pod:{pod}") & (reqs["t"] >= fault.t_inject) & (reqs["t"] < end)]
        if len(direct) and (~direct["ok"]).any():
            first = float(direct.loc[~direct["ok"], "t"].min())
            return CheckResult(name, PASS, round(first - fault.t_inject, 3), unit="s",
                               detail=f"requests straight to {pod} failed")
    for snap in history.snapshots:
        if fault.t_inject <= snap.t < end and snap.pods_ok:
            if any(p.get("name") == pod and not p.get("ready") for p in snap.pods):
                return CheckResult(name, PASS, round(snap.t - fault.t_inject, 3), unit="s",
                                   detail=f"{pod} left the front door's rotation")
    return CheckResult(name, FAIL, detail=f"{pod} kept answering and stayed ready: the partition changed nothing")
