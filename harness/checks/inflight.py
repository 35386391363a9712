"""Requests in flight when a pod went: which failures a plain (non-draining) pod deletion may cost.

A request is *in flight* at the fault when it was sent before the fault and had not answered by
then.  A graceful pod deletion that does not drain may fail those on the pod's replicas and proxy;
a request sent after the deletion has every other path open and must not fail -- except through
the deleted pod's own endpoint, which is down until the pod is back.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from serve_chaos.harness.checks.endpoints import aimed_at_pod
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.observe.history import FaultRecord, History

#: After the deletion, how long a request may still be sent into the dying pod (s): the front door
#: takes a terminating pod out of rotation at once, a router drops a dead replica on its first
#: ActorDiedError; one probe tick of slack for both.
SENT_AFTER_SLACK_S = 1.0


def _sent(history: History) -> pd.DataFrame:
    """Requests actually sent (a vacant slot's or an overloaded client's are recorded, not sent)."""
    reqs = history.judged_requests()
    return reqs[reqs["t_sent"].notna()] if not reqs.empty and "t_sent" in reqs else reqs


def _off_the_pod(history: History, record: FaultRecord) -> pd.DataFrame:
    """Sent requests, less every one of the slots that aimed at the deleted pod before it went (a slot
    follows its pod into the recreation, which on Kubernetes has a new name)."""
    reqs = _sent(history)
    pod = record.params.get("pod")
    if reqs.empty or not pod:
        return reqs
    slots = set(reqs.loc[aimed_at_pod(reqs, pod) & (reqs["t"] < record.t_inject), "endpoint"])
    return reqs[~aimed_at_pod(reqs, pod) & ~reqs["endpoint"].isin(slots)]


def failures_sent_after(history: History, record: FaultRecord) -> CheckResult:
    """No request sent more than ``SENT_AFTER_SLACK_S`` after the deletion failed, off the deleted
    pod's own endpoint.  Those sent within the slack are in neither count: ``in_flight_losses``
    reports what was in flight at the deletion."""
    name = "in_flight.only_in_flight_failed"
    reqs = _off_the_pod(history, record)
    end = history.t_data_end if history.t_data_end is not None else float("inf")
    after = reqs[(reqs["t"] > record.t_inject + SENT_AFTER_SLACK_S) & (reqs["t"] < end)] if not reqs.empty else reqs
    if after.empty:
        return CheckResult(name, UNKNOWN, detail="no request sent after the deletion to judge")
    failed = after[~after["ok"]]
    bound = f"0 failed of those sent > {SENT_AFTER_SLACK_S:g} s after the deletion"
    if failed.empty:
        return CheckResult(name, PASS, 0, bound, "requests", f"all {len(after)} sent after the deletion succeeded")
    first = float(failed["t"].min()) - record.t_inject
    by_endpoint = failed["endpoint"].astype(str).value_counts().to_dict()
    return CheckResult(name, FAIL, int(len(failed)), bound, "requests",
                       f"{len(failed)} of {len(after)} sent after the deletion failed, the first sent {first:.1f} s "
                       f"after it ({by_endpoint})")


def in_flight_losses(history: History, record: FaultRecord) -> dict[str, Any]:
    """Reported: how many requests were in flight at the deletion, and how many of them failed, by endpoint."""
    reqs = _sent(history)
    if reqs.empty or "latency_ms" not in reqs:
        return {"in_flight": {}}
    # Latency runs from the actual send (t_sent), not the intended time.
    answered = reqs["t_sent"] + reqs["latency_ms"].fillna(float("inf")) / 1000.0
    flying = reqs[(reqs["t_sent"] <= record.t_inject) & (answered > record.t_inject)]
    out: dict[str, Any] = {}
    for endpoint, group in flying.groupby(flying["endpoint"].astype(str)):
        out[endpoint] = {"in_flight": int(len(group)), "failed": int((~group["ok"]).sum())}
    return {"in_flight": out}
