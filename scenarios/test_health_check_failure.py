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

from serve_chaos.harness.bounds import unhealthy_kill_bound_s, unhealthy_replica_bounds
from serve_chaos.harness.checks import SLO, replica_spread
from serve_chaos.harness.bounds import REPLACE_SLACK_S
from serve_chaos.harness.faults import HealthCheckFailure, HealthFlap
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import SCENARIO_APP
from serve_chaos.runtime.app.spec import SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S, SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S
from serve_chaos.runtime.ray_settings import SERVE_REPLICA_UNHEALTHY_THRESHOLD


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


# Ray 2.60 ``deployment_state.py``: a replica's consecutive failed checks reset on a passing one, and
# it is marked unhealthy at REPLICA_HEALTH_CHECK_UNHEALTHY_THRESHOLD (3, ``constants.py``) in a row.
HEALTH_CHECK_FLAP = Scenario(
    name="health_check_flap",
    title=f"check_health fails {SERVE_REPLICA_UNHEALTHY_THRESHOLD - 1} times in a row on one replica, then passes "
          "(period 1 s, timeout 10 s)",
    promise=f"Serve restarts a replica only after {SERVE_REPLICA_UNHEALTHY_THRESHOLD} failed checks in a row: a "
            f"flap of {SERVE_REPLICA_UNHEALTHY_THRESHOLD - 1} replaces nothing and fails no request.",
    fault=HealthFlap(),
    app=SCENARIO_APP,
    on_user_app="skip",
    skip_reason="the flap is SleepyPid's own toggle mode (mode=flap&failures=N); the documented toggle has "
                "raise|hang|ok",
    # A 10 s timeout: the flap fails at once, and one slow passing check after it must not count as
    # the third failure in a row.
    app_options={"health_check_period_s": 1.0, "health_check_timeout_s": 10.0},
    needs=("health_toggle",),
    slo=SLO(min_availability_during_fault=0.999, max_recovery_s=REPLACE_SLACK_S),
    expected_churn={"replica": "none", "proxy": "none", "controller": "none", "pod": "none"},
    min_observe_s=15.0,
    deadline_s=45.0,
)


@pytest.mark.scenario(HEALTH_CHECK_RAISE_FAST)
def test_health_check_raise_fast(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.nightly_only  # health_check_raise_fast (the same kill path, a 1 s period) runs in CI
@pytest.mark.scenario(HEALTH_CHECK_RAISE_DEFAULT)
def test_health_check_raise_default(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(HEALTH_CHECK_HANG_FAST)
def test_health_check_hang_fast(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(HEALTH_CHECK_FLAP)
def test_health_check_flap(scenario_result):
    scenario_result.assert_promises()
