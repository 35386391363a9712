"""Failing health checks (the guide: "Replica health-checking").

The app's ``check_health`` starts to raise -- or to hang -- on demand, switched
on through an HTTP route of the app itself, so the victim is whichever replica
the request reaches.  Promise: "If the health-check fails, the Serve controller
logs the exception, kills the unhealthy replica(s), and restarts them", within
the bound the settings imply.  Serve marks a replica unhealthy after 3 failed
checks in a row; each check starts ``health_check_period_s`` (+-10 %) after the
previous one started, or at once after a hung one timed out; the replica then
gets up to ``graceful_shutdown_timeout_s`` (20 s) to stop.
"""

import pytest

from harness.bounds import unhealthy_kill_bound_s, unhealthy_replica_bounds
from harness.checks import SLO, replica_spread
from harness.faults import HealthCheckFailure
from harness.scenario import Scenario
from runtime.app.spec import SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S, SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S


def health_scenario(name: str, period_s: float | None, timeout_s: float | None, mode: str) -> Scenario:
    """``period_s`` / ``timeout_s`` None keep the app's own (Serve's defaults for SleepyPid)."""
    options = {k: v for k, v in (("health_check_period_s", period_s), ("health_check_timeout_s", timeout_s))
               if v is not None}
    shown = {"health_check_period_s": period_s or SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S,
             "health_check_timeout_s": timeout_s or SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S}
    bounds = unhealthy_replica_bounds(mode)
    return Scenario(
        name=name,
        title=f"check_health {'raises' if mode == 'raise' else 'hangs'} on one replica "
              f"(period {shown['health_check_period_s']:g} s, timeout {shown['health_check_timeout_s']:g} s)",
        promise=f"The unhealthy replica is killed within the bound its settings imply "
                f"({unhealthy_kill_bound_s(shown, mode):.1f} s with these) and replaced; no other PID changes.",
        fault=HealthCheckFailure(mode=mode),
        app_options=options,
        needs=("health_toggle",),
        slo=SLO(
            # The failing replica keeps answering requests until it is stopped
            # (Serve runs check_health off the request path), so traffic is not hurt.
            min_availability_during_fault=0.999,
            max_outage_s=1.0,
            **bounds(shown),
        ),
        bounds=bounds,
        expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
        extra_metrics=(replica_spread,),
        deadline_s=unhealthy_kill_bound_s(shown, mode) + 60.0,
    )


HEALTH_CHECK_RAISE_FAST = health_scenario("health_check_raise_fast", 1.0, 2.0, "raise")
HEALTH_CHECK_RAISE_DEFAULT = health_scenario("health_check_raise_default", None, None, "raise")
HEALTH_CHECK_HANG_FAST = health_scenario("health_check_hang_fast", 1.0, 2.0, "hang")


@pytest.mark.scenario(HEALTH_CHECK_RAISE_FAST)
def test_health_check_raise_fast(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(HEALTH_CHECK_RAISE_DEFAULT)
def test_health_check_raise_default(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(HEALTH_CHECK_HANG_FAST)
def test_health_check_hang_fast(scenario_result):
    scenario_result.assert_promises()
