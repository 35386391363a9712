"""Could the testbed, not Ray, have failed these requests?  The seconds the harness's host was
CPU-saturated, and the run judged again without the requests those seconds could have starved.

On a small host (our 2-core machines, a 2-core CI runner) every emulated node shares the same
CPUs: a replacement pod starting, or a dead node's replicas respawning, can starve the proxies and
replicas of the *healthy* nodes -- which on a real cluster run on CPUs of their own.  Locust warns
of the same for its load generator ("CPU usage above 90%! ... inconsistent response time
measurements").  A run whose violations all disappear once the starved seconds are set aside is
*inconclusive*, not broken; one still broken without them is broken.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import pandas as pd

from serve_chaos.harness.observe.history import History
from serve_chaos.harness.observe.hostcpu import SATURATED

#: Less saturation than this over a whole run (s) is not enough to doubt its verdict.
MIN_SATURATED_S = 3.0


@dataclass(frozen=True)
class Span:
    """One stretch of saturation: ``start``..``end`` (epoch s)."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def saturated_spans(snapshots: list[Any], start: float = float("-inf"), end: float = float("inf")) -> list[Span]:
    """The stretches of ``[start, end)`` (epoch s) the host was at least ``SATURATED`` busy: each
    probe's sample is taken as it ends (``t_end``) and covers the interval since the sample
    before it; adjacent intervals merge."""
    samples = [(getattr(s, "t_end", None) or s.t, s.host_cpu_busy) for s in snapshots
               if getattr(s, "host_cpu_busy", None) is not None]
    spans: list[Span] = []
    for (t_prev, _), (t, busy) in zip(samples, samples[1:]):
        if busy < SATURATED or t <= start or t_prev >= end:
            continue
        t_prev, t = max(t_prev, start), min(t, end)
        if spans and spans[-1].end >= t_prev:
            spans[-1] = Span(spans[-1].start, t)
        else:
            spans.append(Span(t_prev, t))
    return spans


def starved(requests: pd.DataFrame, spans: list[Span], timeout_s: float) -> pd.Series:
    """Which requests could have been starved: those whose time in flight -- from when they
    were sent (``t_sent``, else ``t``) for their latency (the load's ``timeout_s`` when none was
    recorded) -- met a saturated span.  A request that failed fast before a span is Ray's answer,
    not the testbed's, and stays judged."""
    mask = pd.Series(False, index=requests.index)
    if requests.empty:
        return mask
    sent = requests["t_sent"].astype(float).fillna(requests["t"].astype(float))
    flight_s = (requests["latency_ms"].astype(float) / 1000.0).fillna(timeout_s)
    for span in spans:
        mask |= (sent + flight_s >= span.start) & (sent <= span.end)
    return mask


def without_starved(history: History, spans: list[Span]) -> tuple[History, int]:
    """``history`` with the requests the spans could have starved set aside (kept in
    ``History.set_aside``, so the load's sequence stays whole), and how many were."""
    mask = starved(history.requests, spans, history.load_timeout_s)
    frames = [f for f in (history.set_aside, history.requests[mask]) if not f.empty]
    aside = pd.concat(frames) if len(frames) > 1 else (frames[0] if frames else history.set_aside)
    return replace(history, requests=history.requests[~mask], set_aside=aside), int(mask.sum())


def doubt(history: History, rejudge: Callable[[History], Any], t_from: float, t_until: float) -> dict[str, Any] | None:
    """Whether a broken run's verdict may be the testbed's.  Only saturation from the first
    fault (``t_from``) until healing began (``t_until``, epoch s) counts: the gate and the heal
    judge nothing.  None when it lasted less than ``MIN_SATURATED_S``; else the spans (s after
    the fault), how many requests they set aside, and ``kept_without``: whether ``rejudge``
    (``(kept, statuses by check)``) keeps the run on the history without them."""
    spans = saturated_spans(history.snapshots, t_from, t_until)
    total = sum(span.duration for span in spans)
    if total < MIN_SATURATED_S:
        return None
    lenient, set_aside = without_starved(history, spans)
    kept, statuses = rejudge(lenient) if set_aside else (False, {})
    return {"saturated_s": round(total, 1), "set_aside": set_aside,
            "spans_s": [[round(span.start - t_from, 1), round(span.end - t_from, 1)] for span in spans],
            "kept_without": bool(kept), "checks_without": statuses}


def doubt_line(testbed: dict[str, Any]) -> str:
    """The one line an inconclusive run's report leads with."""
    spans = ", ".join(f"{a:.0f}-{b:.0f} s" for a, b in testbed.get("spans_s") or [])
    return (f"the harness's host was CPU-saturated for {testbed.get('saturated_s', 0):.0f} s ({spans} after the "
            f"fault); judged without the {testbed.get('set_aside', 0)} requests in flight then, the run keeps its "
            "promises: the testbed may have starved the healthy nodes (run it again, or on a host with more CPUs)")
