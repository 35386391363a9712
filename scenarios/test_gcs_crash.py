"""The GCS process alone crashes (issue: "Failures during change"): SIGKILL ``gcs_server`` in the
head pod while Redis stays up.  KubeRay v1.7.0's TestRayServiceGCSFaultTolerance
(``ray-operator/test/e2erayservice/rayservice_ha_test.go``) ends it with ``pkill gcs_server``
(SIGTERM) and expects the same head pod back with RestartCount 1; a crash is a SIGKILL, which
``ray start --block`` answers by ending the head's other Ray processes and exiting (Ray 2.60
``scripts/scripts.py``), so the head container restarts in place and its GCS reloads from Redis.

Promise (the guide, "Head node failure" with GCS fault tolerance: "the Ray cluster keeps serving
... worker nodes continue to serve"; Ray 2.60 routers route without the GCS):
- no request fails through the worker pods; the front door has no outage over 1 s (it drops the
  head within its lag);
- while the GCS is away, each worker pod's proxy keeps sending to every replica on its node;
- once the head is back, the cluster returns to steady state, and a redeploy (an in-place update
  of the Serve config) goes through with no request failing.
"""

import pytest

from serve_chaos.harness.bounds import REPLACE_SLACK_S, lagging_front_door_bounds
from serve_chaos.harness.checks import SLO, dashboard_downtime, replica_spread
from serve_chaos.harness.checks.gcsaway import routers_kept_spreading
from serve_chaos.harness.faults import GcsCrash, InplaceUpdate
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Followup, Scenario

GCS_CRASH = Scenario(
    name="gcs_crash",
    title="SIGKILL gcs_server in the head pod (Redis up) under load, then redeploy",
    promise="No request fails through the workers while the head restarts; their routers keep spreading load "
            "over their replicas; the cluster heals and a redeploy afterwards goes through.",
    fault=GcsCrash(),
    load=LoadSpec(rate=15.0, endpoints=("front", "role:head", "pods:worker")),
    slo=SLO(max_outage_s=1.0, endpoint_availability={"pods:worker": 1.0},
            # The head's Ray start, its GCS reload from Redis, the controller and the head's replicas
            # (10 s constructor) back: as gcs_store_lost after Redis returned.
            max_recovery_s=60.0, **lagging_front_door_bounds({})),
    bounds=lagging_front_door_bounds,
    expected_churn={"replica": "none_outside:head", "proxy": "none_outside:head", "controller": "any",
                    "pod": "none_outside:head"},
    extra_checks=(routers_kept_spreading,),
    extra_metrics=(dashboard_downtime, replica_spread),
    followups=(
        Followup(name="redeploy_after", fault=InplaceUpdate(),
                 slo=SLO(min_availability_during_fault=1.0, max_recovery_s=REPLACE_SLACK_S),
                 expected_churn={"replica": "none", "proxy": "none", "controller": "none", "pod": "none"}),
    ),
    deadline_s=120.0,
)


@pytest.mark.scenario(GCS_CRASH)
def test_gcs_crash(scenario_result):
    scenario_result.assert_promises()
