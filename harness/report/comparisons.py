"""Planned and unplanned versions of the same loss, side by side.

A drained node (``node_drain``: Ray's drain API with a deadline, then the node is
lost, as a spot preemption with notice) and a node lost without notice
(``worker_node_failure``) end the same way; what the notice buys is the
difference between the two rows.  A report shows a pair only when it holds a run
of each; the figures come from the verdicts as they are (pure functions of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serve_chaos.harness.report.verdicts import churn_text


@dataclass(frozen=True)
class Pair:
    """Two scenarios that lose the same thing, the first with notice."""

    planned: str
    unplanned: str
    title: str


PAIRS: tuple[Pair, ...] = (
    Pair("node_drain", "worker_node_failure",
         "a worker node lost with notice (drained, then lost at the deadline) and without it"),
)


@dataclass(frozen=True)
class Comparison:
    """One pair's figures: ``rows`` are (measure, planned, unplanned) as printed."""

    pair: Pair
    rows: tuple[tuple[str, str, str], ...]

    def lines(self) -> list[str]:
        """Fixed-width text for a terminal."""
        width = max(len(m) for m, _, _ in self.rows)
        mid = max([len(self.pair.planned)] + [len(p) for _, p, _ in self.rows])
        head = f"{'':<{width}}  {self.pair.planned:<{mid}}  {self.pair.unplanned}"
        return [f"side by side: {self.pair.title}", head] + [
            f"{m:<{width}}  {p:<{mid}}  {u}" for m, p, u in self.rows]


def _front(verdict: dict[str, Any]) -> dict[str, Any]:
    return ((verdict.get("metrics") or {}).get("endpoints") or {}).get("front") or {}


def _check_value(verdict: dict[str, Any], name: str) -> Any:
    return next((c.get("value") for c in verdict.get("checks") or [] if c.get("name") == name), None)


#: (measure, how to read it from a verdict, format spec, unit); times in seconds, latency ms.
MEASURES: tuple[tuple[str, Any, str, str], ...] = (
    ("front availability during the fault", lambda v: _front(v).get("availability_during_fault"), ".4f", ""),
    ("front requests failed during the fault", lambda v: _front(v).get("failed_during_fault"), "d", ""),
    ("front longest outage", lambda v: _front(v).get("longest_outage_s"), ".2f", " s"),
    ("front p99 during the fault", lambda v: (_front(v).get("latency_during_fault") or {}).get("p99_ms"), ".0f",
     " ms"),
    ("fewest RUNNING replicas", lambda v: _check_value(v, "capacity.min_running_replicas"), "d", ""),
    ("fault to recovery", lambda v: (v.get("metrics") or {}).get("recovery_s"), ".1f", " s"),
    ("churn", lambda v: churn_text((v.get("metrics") or {}).get("churn")), "", ""),
)


def _cell(verdict: dict[str, Any], read: Any, spec: str, unit: str) -> str:
    value = read(verdict)
    if value is None or isinstance(value, str):
        return "-" if value is None else value
    return f"{int(value)}{unit}" if spec == "d" else format(float(value), spec) + unit


def compare(planned: dict[str, Any], unplanned: dict[str, Any], pair: Pair) -> Comparison:
    return Comparison(pair, tuple((name, _cell(planned, read, spec, unit), _cell(unplanned, read, spec, unit))
                                  for name, read, spec, unit in MEASURES))


def comparisons(verdicts: list[dict[str, Any]]) -> tuple[Comparison, ...]:
    """Every pair with a judged run of each side (the last run of a scenario counts)."""
    last = {v.get("scenario"): v for v in verdicts if v.get("metrics")}
    return tuple(compare(last[p.planned], last[p.unplanned], p) for p in PAIRS
                 if p.planned in last and p.unplanned in last)
