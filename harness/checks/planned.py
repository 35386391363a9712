"""Checks and measurements of planned disruptions: rollouts, scale-downs and node drains.

A rollout's old replicas are the fault's replica victims; its new replicas are those of the
changed deployments that appear after the change.  Everything here reads the probes (which
replicas, in which Serve state, when) and Serve's logs (who served a request), never the app.
"""

from __future__ import annotations

from typing import Any

from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.checks.steady import snapshot_before
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.harness.load.servedby import served

#: Serve replica states (``ReplicaState``) in which a replica takes requests.
#: Replica states that still take requests.  RECOVERING: a restarted controller re-attaches the
#: replicas it finds alive (Ray 2.60 ``deployment_state.py``
#: ``recover_current_state_from_replica_actor_names``); they kept serving all along, the routers
#: holding their last replica set while the controller was away (measured: 0 failed through a
#: controller restart mid-rollout, 3 of 6 shown RECOVERING).
SERVING_STATES = ("RUNNING", "PENDING_MIGRATION", "UPDATING", "RECOVERING")


def _changed(fault: FaultRecord) -> set[tuple[str, str]]:
    return {(c["app"], c["deployment"]) for c in fault.params.get("changes") or []}


def _during(history: History, fault: FaultRecord) -> list[Snapshot]:
    end = history.t_data_end if history.t_data_end is not None else float("inf")
    return [s for s in history.snapshots if fault.t_inject <= s.t < end and s.ok]


def _replicas(snap: Snapshot, deployments: set[tuple[str, str]]) -> list[dict[str, Any]]:
    return [a for a in snap.actors if a["role"] == "replica" and (a.get("app"), a.get("deployment")) in deployments]


def _old_ids(fault: FaultRecord) -> set[str]:
    return {v["actor_id"] for v in fault.victims if v.get("role") == "replica" and v.get("actor_id")}


def rollout_replaced_once(history: History, fault: FaultRecord) -> CheckResult:
    """Every old replica is replaced exactly once: no replica of the new version started during
    the rollout and then went away again (a replacement that failed and was replaced)."""
    name = "rollout.replaced_once"
    snaps = _during(history, fault)
    if not snaps:
        return CheckResult(name, UNKNOWN, detail="no usable probe after the change")
    old, changed = _old_ids(fault), _changed(fault)
    seen: dict[str, float] = {}
    for snap in snaps:
        for actor in _replicas(snap, changed):
            if actor.get("actor_id") not in old:
                seen.setdefault(actor["actor_id"], snap.t)
    final = {a["actor_id"] for a in _replicas(snaps[-1], changed)}
    gone = sorted(set(seen) - final)
    extra = len(seen) - len(old)
    if gone or extra > 0:
        return CheckResult(name, FAIL, len(seen), f"== {len(old)} new replicas", "",
                           f"{len(seen)} new replicas started for {len(old)} old ones"
                           + (f"; gone again: {', '.join(g[:12] for g in gone)}" if gone else ""))
    return CheckResult(name, PASS, len(seen), f"== {len(old)} new replicas")


def rollout_capacity(history: History, fault: FaultRecord) -> CheckResult:
    """Capacity during the rollout: the serving replicas of each changed deployment never drop
    below its target minus one batch (Ray 2.60 ``deployment_state.py``: at most ``max(int(0.2 *
    target), 1)`` old replicas stop at a time, before their replacements start).  The detail names
    the probe of the fewest (s after the change) and the replica states Serve reported there."""
    name = "rollout.capacity"
    rollout = fault.params.get("rollout") or {}
    snaps = _during(history, fault)
    if not snaps or not rollout:
        return CheckResult(name, UNKNOWN, detail="no usable probe after the change")
    old = _old_ids(fault)
    worst: tuple[int, int, str, Snapshot] | None = None
    for key, info in rollout.items():
        app, _, dep = key.partition("/")
        floor = int(info["target"]) - int(info["batch"])
        snap = min(snaps, key=lambda s: _serving(_replicas(s, {(app, dep)})))
        low = _serving(_replicas(snap, {(app, dep)}))
        if worst is None or low - floor < worst[0] - worst[1]:
            worst = (low, floor, key, snap)
    assert worst is not None
    low, floor, key, snap = worst
    app, _, dep = key.partition("/")
    where = (f" (fewest {snap.t - fault.t_inject:.1f} s after the change: "
             f"{_state_counts(_replicas(snap, {(app, dep)}), old)})" if low < floor else "")
    return CheckResult(name, PASS if low >= floor else FAIL, low, f">= {floor}", "",
                       f"{key}: at least {low} replicas serving during the rollout{where}")


