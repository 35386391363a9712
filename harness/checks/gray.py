"""Checks and measurements of gray failures: latency before and during, where the traffic went,
what was killed and by whom, and whether Ray or Serve noticed.

Gray failures are mostly latency: every figure here compares the fault's window with the
same endpoint before the fault.  Lift reports (``serve_chaos.harness.faults.gray.lifted``) are what the
target measured of the fault itself (throttling, drops, OOM kills).
"""

from __future__ import annotations

import math
from typing import Any

from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.checks.steady import snapshot_before
from serve_chaos.harness.checks.timeline import between, latency_percentiles
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.load.servedby import served


def _lift(fault: FaultRecord) -> dict[str, Any]:
    for action in reversed(fault.heal_actions):
        if str(action.get("action", "")).startswith("lift_"):
            return dict(action.get("details") or {})
    return {}


def _fault_end(fault: FaultRecord) -> float:
    return fault.t_heal if fault.t_heal is not None else fault.t_inject + float(fault.params.get("duration_s") or 0)


def latency_shift(history: History, fault: FaultRecord) -> dict[str, Any]:
    """Per endpoint: latency percentiles (ms, successful requests) over the 30 s before the fault
    and while it lasted, and the share of requests slower than 1 s during it."""
    reqs = history.judged_requests()
    out: dict[str, Any] = {}
    if reqs.empty:
        return {"latency_shift": out}
    end = _fault_end(fault)
    for endpoint, df in reqs.groupby("endpoint"):
        before = latency_percentiles(df, fault.t_inject - 30.0, fault.t_inject)
        during = latency_percentiles(df, fault.t_inject, end)
        window = between(df, fault.t_inject, end)
        slow = float((window["latency_ms"].astype(float) > 1000).mean()) if not window.empty else None
        out[str(endpoint)] = {"before": before, "during": during, "over_1s_during": slow}
    return {"latency_shift": out}


def replicas_on_pod_fate(history: History, fault: FaultRecord) -> dict[str, Any]:
    """The replicas on the faulted pod: which left while the fault lasted or after it (s after the
    fault), i.e. whether Serve's health checks (or anything else) replaced them."""
    on_pod = fault.params.get("replicas_on_pod") or []
    left: dict[str, float] = {}
    end = history.t_data_end if history.t_data_end is not None else float("inf")
    for snap in history.snapshots:
        if snap.t < fault.t_inject or snap.t >= end or not snap.actors_ok:
            continue
        alive = {a.get("actor_id") for a in snap.actors}
        for victim in on_pod:
            if victim.get("actor_id") not in alive and victim.get("replica_id") not in left:
                left[str(victim.get("replica_id"))] = round(snap.t - fault.t_inject, 2)
    return {"replicas_on_pod": len(on_pod), "replicas_replaced": left,
            "fault_lasted_s": round(_fault_end(fault) - fault.t_inject, 2)}


def ray_node_stayed_alive(history: History, fault: FaultRecord) -> CheckResult:
    """The pod's Ray node never went DEAD (its raylet survived): Ray's "Out-Of-Memory Prevention"
    promises the memory monitor kills workers before the kernel kills the raylet."""
    name = "ray_node.stayed_alive"
    ids = set(fault.params.get("ray_node_ids") or [])
    if not ids:
        return CheckResult(name, UNKNOWN, detail="the pod's Ray node was not known before the fault")
    end = history.t_data_end if history.t_data_end is not None else float("inf")
    seen = False
    for snap in history.snapshots:
        if snap.t < fault.t_inject or snap.t >= end or not snap.nodes_ok:
            continue
        for node in snap.nodes:
            if node["node_id"] in ids:
                seen = True
                if node.get("state") == "DEAD":
                    return CheckResult(name, FAIL, round(snap.t - fault.t_inject, 2), "never DEAD", "s",
                                       f"the pod's Ray node was DEAD {snap.t - fault.t_inject:.1f} s after the fault")
    if not seen:
        return CheckResult(name, UNKNOWN, detail="no probe listed the pod's Ray node")
    return CheckResult(name, PASS, None, "never DEAD")


