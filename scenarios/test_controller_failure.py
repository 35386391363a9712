"""Serve controller failure (the guide: "Serve controller failure").

Promise: queries keep working while the controller is dead and recovering; a
new controller starts (here, as on KubeRay, because the RayService operator
re-applies the Serve config); replicas and proxies are untouched.
"""

import pytest

from harness.checks import SLO
from harness.faults import ControllerKill
from harness.scenario import Scenario

CONTROLLER_FAILURE = Scenario(
    name="controller_failure",
    title="ray.kill the Serve controller (no_restart=True) under load",
    promise="Queries keep working while the controller recovers; only the controller PID changes.",
    fault=ControllerKill(),
    slo=SLO(
        min_availability_during_fault=0.999,
        max_outage_s=1.0,
        # Operator reconcile (2 s) + new controller start (ray-facts: 6.6-9 s).
        max_recovery_s=30.0,
    ),
    expected_churn={"controller": "victims", "replica": "none", "proxy": "none", "pod": "none"},
)


@pytest.mark.scenario(CONTROLLER_FAILURE)
def test_controller_failure(scenario_result):
    scenario_result.assert_promises()