def _serving(replicas: list[dict[str, Any]]) -> int:
    return sum(a.get("state") in SERVING_STATES for a in replicas)


def _state_counts(replicas: list[dict[str, Any]], old: set[str]) -> str:
    """'old RUNNING 3, new STARTING 1, ...': the replicas of one probe by version and state."""
    counts: dict[str, int] = {}
    for a in replicas:
        label = f"{'old' if a.get('actor_id') in old else 'new'} {a.get('state')}"
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items())) or "no replica listed"


def rollout_metrics(history: History, fault: FaultRecord) -> dict[str, Any]:
    """How the rollout went: how long (s) until every old replica was gone, the most old
    replicas out of service at once (the batch Serve used), the fewest serving."""
    snaps = _during(history, fault)
    old, changed = _old_ids(fault), _changed(fault)
    if not snaps:
        return {"rollout": None}
    done_at = next((s.t for s in snaps if not any(a.get("actor_id") in old for a in _replicas(s, changed))), None)
    stopping = max(sum(a.get("actor_id") in old and a.get("state") not in SERVING_STATES
                       for a in _replicas(s, changed)) for s in snaps)
    absent_or_stopping = max(len(old) - sum(a.get("actor_id") in old and a.get("state") in SERVING_STATES
                                            for a in _replicas(s, changed)) - sum(
        a.get("actor_id") not in old and a.get("state") in SERVING_STATES for a in _replicas(s, changed))
        for s in snaps)
    return {"rollout": {"old_replicas": len(old),
                        "old_gone_s": round(done_at - fault.t_inject, 2) if done_at else None,
                        "most_old_stopping_at_once": stopping,
                        "most_capacity_missing": max(0, absent_or_stopping),
                        "batches": fault.params.get("rollout")}}


def served_only_by_new(history: History, fault: FaultRecord) -> CheckResult:
    """After the rollout completed, Serve's logs show only new replicas answering."""
    name = "rollout.only_new_serve"
    if fault.t_recovered_observed is None:
        return CheckResult(name, UNKNOWN, detail="the rollout never completed")
    reqs = history.judged_requests()
    end = history.t_data_end if history.t_data_end is not None else float("inf")
    after = reqs[(reqs["t"] >= fault.t_recovered_observed) & (reqs["t"] < end) & reqs["ok"]] if not reqs.empty else reqs
    by = served(after).dropna() if not after.empty else after
    if len(by) == 0:
        return CheckResult(name, UNKNOWN, detail="no request after the rollout was attributed to a replica")
    old = {v.get("replica_id") for v in fault.victims if v.get("role") == "replica"} - {None}
    stale = int(by.isin(old).sum())
    return CheckResult(name, PASS if stale == 0 else FAIL, stale, "0 answers from old replicas", "",
                       f"{len(by)} requests attributed after the rollout" if stale == 0
                       else f"{stale} of {len(by)} requests after the rollout answered by old replicas")


def scale_down_metrics(history: History, fault: FaultRecord) -> dict[str, Any]:
    """How long (s) until the deployments ran only their new replica count, and which left."""
    snaps = _during(history, fault)
    want = history.desired_at(fault.t_inject)
    done = next((s.t for s in snaps if s.replicas_running == want and
                 sum(a["role"] == "replica" for a in s.actors) == want), None)
    return {"scale_down": {"desired_after": want, "reached_s": round(done - fault.t_inject, 2) if done else None}}


def _drained_pod(fault: FaultRecord) -> str:
    return str(fault.params.get("pod"))


