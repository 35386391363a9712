"""A hung replica (any app): its process frozen with SIGSTOP.

Unlike a raising ``check_health`` (which needs the app's cooperation), a frozen
process is something every app can suffer -- a deadlock, a GC pause, a stuck
native call.  Ray still counts the actor alive; only Serve's health check,
timing out, finds it.  Promise (the guide, "Replica health-checking"): the
controller kills the unhealthy replica and restarts it, within the bound the
deployment's health-check period and timeout and graceful shutdown imply;
requests keep being served by the other replicas.
"""

import pytest

from serve_chaos.harness.bounds import unhealthy_replica_bounds
from serve_chaos.harness.checks import SLO, failures_after_fault, replica_spread
from serve_chaos.harness.faults import ReplicaHang
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import FAST_HEALTH_CHECK

REPLICA_HANG = Scenario(
    name="replica_hang",
    title="freeze one replica's process (SIGSTOP) under load (health check period 1 s, timeout 2 s)",
    promise="The frozen replica is found by its health check and replaced within the bound its settings imply; "
            "the other replicas keep serving.",
    fault=ReplicaHang(),
    app_options=FAST_HEALTH_CHECK,
    slo=SLO(min_availability_during_fault=0.95, **unhealthy_replica_bounds("hang")(FAST_HEALTH_CHECK)),
    bounds=unhealthy_replica_bounds("hang"),
    expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
    extra_metrics=(failures_after_fault, replica_spread),
    deadline_s=90.0,
)


@pytest.mark.scenario(REPLICA_HANG)
def test_replica_hang(scenario_result):
    scenario_result.assert_promises()
