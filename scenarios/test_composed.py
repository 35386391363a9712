"""Composed apps: an ingress calling a downstream deployment through a DeploymentHandle.

The bundled composed example (``runtime/app/composed.py``: ``Ingress`` awaits a
``Downstream`` call per request, 3 replicas each, at most 2 per node); with a user's
``--app``, the deployment of theirs that another one calls.  Faults hit the
downstream deployment; availability is judged where users see it, at the
ingress.  Who served what comes from Serve's request logs only -- neither
deployment returns a bare PID.

What Serve does with a handle call in flight on a replica that dies is
measured (``failures_after_fault``): the router retries a call only when the
replica died before it took the call (``ray/serve/_private/router.py``: an
``ActorDiedError`` once the call was accepted reaches the caller).  Serve's docs
promise that other replicas keep serving, not that in-flight calls survive,
so a blip of those is allowed and reported, an outage is not.
"""

from dataclasses import replace

import pytest

from serve_chaos.harness.bounds import REPLACE_SLACK_S, replica_replaced_bounds, replica_start_s
from serve_chaos.harness.checks import SLO, failures_after_fault, replica_spread
from serve_chaos.harness.faults import DOWNSTREAM, MassReplicaKill, ReplicaHang, ReplicaKill
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import COMPOSED_APP
from .test_replica_hang import REPLICA_HANG


def all_downstream_bounds(settings: dict) -> dict:
    """Every downstream replica gone: the ingress fails until the first replacement
    starts (the app's own replica start), then recovers fully."""
    start = replica_start_s(settings)
    return {"max_outage_s": start + REPLACE_SLACK_S, "max_recovery_s": start + 2 * REPLACE_SLACK_S}


DOWNSTREAM_REPLICA_FAILURE = Scenario(
    name="downstream_replica_failure",
    title="composed app: ray.kill one downstream replica (no_restart=True) under load at the ingress",
    promise="The ingress keeps serving through the other downstream replicas while the killed one is replaced; "
            "only calls in flight on it may fail.",
    fault=ReplicaKill(deployment=DOWNSTREAM),
    app=COMPOSED_APP,
    slo=SLO(min_availability_during_fault=0.99, max_outage_s=1.0, **replica_replaced_bounds({})),
    bounds=replica_replaced_bounds,
    expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
    extra_metrics=(failures_after_fault, replica_spread),
)

# replica_hang's promise, bounds and churn, aimed at a downstream replica of the composed app.
DOWNSTREAM_REPLICA_HANG = replace(
    REPLICA_HANG,
    name="downstream_replica_hang",
    title="composed app: freeze one downstream replica (SIGSTOP) under load at the ingress",
    promise="Serve's health check finds the frozen downstream replica and replaces it within the bound its "
            "settings imply; the ingress keeps serving through the others.",
    fault=ReplicaHang(deployment=DOWNSTREAM),
    app=COMPOSED_APP,
)

DOWNSTREAM_ALL_REPLICAS_KILL = Scenario(
    name="downstream_all_replicas_kill",
    title="composed app: ray.kill every downstream replica at once under load at the ingress",
    promise="The ingress fails only until the first downstream replacement starts, and recovers fully.",
    fault=MassReplicaKill(deployment=DOWNSTREAM),
    app=COMPOSED_APP,
    slo=SLO(**all_downstream_bounds({})),
    bounds=all_downstream_bounds,
    expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
    extra_metrics=(failures_after_fault,),
    deadline_s=90.0,
)


@pytest.mark.scenario(DOWNSTREAM_REPLICA_FAILURE)
def test_downstream_replica_failure(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.nightly_only  # replica_hang (the same freeze and health-check path) runs in CI
@pytest.mark.scenario(DOWNSTREAM_REPLICA_HANG)
def test_downstream_replica_hang(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(DOWNSTREAM_ALL_REPLICAS_KILL)
def test_downstream_all_replicas_kill(scenario_result):
    scenario_result.assert_promises()
