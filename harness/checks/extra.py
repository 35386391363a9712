"""Checks and measurements beyond the SLO table: did the fault happen, and what scenarios look at
in particular (a proxy restarted by Ray, a node declared dead, spreading, pods serving when ready)."""

from __future__ import annotations

from typing import Any

from serve_chaos.harness.checks.endpoints import aimed_at_pod, is_direct, pod_behind, target_pods, victim_incarnations
from serve_chaos.harness.checks.identity import victim_present, victims_observable
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.checks.steady import snapshot_before
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot


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
    good = [s for s in history.snapshots if s.ok and (history.t_data_end is None or s.t < history.t_data_end)]
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
    good = [s for s in history.snapshots if s.ok and s.pods_ok and (history.t_data_end is None or s.t < history.t_data_end)]
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
    bound = history.desired_at(fault.t_inject) - spread["replicas_lost_with_fault"]
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
    for endpoint, pod, ready_in, sent in _direct_targets(reqs, direct, fault):
        seen_down = False
        start = None
        windows = []
        last_ready_t = None
        for snap in snaps:
            if not ready_in(snap):
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
        for t0, t1 in windows:
            failed = sent[(sent["t"] >= t0) & (sent["t"] <= t1) & (~sent["ok"])]
            if len(failed):
                total += len(failed)
                errors = ",".join(sorted(set(failed["error"].fillna("?"))))
                bad.append(f"{pod}: {len(failed)} {errors} from {failed['t'].min() - fault.t_inject:.1f} s "
                           f"to {failed['t'].max() - fault.t_inject:.1f} s after the fault while ready")
    if bad:
        return CheckResult(name, FAIL, total, "0 failed", "", "; ".join(bad))
    return CheckResult(name, PASS, 0, "0 failed")


def _direct_targets(reqs: Any, direct: list[str], fault: FaultRecord) -> list[tuple[str, str, Any, Any]]:
    """``(endpoint, pod or role, is-ready-in-snapshot, its requests)`` per direct endpoint: a
    ``role:`` endpoint is the role's current pod; a slot is each pod it aimed at after the fault
    (a recreated pod on Kubernetes has a new name), without the requests it aimed at an
    incarnation the fault took away (a recreated pod keeps its name locally)."""
    t_fault = fault.t_inject
    out = []
    for endpoint in direct:
        ep = reqs[reqs["endpoint"] == endpoint]
        kind, _, rest = endpoint.partition(":")
        if kind == "role":
            out.append((endpoint, rest, lambda snap, role=rest: any(
                p.get("role") == role and p.get("ready") and p.get("phase") == "Running" for p in snap.pods), ep))
            continue
        aimed = target_pods(ep)
        pods = list(dict.fromkeys(aimed[ep["t"] >= t_fault].dropna())) or [pod_behind(reqs, endpoint, t_fault)]
        for pod in [p for p in pods if p]:
            out.append((endpoint, pod, lambda snap, name=pod: any(
                p.get("name") == name and p.get("ready") for p in snap.pods),
                ep[(aimed == pod) & ~ep["incarnation"].isin(victim_incarnations(fault.victims))]))
    return out


def partition_effect(history: History, fault: FaultRecord) -> CheckResult:
    """A partition took effect when its pod stopped answering: its direct requests
    failed, or the front door's readiness check dropped it, while it lasted."""
    name = "fault.took_effect"
    pod = fault.params.get("pod")
    end = fault.t_heal if fault.t_heal is not None else float("inf")
    reqs = history.judged_requests()
    if not reqs.empty:
        direct = reqs[aimed_at_pod(reqs, pod) & (reqs["t"] >= fault.t_inject) & (reqs["t"] < end)]
        if len(direct) and (~direct["ok"]).any():
            first = float(direct.loc[~direct["ok"], "t"].min())
            return CheckResult(name, PASS, round(first - fault.t_inject, 3), unit="s",
                               detail=f"requests straight to {pod} failed")
    dropped = front_door_drop(history, fault)["front_door_drop_s"]
    if dropped is not None:
        return CheckResult(name, PASS, dropped, unit="s", detail=f"{pod} left the front door's rotation")
    return CheckResult(name, FAIL, detail=f"{pod} kept answering and stayed ready: the partition changed nothing")


def front_door_drop(history: History, fault: FaultRecord) -> dict[str, Any]:
    """Seconds from the fault until a probe shows the front door no longer routes to the
    pod it cut off (that pod not ready); None while it never did."""
    pod = fault.params.get("pod")
    for snap in history.snapshots_in_effect(fault):
        if snap.pods_ok and any(p.get("name") == pod and not p.get("ready") for p in snap.pods):
            return {"front_door_drop_s": round(snap.t - fault.t_inject, 3)}
    return {"front_door_drop_s": None}


def failures_after_fault(history: History, fault: FaultRecord, window_s: float = 30.0) -> dict[str, Any]:
    """What the requests that failed in the ``window_s`` seconds after the fault met: how
    many, by error class and HTTP status, how long after the fault the last one was
    sent (s), and how many the logs tie to a victim replica (a call in flight on it)."""
    reqs = history.judged_requests()
    if reqs.empty:
        return {"failed": 0}
    near = reqs[(reqs["t"] >= fault.t_inject - history.load_timeout_s) & (reqs["t"] <= fault.t_inject + window_s)]
    failed = near[~near["ok"]]
    victims = {v.get("replica_id") for v in fault.victims if v.get("replica_id")}
    on_victim = 0
    if "downstream" in failed and victims:
        on_victim = int(sum(bool(set(str(d).split(",")) & victims) or r in victims
                            for d, r in zip(failed["downstream"].fillna(""), failed["replica"])))
    statuses = failed["status"].dropna().astype(int).value_counts().to_dict() if not failed.empty else {}
    return {"failed": int(len(failed)),
            "errors": {str(k): int(v) for k, v in failed["error"].fillna("none").value_counts().items()},
            "statuses": {str(k): int(v) for k, v in statuses.items()},
            "last_failure_after_fault_s": round(float(failed["t"].max()) - fault.t_inject, 2) if len(failed) else None,
            "tied_to_victim_in_logs": on_victim}
