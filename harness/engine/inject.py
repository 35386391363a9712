"""Inject: the scenario's phases one after another, a follow-up only after the previous one recovered."""

from __future__ import annotations

import time
from typing import Any

from serve_chaos.harness.app.selection import ScenarioSkipped
from serve_chaos.harness.engine.base import EngineBase
from serve_chaos.harness.engine.run import RunState
from serve_chaos.harness.faults import DoesNotApply
from serve_chaos.harness.observe.history import FaultRecord
from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError


class InjectPhase(EngineBase):
    """the scenario's phases one after another, a follow-up only after the previous one recovered."""

    def _run_phases(self, run: RunState) -> None:
        """Inject the phases one after another; a follow-up only after the previous one recovered."""
        for phase in run.phases:
            if run.faults and run.scenario.stop_after_s is not None and \
                    time.time() - run.faults[0].t_inject >= run.scenario.stop_after_s:
                return  # a soak's time is up: the remaining phases are simply not run
            if run.faults:
                self._clear_after(run, run.faults[-1])
            if phase.delay_s:
                self._emit("phase", name="wait", seconds=phase.delay_s)
                self._wait(run, phase.delay_s)
            try:
                plan = phase.fault.plan(self._latest_ok(run.prober), self.cluster.pods(), run.rng)
            except DoesNotApply as err:
                if run.faults:
                    raise
                raise ScenarioSkipped(f"{run.scenario.name} does not apply to {run.app.label()} on this cluster: "
                                      f"{err.what}") from None
            run.plans.append(plan)
            self._emit("plan", plan=plan, phase=phase.name)
            if self.confirm is not None and not self.confirm(plan):
                run.status_override = run.status_override or "skipped"
                run.error = run.error or f"fault {phase.name} declined at the --step prompt"
                return
            self._emit("phase", name="inject", fault=plan.description)
            # The load's shape first: a compound fault's inject may wait for its second fault.
            self._shape_load(run, phase.fault, time.time())
            record = phase.fault.inject(self.cluster, plan)
            record.phase = phase.name
            run.faults.append(record)
            self._emit("injected", record=record)
            t_rec, aborted = self._observe(run, phase)
            record.t_recovered_observed = t_rec
            run.recovered_live.append(t_rec)
            if aborted:
                run.status_override, run.error = "aborted", aborted
                return
            if t_rec is None:
                return  # a follow-up only means something after a recovery

    def _shape_load(self, run: RunState, fault: Any, t0: float) -> None:
        """Hand the load the rate steps the fault imposes from ``t0`` (epoch s): a load step is a
        fault of the traffic."""
        steps = fault.load_rates()
        if steps:
            base = run.scenario.load.rate
            run.load.set_rates([(t0 + offset, base if rate is None else rate) for offset, rate in steps])

    def _clear_after(self, run: RunState, record: FaultRecord) -> None:
        """Before the next phase, undo what the target still holds of a fault that recovered (a
        lost node stays lost until healed; a second node loss would find no spare node): what
        one fault left behind is never charged to the next one."""
        try:
            actions = self.cluster.heal()
        except ServeChaosError as err:
            raise InfrastructureError(f"could not heal what {record.fault} left before the next fault: {err.what}",
                                      evidence=err.evidence, hint=err.hint) from None
        record.heal_actions += [{**a.to_dict(), "between_phases": True} for a in actions]

    def _wait(self, run: RunState, seconds: float) -> None:
        """Let load run between faults, still ticking the live view."""
        end = time.time() + seconds
        while time.time() < end:
            self._check_there()
            self._follow_pods(run)
            self._emit("tick", phase="wait", history=self._history(run),
                       t_fault=run.faults[-1].t_inject if run.faults else None,
                       t_recovered=None, reason=f"next fault in {end - time.time():.0f} s")
            time.sleep(min(self.tick_s, max(0.0, end - time.time())))