def memory_kills(history: History, fault: FaultRecord) -> dict[str, Any]:
    """What the memory pressure killed and by whom: Ray's memory monitor (the raylet's kill
    log) and the kernel's OOM killer in the pod's cgroup; the hog's own end."""
    lift = _lift(fault)
    replicas = {str(v.get("name")): v.get("replica_id") for v in fault.params.get("replicas_on_pod") or []}

    def who(task: str) -> str:
        # A task name is "<actor name>:<class>.__init__"; a replica's class holds ':' itself.
        name = task.split(":ServeReplica", 1)[0]
        if name in replicas:
            return f"replica {replicas[name]}"
        if name.startswith("SERVE_REPLICA::"):
            return f"replica {name.rsplit('#', 1)[-1]} (not on the pod at the fault)"
        if name.startswith("SERVE_PROXY_ACTOR"):
            return "the pod's Serve proxy"
        return task.split(".", 1)[0] or "a Ray worker"

    kernel = lift.get("kernel_oom_killed") or []
    hog_pid = lift.get("hog_pid")
    by_monitor = [who(k.get("task") or "") for k in lift.get("ray_memory_monitor_killed") or []]
    # A replica of the pod that left while pressed but that no killer's log names: said, never
    # guessed (a health check may have replaced it, or a kill log could not be read).
    left = replicas_on_pod_fate(history, fault)["replicas_replaced"]
    unnamed = sorted(rid for rid in left if f"replica {rid}" not in by_monitor)
    return {"killed": {
        "by_ray_memory_monitor": by_monitor,
        "by_kernel_oom_killer": ["the hog" if k.get("pid") == hog_pid else f"{k.get('name')} (pid {k.get('pid')})"
                                 for k in kernel],
        "replicas_left_unnamed": [f"replica {rid}" for rid in unnamed],
        "hog": lift.get("hog_end"),
        "hog_peak_mib": round((lift.get("hog_peak_bytes") or 0) / 2**20),
        "pod_peak_of_limit": round((lift.get("max_usage_bytes") or 0) / lift["limit_bytes"], 3)
        if lift.get("limit_bytes") else None,
    }}


def served_share(df: Any, replica_id: str, start: float, end: float) -> tuple[float | None, int]:
    window = between(df, start, end)
    by = served(window).dropna() if not window.empty else window
    if len(by) == 0:
        return None, 0
    return float((by == replica_id).mean()), int(len(by))


def slow_replica_share(history: History, fault: FaultRecord) -> dict[str, Any]:
    """The share of attributed requests the slowed replica served in the 30 s before the fault
    and while it lasted (Serve's logs)."""
    replica = (fault.params.get("replica") or {}).get("replica_id")
    reqs = history.judged_requests()
    if not replica or reqs.empty:
        return {"slow_replica": None}
    before, n_before = served_share(reqs, replica, fault.t_inject - 30.0, fault.t_inject)
    during, n_during = served_share(reqs, replica, fault.t_inject, _fault_end(fault))
    return {"slow_replica": {"replica_id": replica, "share_before": before, "share_during": during,
                             "attributed_before": n_before, "attributed_during": n_during}}


def traffic_shifted_away(history: History, fault: FaultRecord) -> CheckResult:
    """Serve's router prefers replicas with fewer requests in flight ("power of two choices"):
    while slow, the replica must get clearly less than its fair share (one over the replicas of
    its deployment): significantly, at the 1 % level of a one-sided binomial z-test, so an even
    split that happens to come out low by chance does not count as a shift."""
    name = "router.shifted_away_from_slow_replica"
    shares = slow_replica_share(history, fault)["slow_replica"]
    replica = fault.params.get("replica") or {}
    before_snap = snapshot_before(history, fault.t_inject)
    if not shares or shares["share_during"] is None or before_snap is None:
        return CheckResult(name, UNKNOWN, detail="not enough requests attributed by Serve's logs")
    peers = sum(1 for a in before_snap.actors if a["role"] == "replica" and a.get("state") == "RUNNING"
                and (a.get("app"), a.get("deployment")) == (replica.get("app"), replica.get("deployment")))
    fair, during, n = 1.0 / max(peers, 1), shares["share_during"], shares["attributed_during"]
    z = (during - fair) / math.sqrt(fair * (1 - fair) / n) if n and 0 < fair < 1 else 0.0
    before = "n/a" if shares["share_before"] is None else f"{shares['share_before']:.1%}"
    return CheckResult(name, PASS if z < -2.33 else FAIL, round(during, 4), f"< {fair:.4f} (fair share, z < -2.33)",
                       "", f"the slow replica served {during:.1%} of {n} requests while slow (fair share "
                           f"{fair:.1%}, z = {z:.1f}); {before} of {shares['attributed_before']} before")
