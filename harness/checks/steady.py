"""Steady state: when the cluster looks like it did before any fault.

It holds at ``t`` when, over ``[t, t + hold_s]``: every probe answered; as many Ray pods run as
before the first fault (a lost or deleted pod is back); the desired number of replicas is
RUNNING as one unchanging set of replicas;
exactly one Serve controller is alive; every node with a replica has a HEALTHY
proxy; no victim of the fault is still present; no request failed; and every
proxy that served traffic reached the replicas it should (its node's replicas if
it has any -- Serve prefers local replicas -- else all) and no replica outside
the RUNNING set.  **Recovery time** = first steady state at or after the fault,
minus the fault time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from serve_chaos.harness.checks.endpoints import aimed_at_victims, vacated_until
from serve_chaos.harness.checks.identity import CONFIG, replica_keys, victim_present
from serve_chaos.harness.observe.history import History, ray_pods_running
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.harness.load.servedby import served

#: A proxy must have served this many successes per replica it should reach in a window
#: before we judge what it reached.
MIN_REQUESTS_FOR_REACH = 10


@dataclass
class SteadyState:
    """Why steady state does or does not hold over a window."""

    holds: bool
    reason: str = ""


def proxy_reach_problems(snap: Snapshot, ok_requests: pd.DataFrame) -> list[str]:
    """What proxies failed to reach, judged from successful requests grouped by serving pod.

    Who served a request comes from Serve's logs (``serve_chaos.harness.load.servedby``), or from a
    PID the app returns; requests nobody is known to have served are not judged.
    Only ingress replicas are expected to be reached (downstream ones are called by them).
    Where Ray does not say which deployment is the ingress (before 2.60), the deployments
    whose replicas served requests are.
    """
    problems: list[str] = []
    if ok_requests.empty:
        return problems
    frame = ok_requests.assign(_by=served(ok_requests)).dropna(subset=["_by"])
    replicas = [a for a in snap.actors if a["role"] == "replica"]
    serving = {(a.get("app"), a.get("deployment")) for a in replicas if a.get("replica_id") in set(frame["_by"])}


    def receives_http(replica: dict[str, Any]) -> bool:
        flag = replica.get("ingress", True)
        return flag if flag is not None else (replica.get("app"), replica.get("deployment")) in serving

    running = {a.get("replica_id"): a.get("pod") for a in replicas
               if a.get("replica_id") and a.get("state") == "RUNNING" and receives_http(a)}
    if not running:
        return problems
    apps = {a.get("replica_id"): a.get("app") for a in replicas}
    frame = frame.assign(_app=[apps.get(r, "?") for r in frame["_by"]])
    for (pod, app), group in frame.groupby(["pod", "_app"]):
        if not pod or len(group) < MIN_REQUESTS_FOR_REACH:
            continue
        seen = set(group["_by"])
        stale = seen - set(running)
        if stale:
            problems.append(f"proxy on {pod} answered from replicas not RUNNING: {', '.join(sorted(stale))}")
        of_app = {r: rpod for r, rpod in running.items() if apps.get(r) == app}
        local = {r for r, rpod in of_app.items() if rpod == pod}
        expected = local or set(of_app)
        # Enough requests that missing a replica is not chance (several apps split the traffic).
        if len(group) < MIN_REQUESTS_FOR_REACH * len(expected):
            continue
        missing = expected - seen
        if missing:
            problems.append(f"proxy on {pod} did not reach replicas {', '.join(sorted(missing))}")
    return problems


def victim_text(victim: dict[str, Any]) -> str:
    """A victim as people read it."""
    if victim.get("role") == CONFIG:
        return f"the old {victim.get('option')} of {victim.get('app')}/{victim.get('deployment')}"
    return (f"victim {victim.get('role')} {victim.get('name') or victim.get('pid')} "
            f"on {victim.get('pod') or victim.get('node') or '?'}")


def victims_text(present: list[dict[str, Any]], victims: list[dict[str, Any]]) -> str:
    """What of the fault is still there.  After an operator's change that replaces replicas
    (a config victim next to replica victims) the replicas left are the ones not yet on the
    new version: said so, with how many of them, rather than one of them by name."""
    changed = any(v.get("role") == CONFIG for v in victims)
    # (A compound fault may name one replica twice: once per fault.)
    old = list({v.get("actor_id") or id(v): v for v in present if v.get("role") == "replica"
                and (v.get("replaced_by_change") or not any(x.get("replaced_by_change") for x in victims))}.values())
    if changed and old:
        of = len({v.get("actor_id") or id(v) for v in victims if v.get("role") == "replica"
                  and (v.get("replaced_by_change") or not any(x.get("replaced_by_change") for x in victims))})
        where = sorted({str(v.get("pod") or v.get("node_ip")) for v in old if v.get("pod") or v.get("node_ip")})
        return (f"{len(old)} of {of} replicas not yet on the new version (old replicas still alive"
                + (f" on {', '.join(where)})" if where else ")"))
    text = victim_text(present[0]) + " still present"
    return text if len(present) == 1 else f"{text} (and {len(present) - 1} more victims)"


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
    want = history.desired_at(t0)
    want_pods = history.ray_pods_before_faults()
    pid_sets = set()
    for snap in window:
        if not snap.ok:
            return SteadyState(False, f"dashboard not answering at {snap.t:.1f} ({', '.join(snap.errors) or 'no data'})")
        if want_pods and snap.pods_ok and ray_pods_running(snap) < want_pods:
            return SteadyState(False, f"{ray_pods_running(snap)}/{want_pods} Ray pods Running")
        if want and snap.replicas_running != want:
            return SteadyState(False, f"{snap.replicas_running}/{want} replicas RUNNING")
        keys = replica_keys(snap)
        if want and len(keys) != want:
            return SteadyState(False, f"{len(keys)}/{want} RUNNING replicas alive in Ray")
        others = len(replica_keys(snap, running_only=False)) - len(keys)
        if others:
            # A stopping replica still holds requests (graceful shutdown): not done yet.
            return SteadyState(False, f"{others} replicas alive besides the RUNNING ones (stopping or starting)")
        pid_sets.add(keys)
        controllers = sum(1 for a in snap.actors if a["role"] == "controller")
        if controllers != 1:
            return SteadyState(False, f"{controllers} Serve controllers alive")
        replica_nodes = {a.get("node_ip") for a in snap.actors if a["role"] == "replica" and a.get("state") == "RUNNING"}
        proxy_nodes = {a.get("node_ip") for a in snap.actors if a["role"] == "proxy" and a.get("state") == "HEALTHY"}
        if replica_nodes - proxy_nodes:
            return SteadyState(False, f"no HEALTHY proxy on node(s) {sorted(map(str, replica_nodes - proxy_nodes))}")
        present = [v for v in victims if victim_present(snap, v)]
        if present:
            return SteadyState(False, victims_text(present, victims))
    if len(pid_sets) != 1:
        return SteadyState(False, "replicas changing")
    df = history.judged_requests() if reqs is None else reqs
    if not df.empty:
        in_window = df[(df["t"] >= t0) & (df["t"] <= t1)]
        # A request aimed at a pod the fault took away says nothing about the cluster; its
        # slot is judged again once it aims at the pod that came back (serve_chaos.harness.load.slots).
        in_window = in_window[~aimed_at_victims(in_window, victims)]
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
    gone = vacated_until(history, victims)
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
