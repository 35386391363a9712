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
    probe's sample covers the interval since the probe before it; adjacent intervals merge."""
    samples = [(s.t, s.host_cpu_busy) for s in snapshots
               if getattr(s, "host_cpu_busy", None) is not None and start <= s.t < end]
    spans: list[Span] = []
    for (t_prev, _), (t, busy) in zip(samples, samples[1:]):
        if busy < SATURATED:
            continue
        if spans and spans[-1].end >= t_prev:
            spans[-1] = Span(spans[-1].start, t)
        else:
            spans.append(Span(t_prev, t))
    return spans


def starved(requests: pd.DataFrame, spans: list[Span], timeout_s: float) -> pd.Series:
    """Which requests (sent at ``t``, epoch s) could have been starved: those whose time in
    flight -- up to the load's ``timeout_s`` -- overlaps a saturated span."""
    mask = pd.Series(False, index=requests.index)
    if requests.empty:
        return mask
    for span in spans:
        mask |= (requests["t"] + timeout_s >= span.start) & (requests["t"] <= span.end)
    return mask


def without_starved(history: History, spans: list[Span]) -> tuple[History, int]:
    """``history`` with the requests the spans could have starved set aside (kept in
    ``History.set_aside``, so the load's sequence stays whole), and how many were."""
    mask = starved(history.requests, spans, history.load_timeout_s)
    aside = history.requests[mask]
    kept = history.requests[~mask]
    merged = pd.concat([history.set_aside, aside]) if not history.set_aside.empty else aside
    return replace(history, requests=kept, set_aside=merged), int(mask.sum())


def doubt(history: History, rejudge: Callable[[History], bool]) -> dict[str, Any] | None:
    """Whether a broken run's verdict may be the testbed's: None when the host was saturated for
    less than ``MIN_SATURATED_S`` over the run; else the spans (s after the first fault), how
    many requests they set aside, and ``kept_without``: ``rejudge`` (True when the run keeps
    its promises) of the history without them."""
    spans = saturated_spans(history.snapshots)
    total = sum(span.duration for span in spans)
    if total < MIN_SATURATED_S:
        return None
    lenient, set_aside = without_starved(history, spans)
    t0 = history.faults[0].t_inject if history.faults else 0.0
    return {"saturated_s": round(total, 1), "set_aside": set_aside,
            "spans_s": [[round(span.start - t0, 1), round(span.end - t0, 1)] for span in spans],
            "kept_without": bool(set_aside) and rejudge(lenient)}


def doubt_line(testbed: dict[str, Any]) -> str:
    """The one line an inconclusive run's report leads with."""
    spans = ", ".join(f"{a:.0f}-{b:.0f} s" for a, b in testbed.get("spans_s") or [])
    return (f"the harness's host was CPU-saturated for {testbed.get('saturated_s', 0):.0f} s ({spans} after the "
            f"fault); judged without the {testbed.get('set_aside', 0)} requests in flight then, the run keeps its "
            "promises: the testbed may have starved the healthy nodes (run it again, or on a host with more CPUs)")
