"""Deployment replica failure (the guide: "Deployment replica failure").

Promise: while a killed replica is restarted, the other replicas keep
processing requests; eventually a new replica replaces it.
"""

import pytest

from harness.bounds import replica_replaced_bounds
from harness.checks import SLO
from harness.faults import ReplicaKill
from harness.scenario import Scenario

REPLICA_FAILURE = Scenario(
    name="replica_failure",
    title="ray.kill a replica (no_restart=True) under load",
    promise="Other replicas keep serving while the killed replica is replaced; only its PID changes.",
    fault=ReplicaKill(),
    slo=SLO(
        # The guide promises uninterrupted service; a request in flight on the
        # killed replica may fail, hence a single-request blip at most.
        min_availability_during_fault=0.995,
        max_outage_s=1.0,
        # The controller notices the death, then the app's own replica start.
        **replica_replaced_bounds({}),
    ),
    bounds=replica_replaced_bounds,
    expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
)


@pytest.mark.scenario(REPLICA_FAILURE)
def test_replica_failure(scenario_result):
    scenario_result.assert_promises()
