"""Strict spreading (the guide: "Spreading replicas across nodes").

With ``max_replicas_per_node=1`` "you're effectively strict spreading the
deployment replicas": 3 replicas land on the 3 nodes, and losing one node costs
at most the one replica on it.  The lost replica can only come back on the
replacement node (up 10 s after the loss locally; on Kubernetes once PodGC has
collected the lost pod), since every other node already has one.
"""

import pytest

from serve_chaos.harness.bounds import node_loss_bounds
from serve_chaos.harness.checks import SLO, capacity_floor, ray_node_death, replica_spread, strict_spread
from serve_chaos.harness.faults import NodeLoss
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import SleepyPidConfig

REPLACEMENT_DELAY_S = 10.0


def bounds(settings: dict) -> dict:
    """Ray declares the silent node dead (5 x (10 s timeout + 3 s period) with its defaults);
    on Kubernetes PodGC then collects the node's pods (harness/bounds.py)."""
    return node_loss_bounds(settings, REPLACEMENT_DELAY_S, needs_replacement_pod=True)


STRICT_SPREADING = Scenario(
    name="strict_spreading",
    title="max_replicas_per_node=1: 3 replicas on 3 nodes, then lose a worker node",
    promise="Replicas land on distinct nodes; losing a node costs at most the replica on it; it comes back "
            "on the replacement node.",
    fault=NodeLoss(pod_role="worker", replacement_delay_s=REPLACEMENT_DELAY_S),
    app=SleepyPidConfig(num_replicas=3, max_replicas_per_node=1).spec(),
    on_user_app="skip",
    skip_reason="its promise is about a deployment reshaped to 3 replicas at 1 per node; set "
                "max_replicas_per_node in your own config and run worker_node_failure",
    slo=SLO(
        max_outage_s=1.0,
        **bounds({}),
    ),
    expected_churn={"replica": "victims", "pod": "victims", "proxy": "victims_left", "controller": "none"},
    extra_checks=(strict_spread, capacity_floor),
    extra_metrics=(ray_node_death, replica_spread),
    bounds=bounds,
    deadline_s=150.0,
)


@pytest.mark.nightly_only  # worker_node_failure and node_drain lose a node in CI, on the k8s target
@pytest.mark.scenario(STRICT_SPREADING)
def test_strict_spreading(scenario_result):
    scenario_result.assert_promises()
