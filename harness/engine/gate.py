"""Gate: the cluster brought to the scenario's settings, then steady state with load flowing before any
fault."""

from __future__ import annotations

import time

from serve_chaos.harness.app.selection import ScenarioSkipped
from serve_chaos.harness.checks import first_steady_state, route_problem
from serve_chaos.harness.engine.base import EngineBase
from serve_chaos.harness.engine.run import GateError, RunState
from serve_chaos.harness.observe.history import REQUESTS_FILE
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import restarts_replicas
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError
from serve_chaos.runtime.waiting import NotYet, wait_until


class GatePhase(EngineBase):
    """the cluster brought to the scenario's settings, then steady state with load flowing before any fault."""

    def prepare(self, scenario: Scenario) -> AppSpec:
        """Bring the cluster to the scenario's settings (GCS FT, Serve config) and wait for it.
        Returns the app it deployed; ScenarioSkipped when the scenario does not apply."""
        app = self.app.app_for(scenario)
        missing = [c for c in scenario.requires if not getattr(self.cluster.capabilities, c, False)]
        if missing:
            raise ScenarioSkipped(
                f"{scenario.name} needs {', '.join(missing)}: "
                + "; ".join(self.cluster.capabilities.why_not(c) for c in missing)
            )
        self._emit("phase", name="prepare")
        desired = app.to_serve_config()
        if scenario.ray_options.differs(self.cluster.settings()):
            self.cluster.set_ray_options(scenario.ray_options, serve_config=desired)
            time.sleep(2.0)
        elif self.cluster.serve_config() != desired:
            current = self.cluster.serve_config()
            # Lightweight options are updated in place; anything else would roll every
            # replica one batch at a time, so redeploy afresh instead.
            self.cluster.apply_serve_config(desired, replace=restarts_replicas(current, desired))
            time.sleep(2.0)
        try:
            self.cluster.wait_ready(timeout_s=max(self.cluster.capabilities.ready_timeout_s, scenario.gate_timeout_s))
        except ServeChaosError as err:
            raise GateError(f"cluster not ready before {scenario.name}: {err.what}",
                            evidence=err.evidence, hint=err.hint) from None
        return app

    def _check_alone(self) -> None:
        """A cluster with someone else's fault, load or lock is not at steady state: a GateError."""
        found = self.cluster.interference()
        if found:
            raise GateError(f"the cluster is not ours alone: {'; '.join(found)}",
                            hint="`serve-chaos status` shows what is in effect; heal it, or wait for that run")

    def _gate(self, run: RunState) -> float:
        """Wait until steady state holds with load flowing; else GateError."""
        scenario = run.scenario
        self._emit("phase", name="gate", timeout_s=scenario.gate_timeout_s)
        assert run.t_load_start is not None
        self._check_alone()

        def steady() -> float:
            self._check_there()
            self._follow_pods(run)
            history = self._history(run)
            wrong = route_problem(history, run.app.routes())
            if wrong:
                raise GateError(wrong, evidence=str(run.run_dir / REQUESTS_FILE),
                                hint="check --requests (path, method, expect_status) against your app")
            # Judge only a recent window: the cluster must be steady now, not earlier.
            t_from = max(run.t_load_start + 0.5, time.time() - 2 * scenario.hold_s - 2.0)
            t_steady, reason = first_steady_state(history, t_from, scenario.hold_s)
            if t_steady is None:
                self._emit("tick", phase="gate", history=history, reason=reason)
                raise NotYet(reason)
            return t_steady

        try:
            return wait_until(steady, scenario.gate_timeout_s, self.tick_s, what="steady state before the fault")
        except GateError:
            raise
        except InfrastructureError as err:
            raise GateError(err.what, evidence=str(run.run_dir),
                            hint="the cluster was unhealthy before the fault; check `serve-chaos status`") from None

    def _measure_start(self, run: RunState) -> None:
        """The app's slowest replica start (s), as the Serve controller logged it; the
        recovery bounds are built on it (``replica_start_s``; None if unreadable)."""
        starts = self.start_probe(self.cluster.endpoints().dashboard, self._latest_ok(run.prober))
        run.settings["replica_starts_s"] = starts
        run.settings["replica_start_s"] = max(starts.values()) if starts else None
