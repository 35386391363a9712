"""Which app a scenario runs: the app under test, shaped by the scenario, or a skip with its reason."""

from __future__ import annotations

from dataclasses import dataclass

from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import SCENARIO_APP
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.errors import ServeChaosError


class ScenarioSkipped(ServeChaosError):
    """The scenario does not apply here: the target lacks a capability, or the app lacks what it needs."""


@dataclass(frozen=True)
class AppUnderTest:
    """The app a run tests (``--app``; SleepyPid by default), the deployment its replica
    faults aim at (``--deployment app/name``; None: any) and a user's locustfile."""

    base: AppSpec = SCENARIO_APP
    deployment: str | None = None
    locustfile: str | None = None

    @property
    def is_users(self) -> bool:
        return not self.base.bundled

    def app_for(self, scenario: Scenario) -> AppSpec:
        """The app ``scenario`` deploys; ScenarioSkipped (with the reason) when it does not apply."""
        app = self.base
        if scenario.app is not None:
            if not self.is_users:
                app = scenario.app
            elif scenario.on_user_app == "skip":
                raise ScenarioSkipped(f"{scenario.name} does not apply to {self.base.label()}: {scenario.skip_reason}")
        if "health_toggle" in scenario.needs and not app.health_toggle:
            raise ScenarioSkipped(
                f"{scenario.name} switches check_health through the app's own route, and {app.label()} does not "
                "opt into it (pass --health-toggle if it implements POST <route_prefix>/-/chaos/health?mode=...; "
                "replica_hang freezes a replica of any app)")
        if scenario.app_options:
            app = app.with_options(**scenario.app_options)
        return app
