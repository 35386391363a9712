"""Strict spreading (the guide: "Spreading replicas across nodes").

With ``max_replicas_per_node=1`` "you're effectively strict spreading the
deployment replicas": 3 replicas land on the 3 nodes, and losing one node costs
at most the one replica on it.  The lost replica can only come back on the
replacement node (up 10 s after the loss), since every other node already has one.
"""

import pytest

from harness.checks import SLO, capacity_floor, ray_node_death, replica_spread, strict_spread
from harness.faults import NodeLoss
from harness.scenario import Scenario
from runtime.app.serve_config import SleepyPidConfig
from runtime.ray_settings import silent_node_death_bound_s

NODE_DEATH_BOUND_S = silent_node_death_bound_s() + 3.0

STRICT_SPREADING = Scenario(
    name="strict_spreading",
    title="max_replicas_per_node=1: 3 replicas on 3 nodes, then lose a worker node",
    promise="Replicas land on distinct nodes; losing a node costs at most the replica on it; it comes back "
            "on the replacement node.",
    fault=NodeLoss(pod_role="worker", replacement_delay_s=10.0),
    app=SleepyPidConfig(num_replicas=3, max_replicas_per_node=1),
    slo=SLO(
        max_outage_s=1.0,
        max_fault_effect_s=NODE_DEATH_BOUND_S,
        max_recovery_s=NODE_DEATH_BOUND_S + 25.0,
    ),
    expected_churn={"replica": "victims", "pod": "victims", "proxy": "victims_left", "controller": "none"},
    extra_checks=(strict_spread, capacity_floor),
    extra_metrics=(ray_node_death, replica_spread),
    deadline_s=150.0,
)


@pytest.mark.scenario(STRICT_SPREADING)
def test_strict_spreading(scenario_result):
    scenario_result.assert_promises()
