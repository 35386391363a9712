"""A chained composition's stages: after an upstream stage's replica dies, every router keeps
routing to each replica of the downstream stage that was not hit (Ray 2.60
``serve/_private/router.py``: an ActorDiedError met while resolving an upstream response passed
into a call becomes ``_make_upstream_crash_error`` before a replica is chosen, and one met from a
chosen replica drops it only when the dead actor is that replica, ``_handle_actor_died_error``)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import pandas as pd

from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.checks.steady import snapshot_before
from serve_chaos.harness.load.servedby import served
from serve_chaos.harness.observe.history import FaultRecord, History

#: Calls a stage must have taken per replica after the fault before what it reached is judged.
MIN_CALLS_PER_REPLICA = 30


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
        after = after.assign(_router=served(after))
        # Per router (the ingress replica that made the call): one that dropped a healthy replica
        # is not hidden by another that kept it.
        judged, missing, taken = 0, [], 0
        for router, group in after.dropna(subset=["_router"]).groupby("_router"):
            calls = {r: n for r, n in downstream_calls(group).items() if r in replicas}
            total = sum(calls.values())
            taken += total
            if total < MIN_CALLS_PER_REPLICA * len(replicas):
                continue
            judged += 1
            missing += [f"{r} by {router}" for r in replicas if not calls.get(r)]
        if not judged:
            return CheckResult(name, UNKNOWN, taken, detail=f"too few calls to {stage} attributed per router after "
                                                            "the fault")
        return CheckResult(name, FAIL if missing else PASS, len(missing), "0 replicas dropped", "",
                           f"{stage}: {taken} calls after the fault; {judged} router(s) judged"
                           + (f"; never again: {', '.join(missing)}" if missing else ", each reached every replica"))

    check.__name__ = f"other_stage_routed_{dep}"
    return check


def stage_calls(history: History, fault: FaultRecord) -> dict[str, Any]:
    """Reported: calls per downstream replica after the fault (who kept being routed to)."""
    reqs = history.judged_requests()
    if reqs.empty or "downstream" not in reqs:
        return {"stage_calls": None}
    after = reqs[(reqs["t"] >= fault.t_inject) & reqs["ok"]]
    return {"stage_calls": dict(sorted(downstream_calls(after).items()))}


def downstream_calls(requests: pd.DataFrame) -> Counter[str]:
    """Calls per downstream replica among ``requests`` (their ``downstream`` column: the replica ids,
    comma-joined, Serve's logs name for each request, ``serve_chaos.harness.load.servedby``)."""
    return Counter(rid for ids in requests["downstream"].dropna() for rid in str(ids).split(",") if rid)
