"""Worker node lost (the guide: "Worker node failure", the node variant).

Abrupt: the node's network goes silent first (peers see timeouts, not
refusals), then every pod on it is SIGKILLed; a replacement worker pod comes
up on a spare node 10 s later.  Promise: the other nodes keep serving; the
lost node's replicas are respawned on healthy nodes.  Measured: how long Ray
takes to declare the node dead, and the recovery after it.  The app keeps the
guide's default (soft) spreading, so the report also states the spread Serve
achieved and what losing one node cost (``strict_spreading`` is the contrast).
"""

import pytest

from serve_chaos.harness.bounds import node_loss_bounds
from serve_chaos.harness.checks import SLO, capacity_floor, ray_node_death, recreated_pods, replica_spread
from serve_chaos.harness.deviations import KnownDeviation
from serve_chaos.harness.faults import NodeLoss
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import SleepyPidConfig

REPLACEMENT_DELAY_S = 10.0

CACHED_SILENT_REPLICAS = (
    "a router keeps sending new requests to a silent node's replicas while their queue-length cache entries "
    "last (RAY_SERVE_QUEUE_LENGTH_CACHE_TIMEOUT_S, 10 s in Ray 2.60 constants.py): such a request hangs until "
    "the client's timeout, since a silent node answers with no error that would drop the replica "
    "(ray-project/ray#47008 handles ActorUnavailableError only once one arrives); seen once, on the k8s target "
    "in a fresh-clone CI run: 7 of 1391 requests through the head's proxy sent 0.3-6.2 s after the node went "
    "silent timed out at 5 s (0.9950 against the 0.999 floor)"
)


def bounds(settings: dict) -> dict:
    """Ray declares the silent node dead (5 x (10 s timeout + 3 s period) with its defaults);
    on Kubernetes PodGC then collects the node's pods (harness/bounds.py)."""
    return node_loss_bounds(settings, REPLACEMENT_DELAY_S, needs_replacement_pod=False)


WORKER_NODE_FAILURE = Scenario(
    name="worker_node_failure",
    title="lose a worker node (silent network, then SIGKILL) under load",
    promise="Other nodes keep serving; the lost node's replicas are respawned elsewhere; other replicas keep their PIDs.",
    fault=NodeLoss(pod_role="worker", replacement_delay_s=REPLACEMENT_DELAY_S),
    # The guide's app exactly: max_replicas_per_node unset (a user's app: as it is).
    app=SleepyPidConfig().spec(),
    load=LoadSpec(rate=15.0, endpoints=("front", "role:head", "pods:worker")),
    slo=SLO(
        # Proxies on healthy nodes keep serving: requests already in flight to the lost
        # node's replicas are lost with it -- a blip, never an outage or a brownout.
        other_pods_min_availability_during_fault=0.999,
        other_pods_max_outage_s=1.0,
        max_outage_s=1.0,
        **bounds({}),
    ),
    # With soft spreading a node may host no replica; its proxy is idle and Serve may
    # drain it as replicas move: only such proxies may go besides the lost node's.
    expected_churn={"replica": "victims", "pod": "victims", "proxy": "victims_or_idle", "controller": "none"},
    extra_checks=(capacity_floor,),
    extra_metrics=(ray_node_death, replica_spread, recreated_pods),
    bounds=bounds,
    deadline_s=150.0,
    known_intermittent={"other_pods.availability_during_fault": KnownDeviation(CACHED_SILENT_REPLICAS)},
)


@pytest.mark.k8s_in_ci
@pytest.mark.scenario(WORKER_NODE_FAILURE)
def test_worker_node_failure(scenario_result):
    scenario_result.assert_promises()
