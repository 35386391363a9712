"""A fault of the traffic: the load steps up to ``rate`` for ``duration_s`` seconds, then back to the
scenario's own rate -- what a replica autoscaler must follow (``autoscaling_config``).

The step is an open model like the rest of the load (requests at their intended times whatever
the answers), so a slow upscale shows as latency and failures, not as a load that politely waits.
Nothing in the cluster is touched: the fault's evidence is the offered rate the requests show.

What Ray 2.60 promises (``serve/_private/autoscaling_state.py``, ``serve/config.py``
``AutoscalingConfig``): the desired count is the ongoing requests (queued ones included) averaged
over ``look_back_period_s``, divided by ``target_ongoing_requests``, within
``[min_replicas, max_replicas]``; a rise is acted on once it has held ``upscale_delay_s``, a fall
once it has held ``downscale_delay_s``; metrics reach the controller every ``metrics_interval_s``.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from serve_chaos.harness.checks import CheckResult
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN
from serve_chaos.harness.faults.base import Fault, FaultPlan, record
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo

#: The offered rate counts as stepped when the requests sent in the step reach this share of it.
RATE_SHARE = 0.8


@dataclass(frozen=True)
class LoadStep(Fault):
    """Raise the load to ``rate`` requests/s per endpoint for ``duration_s`` seconds, then back."""

    name: ClassVar[str] = "load_step"
    summary: ClassVar[str] = "step the load up, hold it, step it back down"
    rate: float = 20.0
    duration_s: float = 45.0

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 2000 or self.duration_s <= 0:
            raise ValueError(f"a load step needs a rate in (0, 2000] and a duration > 0, got {self.rate}, "
                             f"{self.duration_s}")

    def describe(self) -> str:
        return f"step the load to {self.rate:g} requests/s per endpoint for {self.duration_s:g} s, then back"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        running = sum(1 for a in snap.actors if a["role"] == "replica" and a.get("state") == "RUNNING")
        return FaultPlan(self.name, self.describe(), [], {"rate": self.rate, "duration_s": self.duration_s,
                                                          "replicas_before": running})

    #: Where the verdict says the raised rate was offered.
    where: ClassVar[str] = "during the step"

    def windows(self) -> list[tuple[float, float]]:
        """When the load runs at ``rate``: start and end, seconds from the fault."""
        return [(0.0, self.duration_s)]

    def load_rates(self) -> tuple[tuple[float, float | None], ...]:
        steps: list[tuple[float, float | None]] = []
        for start, end in self.windows():
            steps += [(start, self.rate), (end, None)]
        return tuple(steps)

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        now = time.time()
        return record(plan, ActionRecord("load_step", "load", now, now, {"rate": self.rate}), now)

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """The load steps back by its own schedule; nothing in the cluster to undo."""
        return []

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        """The rate offered inside the windows (each one's first second goes to the load picking it up)."""
        name, bound = "fault.took_effect", f">= {RATE_SHARE:.0%} of {self.rate:g}/s per endpoint {self.where}"
        reqs = history.requests
        if not reqs.empty and "t_sent" in reqs:
            reqs = reqs[reqs["t_sent"].notna()]  # sent, not only scheduled (an overloaded client sends nothing)
        endpoints = max(1, int(reqs["endpoint"].nunique())) if not reqs.empty else 1
        inside, span = 0, 0.0
        for start, end in self.windows():
            t0, t1 = record.t_inject + start + 1.0, record.t_inject + end
            inside += int(((reqs["t"] >= t0) & (reqs["t"] < t1)).sum()) if not reqs.empty else 0
            span += t1 - t0
        if not inside:
            return CheckResult(name, UNKNOWN, bound=bound, detail=f"no request sent {self.where}")
        offered = inside / span / endpoints
        return CheckResult(name, PASS if offered >= RATE_SHARE * self.rate else FAIL, round(offered, 1), bound,
                           "requests/s", f"the load offered {offered:.1f}/s per endpoint {self.where}")


@dataclass(frozen=True)
class LoadBursts(LoadStep):
    """``bursts`` spikes of ``rate`` requests/s per endpoint, each ``burst_s`` seconds long, ``gap_s``
    seconds apart at the scenario's own rate: with gaps shorter than ``downscale_delay_s`` an
    autoscaler must hold its replicas through them.  ``duration_s`` is derived: first burst to the
    end of the last (s)."""

    name: ClassVar[str] = "load_bursts"
    summary: ClassVar[str] = "spike the load several times, with gaps at the base rate"
    where: ClassVar[str] = "inside the bursts"
    burst_s: float = 8.0
    gap_s: float = 7.0
    bursts: int = 4
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.bursts < 1 or self.burst_s <= 0 or self.gap_s <= 0:
            raise ValueError(f"load bursts need bursts >= 1, burst_s > 0 and gap_s > 0, got {self.bursts}, "
                             f"{self.burst_s}, {self.gap_s}")
        object.__setattr__(self, "duration_s", self.bursts * self.burst_s + (self.bursts - 1) * self.gap_s)
        super().__post_init__()

    def describe(self) -> str:
        return (f"{self.bursts} bursts of {self.rate:g} requests/s per endpoint, {self.burst_s:g} s each, "
                f"{self.gap_s:g} s apart")

    def windows(self) -> list[tuple[float, float]]:
        """Each burst's start and end, seconds from the first."""
        period = self.burst_s + self.gap_s
        return [(i * period, i * period + self.burst_s) for i in range(self.bursts)]


def held_through_gaps(want: int) -> Callable[[History, FaultRecord], CheckResult]:
    """The check that once the autoscaler's target reached ``want`` it stayed there until the last burst
    ended (its gaps are shorter than the downscale delay); its value: the lowest target meanwhile."""

    def held(history: History, record: FaultRecord) -> CheckResult:
        name, bound = "autoscale.held_through_gaps", f">= {want}"
        series = _targets(history, record.t_inject, record.t_inject + float(record.params.get("duration_s", 0.0)))
        reached = next((i for i, (_, n) in enumerate(series) if n >= want), None)
        if reached is None:
            return CheckResult(name, UNKNOWN, bound=bound, detail=f"the target never reached {want} in the bursts")
        low_t, low = min(series[reached:], key=lambda tn: tn[1])
        ok = low >= want
        detail = (f"the target stayed at >= {want} from {series[reached][0] - record.t_inject:.1f} s to the last "
                  "burst's end" if ok else
                  f"the target fell to {low} {low_t - record.t_inject:.1f} s after the first burst, before the last "
                  "one ended")
        return CheckResult(name, PASS if ok else FAIL, low, bound, "replicas", detail)

    return held


def _counts(history: History, t0: float, t1: float) -> list[tuple[float, int]]:
    """RUNNING replicas per probe in ``[t0, t1)``: the capacity that serves."""
    return [(s.t, int(s.replicas_running or 0)) for s in history.snapshots
            if t0 <= s.t < t1 and s.ok and s.replicas_running is not None]


def _targets(history: History, t0: float, t1: float) -> list[tuple[float, int]]:
    """The autoscaler's decision per probe in ``[t0, t1)``: the deployments' ``target_num_replicas``
    summed (a replica briefly UPDATING in place is not a decision to scale down)."""
    out = []
    for snap in history.snapshots:
        if not (t0 <= snap.t < t1 and snap.ok):
            continue
        targets = [d.get("target_num_replicas") for app in snap.apps.values()
                   for d in (app.get("deployments") or {}).values()]
        if targets and all(t is not None for t in targets):
            out.append((snap.t, int(sum(targets))))
    return out


def expected_peak(rate: float, work_s: float, auto: dict[str, Any]) -> int:
    """Replicas a load of ``rate`` requests/s, each ``work_s`` seconds long, calls for under ``auto``
    (an ``autoscaling_config``): ``rate x work / target_ongoing_requests`` within the bounds."""
    want = math.ceil(rate * work_s / float(auto.get("target_ongoing_requests", 2.0)))
    return max(int(auto.get("min_replicas", 1)), min(int(auto.get("max_replicas", want)), want))


def upscaled_to(want: int, within_s: float) -> Callable[[History, FaultRecord], CheckResult]:
    """The check that the count reached ``want`` within ``within_s`` seconds of the step; its value:
    how long it took (s)."""

    def upscale_s(history: History, record: FaultRecord) -> CheckResult:
        name = "autoscale.upscale_s"
        counts = _counts(history, record.t_inject, record.t_inject + float(record.params.get("duration_s", 0.0)))
        if not counts:
            return CheckResult(name, UNKNOWN, detail="no probe during the step")
        reached = next((t for t, n in counts if n >= want), None)
        peak = max(n for _, n in counts)
        if reached is None:
            return CheckResult(name, FAIL, None, f"<= {within_s:g} s to {want}", "s",
                               f"at most {peak} replicas RUNNING during the step; the load calls for {want}")
        took = reached - record.t_inject
        return CheckResult(name, PASS if took <= within_s else FAIL, round(took, 1), f"<= {within_s:g} s to {want}",
                           "s", f"{want} replicas RUNNING {took:.1f} s after the step (peak {peak})")

    return upscale_s


def no_flapping(history: History, record: FaultRecord) -> CheckResult:
    """The autoscaler's target rose and then fell, once: from the step to the end of the data it is
    non-decreasing, then non-increasing.  An overshoot corrected down while the load holds (queued
    requests count as ongoing) is one fall, not flapping; any rise after a fall is a turn -- a
    redeploy that resets the target and the autoscaler bringing it back, or a count that oscillates."""
    name = "autoscale.no_flapping"
    end = history.t_data_end if history.t_data_end is not None else float("inf")
    series = _targets(history, record.t_inject, end)
    if len(series) < 2:
        return CheckResult(name, UNKNOWN, detail="no probe during or after the step")
    turns, fell = [], False
    for (_, a), (t, b) in zip(series, series[1:]):
        if b < a:
            fell = True
        elif b > a and fell:
            turns.append((t, a, b))
    detail = ("the target rose, then fell, once" if not turns else
              f"{len(turns)} rise(s) after a fall, the first {turns[0][0] - record.t_inject:.1f} s after the step: "
              f"{turns[0][1]} -> {turns[0][2]}")
    return CheckResult(name, PASS if not turns else FAIL, len(turns), "== 0", "turns", detail)


def scale_timeline(history: History, record: FaultRecord) -> dict[str, Any]:
    """Reported: the autoscaler's target and the RUNNING count at each change, seconds from the step."""
    end = history.t_data_end if history.t_data_end is not None else float("inf")
    return {"autoscale": {"target_by_time": _changes(_targets(history, record.t_inject - 5.0, end), record.t_inject),
                          "running_by_time": _changes(_counts(history, record.t_inject - 5.0, end), record.t_inject)}}


def _changes(series: list[tuple[float, int]], t0: float) -> list[tuple[float, int]]:
    out: list[tuple[float, int]] = []
    for t, n in series:
        if not out or out[-1][1] != n:
            out.append((round(t - t0, 1), n))
    return out