def replacements_before_stop(history: History, fault: FaultRecord) -> CheckResult:
    """Safe draining (Serve, ray-project/ray#43228; ``migrate_replicas_on_draining_nodes``):
    replacements start before the draining node's replicas stop.  Judged per deployment at every
    probe until the deadline: the serving replicas never fall below what it had before the drain,
    less the replicas another fault injected during the drain took elsewhere (``During``: a replica
    killed on another pod is that fault's to answer for)."""
    name = "drain.replacement_before_stop"
    pod, deadline = _drained_pod(fault), fault.t_heal
    snaps = [s for s in _during(history, fault) if deadline is None or s.t < deadline]
    replicas = [v for v in fault.victims if v.get("role") == "replica"]
    drain = fault.victims[0].get("fault") if fault.victims else None
    victims = [v for v in replicas if v.get("fault") == drain]
    elsewhere = [v for v in replicas if v not in victims]
    # The other fault's loss is allowed from its strike until the deployment is whole again.
    t_other = ((((fault.params.get("during") or {}).get("second") or {}).get("record") or {}).get("t_inject")
               if elsewhere else None)
    if not victims:
        return CheckResult(name, UNKNOWN, detail=f"no replica was on {pod}")
    if not snaps:
        return CheckResult(name, UNKNOWN, detail="no usable probe during the drain")
    wanted = {(v.get("app"), v.get("deployment")) for v in victims}
    last = snapshot_before(history, fault.t_inject)
    if last is None:
        return CheckResult(name, UNKNOWN, detail="no probe before the drain")
    before = {d: sum(a.get("state") in SERVING_STATES for a in _replicas(last, {d})) for d in wanted}
    lost = {d: sum((v.get("app"), v.get("deployment")) == d for v in elsewhere) for d in wanted}
    whole_again: dict[tuple[Any, Any], bool] = {d: False for d in wanted}
    dips = []
    for snap in snaps:
        for dep in wanted:
            serving = sum(a.get("state") in SERVING_STATES for a in _replicas(snap, {dep}))
            struck = t_other is not None and snap.t >= t_other
            whole_again[dep] = whole_again[dep] or (struck and serving >= before[dep])
            allowed = lost[dep] if struck and not whole_again[dep] else 0
            if serving < before[dep] - allowed:
                dips.append(f"{dep[0]}/{dep[1]} {serving}/{before[dep]} at +{snap.t - fault.t_inject:.1f} s")
    if dips:
        return CheckResult(name, FAIL, len(dips), "0 probes below capacity", "",
                           f"a draining replica stopped before its replacement served: {dips[0]}"
                           + (f" (+{len(dips) - 1} more probes)" if len(dips) > 1 else ""))
    return CheckResult(name, PASS, 0, "0 probes below capacity")


def drain_timeline(history: History, fault: FaultRecord) -> dict[str, Any]:
    """Seconds after the drain: replicas marked for migration, replacements serving, the drained
    node's replicas gone, its Ray node DEAD, the front door dropping it; the deadline."""
    pod, ids = _drained_pod(fault), set(fault.params.get("ray_node_ids") or [])
    victims = {v.get("actor_id") for v in fault.victims if v.get("role") == "replica"}

    def first(pred: Any) -> float | None:
        for snap in _during(history, fault):
            if pred(snap):
                return round(snap.t - fault.t_inject, 2)
        return None

    return {"drain": {
        "deadline_s": fault.params.get("deadline_s"),
        "migration_marked_s": first(lambda s: any(a.get("actor_id") in victims and a.get("state") == "PENDING_MIGRATION"
                                                  for a in s.actors)),
        "drained_replicas_gone_s": first(lambda s: victims and not any(a.get("actor_id") in victims for a in s.actors)),
        "ray_node_dead_s": first(lambda s: s.nodes_ok and ids and all(
            n.get("state") == "DEAD" for n in s.nodes if n["node_id"] in ids)),
        "front_door_dropped_s": first(lambda s: s.pods_ok and any(p.get("name") == pod and not p.get("ready")
                                                                  for p in s.pods)),
    }}
