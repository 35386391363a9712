"""Observe: one phase watched until it recovered (plus margins) or its deadline; the history so far."""

from __future__ import annotations

import time
from typing import Any

from serve_chaos.harness.checks import availability, first_steady_state
from serve_chaos.harness.engine.base import EngineBase
from serve_chaos.harness.engine.run import RunState
from serve_chaos.harness.observe.history import FaultRecord, History, JsonlTail, REQUESTS_FILE, read_jsonl
from serve_chaos.harness.scenario import Phase


class ObservePhase(EngineBase):
    """one phase watched until it recovered (plus margins) or its deadline; the history so far."""

    def _observe(self, run: RunState, phase: Phase) -> tuple[float | None, str]:
        """Observe one phase until recovered (plus margins) or its deadline.

        A fault with ``duration_s`` is ended (healed) that long after it began;
        recovery is then judged from the end of the fault.  Returns
        ``(t_recovered, abort reason)``.
        """
        scenario, fault = run.scenario, run.faults[-1]
        duration = getattr(phase.fault, "duration_s", None)
        self._emit("phase", name="observe", deadline_s=phase.deadline_s, fault_duration_s=duration)
        t_recovered: float | None = None
        while True:
            self._check_there()
            self._follow_pods(run)
            now = time.time()
            history = self._history(run)
            if duration is not None and fault.t_heal is None and (
                    now >= fault.t_inject + duration or phase.fault.done_early(history, fault)):
                actions = phase.fault.end(self.cluster, fault)
                fault.heal_actions += [a.to_dict() for a in actions]
                fault.t_heal = time.time()
                self._emit("phase", name="fault ended", fault=fault.fault)
                history = self._history(run)
            t_from = fault.t_heal if duration is not None else fault.t_inject
            if t_recovered is None and t_from is not None:
                t_recovered, reason = first_steady_state(history, t_from, scenario.hold_s, fault.victims)
            else:
                reason = "fault still in effect" if t_from is None else ""
            self._emit("tick", phase="observe", history=history, t_fault=fault.t_inject,
                       t_recovered=t_recovered, reason=reason)
            if self.abort is not None:
                aborted = self._abort_reason(history, fault)
                if aborted:
                    return t_recovered, aborted
            done_at = fault.t_inject + phase.min_observe_s
            if t_recovered is not None:
                done_at = max(done_at, t_recovered + scenario.hold_s + scenario.after_recovery_s)
                if now >= done_at:
                    return t_recovered, ""
            if now > fault.t_inject + phase.deadline_s:
                return t_recovered, ""
            time.sleep(self.tick_s)

    def _abort_reason(self, history: History, fault: FaultRecord) -> str:
        """Availability over the last ``window_s`` of *judged* requests (hung requests are
        judged only when they time out) below the floor, for a full window after the fault."""
        assert self.abort is not None
        reqs = history.judged_requests()
        if reqs.empty:
            return ""
        end = min(history.judged_until(), float(reqs["t"].max()))
        if end - fault.t_inject < self.abort.window_s:
            return ""
        recent = availability(reqs, end - self.abort.window_s)
        if recent is not None and recent < self.abort.min_availability:
            return (f"aborted: availability {recent:.3f} below {self.abort.min_availability} "
                    f"for {self.abort.window_s:.0f} s")
        return ""

    def _history(self, run: RunState, final: bool = False, events: list[dict[str, Any]] | None = None) -> History:
        path = run.run_dir / REQUESTS_FILE
        if final:
            records = read_jsonl(path)  # everything, read afresh
        else:
            if self._tail is None or self._tail.path != path:
                self._tail = JsonlTail(path)
            records = self._tail.read()
        return History.build(
            records,
            snapshots=run.prober.copy(),
            faults=run.faults,
            events=events or [],
            t_load_start=run.t_load_start,
            t_load_stop=run.t_load_stop if final else None,
            t_heal_start=run.t_heal_start if final else None,
            load_timeout_s=run.scenario.load.timeout_s,
            desired_replicas=run.app.desired_replicas(),
            served_by=run.served_by.copy(),
        )
