"""The app's routes: whether each answers as the requests file expects, and how each fared.

A route is one kind of request of the load (``RequestSpec.label``: its name, or
``METHOD path``).  Before any fault every route must answer its expected status
at least once; one that answered only something else, every time, is a mistake
in the requests file or the app -- told in one line, nothing injected.
"""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from serve_chaos.harness.checks.timeline import PhaseWindow, availability, between, longest_outage, outage_windows
from serve_chaos.harness.observe.history import History

#: Answers a route must have given, all wrong, before the gate calls it a mistake.
MIN_ANSWERS = 20


def route_problem(history: History, routes: Iterable[Any]) -> str:
    """Why a route never answers as expected (one line), or "" while it may still."""
    reqs = history.judged_requests()
    if reqs.empty or "route" not in reqs:
        return ""
    for spec in routes:
        got = reqs[reqs["route"] == spec.label]
        answered = got[got["status"].notna()]
        if len(answered) < MIN_ANSWERS or bool(got["ok"].any()):
            continue
        status = int(answered["status"].mode().iloc[0])
        return (f"route {spec.label!r} answered HTTP {status} to all {len(answered)} requests, expected "
                f"{spec.expect_status}: not a fault of Ray, a mismatch between the requests and the app")
    return ""


def route_metrics(reqs: pd.DataFrame, window: PhaseWindow) -> dict[str, dict[str, Any]]:
    """Per route: requests, availability overall and during the fault, longest outage (s)."""
    if reqs.empty or "route" not in reqs or reqs["route"].isna().all():
        return {}
    out = {}
    for route, df in reqs.groupby("route"):
        during = between(df, window.fault, window.end)
        longest = longest_outage([w for w in outage_windows(between(df, window.fault, window.after_end))
                                  if w.start < window.end])
        out[str(route)] = {"requests": int(len(between(df, window.start, window.after_end))),
                           "availability": availability(df, window.start, window.after_end),
                           "availability_during_fault": availability(during),
                           "longest_outage_s": longest.duration if longest else 0.0}
    return out
