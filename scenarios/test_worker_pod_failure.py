"""Worker pod deleted (the guide: "Worker node failure", the pod variant).

`kubectl delete pod` on a worker: preStop `ray stop`, SIGTERM, grace period,
SIGKILL; KubeRay recreates the pod.  Promise: traffic keeps flowing; the
killed pod's replicas are replaced elsewhere and all other replicas keep their
PIDs.  The report says what became of the recreated pod (Serve does not
rebalance replicas onto it, so it often runs no proxy and is not Ready).
"""

import pytest

from serve_chaos.harness.bounds import REPLACE_SLACK_S, replica_start_s
from serve_chaos.harness.checks import SLO, recreated_pods, replica_spread
from serve_chaos.harness.faults import PodKill
from serve_chaos.harness.scenario import Scenario

#: The graceful stop itself: preStop ``ray stop`` and SIGTERM end the pod's Ray processes (s).
POD_STOP_S = 15.0


def bounds(settings: dict) -> dict:
    """The stop tells GCS at once; the controller replaces the pod's replicas elsewhere
    (the app's own replica start)."""
    return {"max_recovery_s": POD_STOP_S + replica_start_s(settings) + REPLACE_SLACK_S}


WORKER_POD_FAILURE = Scenario(
    name="worker_pod_failure",
    title="kubectl delete a worker pod (preStop ray stop, SIGTERM, grace) under load",
    promise="Traffic keeps flowing; only the deleted pod's replicas (and its proxy) are replaced; the pod is recreated.",
    fault=PodKill(pod_role="worker", graceful=True),
    slo=SLO(
        # Requests in flight on the stopping replicas and proxy may fail; no
        # promise covers them, so a handful is allowed, an outage is not.
        min_availability_during_fault=0.99,
        max_outage_s=1.0,
        **bounds({}),
    ),
    bounds=bounds,
    expected_churn={"replica": "victims", "pod": "victims", "proxy": "victims_left", "controller": "none"},
    extra_metrics=(recreated_pods, replica_spread),
)


@pytest.mark.k8s_in_ci
@pytest.mark.scenario(WORKER_POD_FAILURE)
def test_worker_pod_failure(scenario_result):
    scenario_result.assert_promises()
