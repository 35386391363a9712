"""A chained composition's stages: after one stage's replica dies, the routing to the stage that
was not hit goes on (Ray 2.60 ``serve/_private/router.py`` ``_handle_actor_died_error``: an
ActorDiedError that comes from an upstream response passed into a call leaves the healthy
replica in its router's set; only the replica that died is dropped)."""

from __future__ import annotations

from typing import Any, Callable

from harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from harness.checks.steady import snapshot_before
from harness.observe.history import FaultRecord, History

#: Calls a stage must have taken per replica after the fault before what it reached is judged.
MIN_CALLS_PER_REPLICA = 5


def other_stage_routed(stage: str) -> Callable[[History, FaultRecord], CheckResult]:
    """A check that every replica of ``stage`` (``app/deployment``, the one not killed) RUNNING
    before the fault kept receiving calls from the fault until the end of the observed window."""
    app, _, dep = stage.partition("/")

    def check(history: History, fault: FaultRecord) -> CheckResult:
        name = f"stages.{dep}_still_routed"
        before = snapshot_before(history, fault.t_inject)
        replicas = sorted(str(a["replica_id"]) for a in (before.actors if before else [])
                          if a["role"] == "replica" and a.get("state") == "RUNNING"
                          and (a.get("app"), a.get("deployment")) == (app, dep) and a.get("replica_id"))
        reqs = history.judged_requests()
        if not replicas or reqs.empty or "downstream" not in reqs:
            return CheckResult(name, UNKNOWN, detail=f"no {stage} replica or no attributed call to judge")
        end = history.t_data_end if history.t_data_end is not None else float("inf")
        after = reqs[(reqs["t"] >= fault.t_inject) & (reqs["t"] < end) & reqs["ok"]]
        calls: dict[str, int] = {}
        for ids in after["downstream"].dropna():
            for rid in str(ids).split(","):
                if rid:
                    calls[rid] = calls.get(rid, 0) + 1
        taken = sum(calls.get(r, 0) for r in replicas)
        if taken < MIN_CALLS_PER_REPLICA * len(replicas):
            return CheckResult(name, UNKNOWN, taken, detail=f"only {taken} calls to {stage} attributed after the fault")
        missing = [r for r in replicas if not calls.get(r)]
        return CheckResult(name, FAIL if missing else PASS, len(replicas) - len(missing),
                           f"== {len(replicas)} replicas", "",
                           f"{stage}: {taken} calls after the fault over {len(replicas) - len(missing)} of its "
                           f"{len(replicas)} replicas" + (f"; never again: {', '.join(missing)}" if missing else ""))

    check.__name__ = f"other_stage_routed_{dep}"
    return check


def stage_calls(history: History, fault: FaultRecord) -> dict[str, Any]:
    """Reported: calls per downstream replica after the fault (who kept being routed to)."""
    reqs = history.judged_requests()
    if reqs.empty or "downstream" not in reqs:
        return {"stage_calls": None}
    after = reqs[(reqs["t"] >= fault.t_inject) & reqs["ok"]]
    counts: dict[str, int] = {}
    for ids in after["downstream"].dropna():
        for rid in str(ids).split(","):
            if rid:
                counts[rid] = counts.get(rid, 0) + 1
    return {"stage_calls": dict(sorted(counts.items()))}
