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

from harness.checks import SLO, replica_spread
from harness.faults import HealthCheckFailure
from harness.scenario import Scenario
from runtime.app.serve_config import SCENARIO_APP
from runtime.ray_settings import SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S, SERVE_REPLICA_UNHEALTHY_THRESHOLD

PROBE_SLACK_S = 3.0  # one probe period plus its timeout


def kill_bound_s(period_s: float, timeout_s: float, mode: str) -> float:
    """Latest time (s) after the switch by which the unhealthy replica must be gone."""
    if mode == "raise":
        detect = SERVE_REPLICA_UNHEALTHY_THRESHOLD * 1.1 * period_s
    else:
        detect = 1.1 * period_s + SERVE_REPLICA_UNHEALTHY_THRESHOLD * max(timeout_s, 1.1 * period_s)
    return detect + SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S + PROBE_SLACK_S


def health_scenario(name: str, period_s: float | None, timeout_s: float | None, mode: str) -> Scenario:
    app = SCENARIO_APP.with_(health_check_period_s=period_s, health_check_timeout_s=timeout_s)
    period, timeout = app.effective_health_check()
    bound = kill_bound_s(period, timeout, mode)
    return Scenario(
        name=name,
        title=f"check_health {'raises' if mode == 'raise' else 'hangs'} on one replica "
              f"(period {period:g} s, timeout {timeout:g} s)",
        promise=f"The unhealthy replica is killed within {bound:.1f} s and replaced; no other PID changes.",
        fault=HealthCheckFailure(mode=mode),
        app=app,
        slo=SLO(
            # The failing replica keeps answering requests until it is stopped
            # (Serve runs check_health off the request path), so traffic is not hurt.
            min_availability_during_fault=0.999,
            max_outage_s=1.0,
            max_fault_effect_s=bound,
            # killed, then the 10 s constructor of the replacement
            max_recovery_s=bound + 20.0,
        ),
        expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
        extra_metrics=(replica_spread,),
        deadline_s=bound + 45.0,
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
