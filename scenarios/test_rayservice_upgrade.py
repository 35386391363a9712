"""RayService upgrade under load (issue 16 item 5; the kind target).

A change to the RayService's ``rayClusterConfig`` -- an env var in the Ray pods' template
-- starts KubeRay's zero-downtime upgrade (KubeRay v1.7.0, ``ray-operator/controllers/ray/
rayservice_controller.go``): a pending RayCluster comes up beside the active one
(shouldPrepareNewCluster, createRayClusterInstance), the Serve config is submitted to it
(reconcileServe), the head and Serve Services are switched to it once all its Serve
applications are RUNNING (reconcileServicesToReadyCluster -> reconcileServices), it is
promoted (reconcilePromotionAndServingStatus), and the old cluster is deleted
``RayClusterDeletionDelayDuration`` (60 s) later (cleanUpRayClusterInstance).  KubeRay's
documentation ("RayService" -> "zero-downtime upgrade") promises that traffic keeps being
served throughout.

Promise: no request through the Serve Service fails; every Ray pod and every Serve replica,
proxy and controller is replaced exactly once (the new cluster's); the old RayCluster is
gone at the end.  Load goes through the front door only: the old cluster's own pods are
deleted with it.  Skipped where the target cannot upgrade a cluster (``upgrade_cluster``:
the local target does not, unless its operator learns to).
"""

import pytest

from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults.upgrade import RayServiceUpgrade, old_cluster_deleted
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario

#: A new RayCluster on Kubernetes: its pods scheduled and started (images preloaded), Ray up, the
#: Serve config deployed (SleepyPid's 10 s constructor), the switch (KubeRay reconciles
#: every 2 s).  No source promises a duration: this is a bound a user would accept (s).
UPGRADE_BOUND_S = 420.0

RAYSERVICE_UPGRADE = Scenario(
    name="rayservice_upgrade",
    title="change the RayService's rayClusterConfig under load (KubeRay's zero-downtime upgrade)",
    promise=("No request through the Serve Service fails; every Ray pod and Serve replica is replaced exactly "
             "once; the old RayCluster is deleted at the end (KubeRay v1.7.0 rayservice_controller.go)."),
    fault=RayServiceUpgrade(),
    load=LoadSpec(endpoints=("front",)),
    slo=SLO(
        min_availability_during_fault=1.0,
        max_outage_s=0.0,
        max_recovery_s=UPGRADE_BOUND_S,
    ),
    # "victims": exactly the old ones left and as many new ones appeared -- each replaced once.
    # Proxies: every old one leaves; the new cluster runs one on each node that hosts replicas,
    # which need not be as many (measured on the k8s target: an old cluster whose recreated
    # worker had no replica ran 2 proxies, its successor 3).
    expected_churn={"pod": "victims", "replica": "victims", "proxy": "victims_left", "controller": "victims"},
    extra_checks=(old_cluster_deleted,),
    min_observe_s=20.0,
    deadline_s=UPGRADE_BOUND_S + 60.0,
)


@pytest.mark.k8s_in_ci
@pytest.mark.scenario(RAYSERVICE_UPGRADE)
def test_rayservice_upgrade(scenario_result):
    scenario_result.assert_promises()
