"""Judge: the run's verdict from its whole history, and its artifacts written -- always."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

from serve_chaos.harness.checks import Evaluation, evaluate_phases
from serve_chaos.harness.checks.testbed import doubt
from serve_chaos.harness.engine.base import EngineBase
from serve_chaos.harness.engine.run import RunState, now_id
from serve_chaos.harness.observe.history import History, requests_frame
from serve_chaos.harness.outcome import RunResult
from serve_chaos.harness.report import artifacts as report
from serve_chaos.harness.scenario import Scenario


class JudgePhase(EngineBase):
    """the run's verdict from its whole history, and its artifacts written -- always."""

    def _conclude(self, run: RunState) -> RunResult:
        """Judge the run and write its artifacts (always, whatever happened before)."""
        run.served_by.stop()
        run.prober.stop()
        history = self._history(run, final=True, events=self._events(run.events_since))
        evaluation = evaluate_phases(history, run.phases, run.scenario.hold_s, run.settings,
                                     partial_ok=run.scenario.stop_after_s is not None) if run.faults else None
        status = run.status_override or (evaluation.status if evaluation else "error")
        if evaluation is not None and status == "fail" and self._testbed_doubt(run, history, evaluation):
            status = "inconclusive"
        verdict = report.verdict(
            scenario=run.scenario, run_id=run.run_id, status=status, seed=run.seed, settings=run.settings,
            started=run.started, finished=time.time(), evaluation=evaluation, history=history,
            plans=run.plans, t_gate=run.t_gate, error=run.error, cluster_healthy=run.cluster_healthy,
            t_recovered_live=run.recovered_live, target=self.cluster.name, app=run.app,
        )
        report.write_run(run.run_dir, history, verdict)
        result = RunResult(run.scenario, run.run_id, run.run_dir, status, evaluation, history,
                           run.faults[0] if run.faults else None, verdict, run.error, run.cluster_healthy)
        self.last_result = result
        self._emit("done", result=result)
        return result

    def _testbed_doubt(self, run: RunState, history: History, evaluation: Evaluation) -> bool:
        """A broken run that keeps its promises without the requests the saturated host could
        have starved is inconclusive (``checks/testbed.py``); the figures go in its metrics.
        Each fault is re-judged at the recovery the whole history showed: setting requests
        aside must not move it (a steady state needs no failed request)."""
        def result(ev: Evaluation) -> RunResult:
            return RunResult(run.scenario, run.run_id, run.run_dir, ev.status, ev, history, None,
                             {"settings": run.settings, "target": self.cluster.name})

        pinned = _recoveries_pinned(history, evaluation)
        if result(evaluation).explained() or pinned is None:
            return False

        def rejudge(lenient: History) -> tuple[bool, dict[str, str]]:
            again = evaluate_phases(lenient, run.phases, run.scenario.hold_s, run.settings,
                                    partial_ok=run.scenario.stop_after_s is not None)
            return result(again).explained(), {c.name: c.status for c in again.checks}

        t_until = next((t for t in (history.t_heal_start, history.t_data_end) if t is not None), float("inf"))
        found = doubt(pinned, rejudge, pinned.faults[0].t_inject, t_until)
        if found is not None:
            evaluation.metrics["testbed"] = found
        return bool(found and found["kept_without"])

    def _skipped(self, scenario: Scenario, reason: str) -> RunResult:
        """A verdict for a scenario that does not apply here: status ``skipped`` and why."""
        run_id = f"{now_id()}-{scenario.name}-{secrets.token_hex(2)}"
        run_dir = self.report_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        history = History(requests=requests_frame([]))
        now = time.time()
        verdict = report.verdict(
            scenario=scenario, run_id=run_id, status="skipped", seed=self.seed or 0, settings={"app": self.app.base.label()},
            started=now, finished=now, evaluation=None, history=history, plans=[], t_gate=None, error=reason,
            cluster_healthy=True, t_recovered_live=[], target=self.cluster.name)
        report.write_run(run_dir, history, verdict)
        result = RunResult(scenario, run_id, run_dir, "skipped", None, history, None, verdict, reason, True)
        self._emit("done", result=result)
        return result


def _recoveries_pinned(history: History, evaluation: Evaluation) -> History | None:
    """``history`` with every fault's recovery set to the one ``evaluation`` found; None when a
    fault never recovered (a verdict the testbed cannot be blamed for here)."""
    found = {evaluation.metrics.get("phase"): evaluation.t_recovered,
             **{name: m.get("t_recovered") for name, m in (evaluation.metrics.get("followups") or {}).items()}}
    if not history.faults or any(found.get(f.phase) is None for f in history.faults):
        return None
    return replace(history, faults=[replace(f, t_recovered_observed=found[f.phase]) for f in history.faults])
