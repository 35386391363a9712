"""Head pod killed with GCS fault tolerance off: the contrast that shows what GCS FT buys.

The guide: "Without GCS fault tolerance, KubeRay restarts all worker pods when
the head pod crashes, so you'll need to wait for the workers to restart and the
deployments to reinitialize."  Expected: a full restart in which every replica,
proxy and controller PID changes, and an outage through every endpoint until
the new cluster serves.  Compare its outage and recovery with
``head_failure_gcs_ft`` in the verdict table.
"""

import pytest

from serve_chaos.harness.checks import SLO, dashboard_downtime, recreated_pods, replica_spread
from serve_chaos.harness.faults import PodKill
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario

HEAD_FAILURE_NO_GCS_FT = Scenario(
    name="head_failure_no_gcs_ft",
    title="delete the head pod with GCS FT off under load (the cluster restarts)",
    promise="Without GCS FT the whole cluster restarts: every replica, proxy and controller PID changes; "
            "service returns once the new cluster has redeployed.",
    fault=PodKill(pod_role="head", graceful=True, restarts_cluster=True),
    gcs_ft=False,
    load=LoadSpec(rate=15.0, endpoints=("front", "role:head", "pods:worker")),
    slo=SLO(
        # 30 s drain of the deleted head, new head, KubeRay restarts the workers,
        # the operator redeploys, 10 s constructor.
        max_recovery_s=150.0,
    ),
    # Victims are every Ray pod and every Serve actor; Redis is not part of the cluster.
    expected_churn={"replica": "victims", "proxy": "victims_left", "controller": "victims", "pod": "victims"},
    extra_metrics=(dashboard_downtime, replica_spread, recreated_pods),
    deadline_s=200.0,
)


@pytest.mark.scenario(HEAD_FAILURE_NO_GCS_FT)
def test_head_failure_no_gcs_ft(scenario_result):
    scenario_result.assert_promises()
