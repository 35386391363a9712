"""Head pod killed with GCS fault tolerance on (the guide: "Head node failure" + "Head node
recovery: Ray GCS fault tolerance").

Promise: "your worker pod can continue serving traffic without restarting when
the head pod crashes and recovers"; worker replicas keep their PIDs; the head
comes back on the same Redis and the cluster returns to normal.  Measured:
head downtime (as the dashboard sees it), traffic through the front door and
through each worker directly, and the time to full steady state.
"""

import pytest

from serve_chaos.harness.deviations import KnownDeviation
from serve_chaos.harness.checks import SLO, dashboard_downtime, recreated_pods, replica_spread, serve_when_ready
from serve_chaos.harness.faults import PodKill
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario

READY_BEFORE_ROUTING = (
    "the restarted head's proxy answers /-/healthz 'success' as soon as it has routes, before it has "
    "replicas (by design on the head: ray-project/ray#46938, #62213), while the recovering controller "
    "holds back the replica broadcast (ray-project/ray#62751); a readiness-gated Service sends it "
    "traffic and those requests hang until they time out"
)

HEAD_EXIT_IN_FLIGHT = (
    "a request in flight through a surviving worker's proxy may time out at the moment the drained "
    "head's Ray processes exit (seen once: 1 of ~900 worker-proxy requests, a 5 s timeout at +30 s)"
)

GHOST_REPLICAS = (
    "on Kubernetes the recovering Serve controller counts the replicas the drained head had already stopped "
    "as live ('Recovering current state ... from 6 live actors': the restarted GCS keeps the old head node ALIVE "
    "for a while, ray-project/ray#39122) and waits SLOW_STARTUP_WARNING_S (30 s) before it gives them up and "
    "starts replacements; with KubeRay recreating the head only once the old pod is gone (30 s grace) at a new "
    "address, recovery took 111-121 s in 3 runs on the k8s target (real KubeRay v1.6.2), past the 120 s bound"
)

WORKERS_RECOVERING = (
    "on Kubernetes a surviving worker's replicas may be replaced too: the recovering controller gives up on a "
    "replica that does not answer within SLOW_STARTUP_WARNING_S (30 s; 'Stopping Replica ... (currently "
    "ReplicaState.RECOVERING)') while its worker has not yet found the restarted head, which KubeRay recreated "
    "at a new address behind the headless head Service (seen in 2 of 3 runs on the k8s target)"
)

HEAD_FAILURE_GCS_FT = Scenario(
    name="head_failure_gcs_ft",
    title="delete the head pod with GCS FT on (external Redis) under load",
    promise="Workers keep serving without restarting; worker replica PIDs do not change; the head "
            "returns on the same Redis and the cluster heals.",
    fault=PodKill(pod_role="head", graceful=True),
    gcs_ft=True,
    # The head's own endpoint too (its address is stable, like a Service), to see
    # when the restarted head's proxy really serves.
    load=LoadSpec(rate=15.0, endpoints=("front", "role:head", "pods:worker")),
    slo=SLO(
        other_pods_min_availability_during_fault=1.0,
        # The deleted head leaves the front door at once; the workers answer.
        min_availability_during_fault=0.99,
        max_outage_s=1.0,
        # `kubectl delete pod`: Ray 2.60 drains the head for up to the 30 s grace
        # period first; then head back, GCS reloaded from Redis, controller
        # restarted, the head's replicas replaced (10 s constructor): 30 + 90 s.
        max_recovery_s=120.0,
    ),
    expected_churn={"replica": "victims", "controller": "victims", "proxy": "victims_left", "pod": "victims"},
    extra_checks=(serve_when_ready,),
    extra_metrics=(dashboard_downtime, replica_spread, recreated_pods),
    deadline_s=170.0,
    # A race: in 4 of 5 runs here the restarted head's proxy took traffic before it had
    # replicas; in the fifth its replicas came first.  And once in 5 runs one request in
    # flight through a surviving worker's proxy timed out the moment the drained head's
    # Ray processes exited (served-by logs of later runs name the replica it went to).
    # Ray 2.40.0 and 2.50.0 kept the promise (serve-chaos matrix, README): their deleted head left
    # at once and the cluster healed in 29-31 s; 2.60.0 drains it for the 30 s grace period and
    # heals in 85-98 s, and its restarted head takes traffic before it can route.  Bisected over
    # 2.50.0..2.60.0 (2026-12-06: 2.54.1, 2.57.0, 2.58.0, 2.58.1, 2.59.0 kept): since 2.60.0.
    known_intermittent={
        "pods.serve_when_ready": KnownDeviation(READY_BEFORE_ROUTING, since="2.60.0"),
        "front.availability_during_fault": KnownDeviation(READY_BEFORE_ROUTING, since="2.60.0"),
        "other_pods.availability_during_fault": KnownDeviation(HEAD_EXIT_IN_FLIGHT, since="2.60.0"),
        "recovery_s": KnownDeviation(GHOST_REPLICAS, since="2.60.0", targets=("k8s",)),
        "churn.replica": KnownDeviation(WORKERS_RECOVERING, since="2.60.0", targets=("k8s",)),
    },
)


@pytest.mark.k8s_in_ci
@pytest.mark.scenario(HEAD_FAILURE_GCS_FT)
def test_head_failure_gcs_ft(scenario_result):
    scenario_result.assert_promises()
