"""Deployment replica failure (the guide: "Deployment replica failure").

Promise: while a killed replica is restarted, the other replicas keep
processing requests; eventually a new replica replaces it.
"""

import pytest

from serve_chaos.harness.bounds import replica_replaced_bounds
from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults import ReplicaKill
from serve_chaos.harness.scenario import Scenario

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
    # Who served a request comes from Serve's own logs; SleepyPid's body PID cross-checks
    # them (a user's app returns no PID: nothing to cross-check).  A PID two replicas had
    # (pods with PID namespaces of their own, as on Kubernetes) cross-checks nothing.
    served = scenario_result.evaluation.metrics["served_by"]
    with_pid = int(scenario_result.history.judged_requests()["pid"].notna().sum())
    checkable = with_pid - int(served.get("pid_ambiguous", 0))
    if checkable:
        assert served["both"] >= 0.9 * checkable, f"Serve's logs named the replica of only {served}"
        assert served["agree"] == served["both"], f"Serve's logs and the body PID disagree: {served}"
