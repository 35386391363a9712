"""A worker pod deleted gracefully while 2 s requests run on every path (issue: "Failures during
change", item 9): the front door, the head's proxy and each worker's own proxy all carry requests
that are still running when the pod goes.

What Ray 2.60 and KubeRay v1.7.0 promise here: a graceful pod deletion is not a drain.  The
worker's preStop ``ray stop`` (the bundled manifests', as KubeRay's samples do) and the SIGTERM
after it end the pod's raylet, replicas and proxy at once; Serve's graceful shutdown
(``graceful_shutdown_timeout_s``) applies only to replicas the controller stops, and a pod's
grace period only bounds how long its processes may take to exit.  So the requests in flight on
the pod's replicas and proxy may fail -- those and no others: a request sent after the deletion
must succeed through any other endpoint (the front door stops sending to a terminating pod, the
routers drop its dead replicas on their first ActorDiedError).  ``node_drain`` is the way to
take a node out with nothing failing; this scenario measures what a plain delete costs.
"""

import pytest

from serve_chaos.harness.checks import SLO, recreated_pods, replica_spread
from serve_chaos.harness.checks.inflight import failures_sent_after, in_flight_losses
from serve_chaos.harness.faults import PodKill
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import LONG_REQUEST_APP
from .test_worker_pod_failure import bounds

POD_DELETE_LONG_REQUESTS = Scenario(
    name="pod_delete_long_requests",
    title="kubectl delete a worker pod (graceful) while 2 s requests run on every endpoint",
    promise="A graceful delete is not a drain: requests in flight on the deleted pod may fail, no request sent "
            "after it does (off that pod's own endpoint); its replicas are replaced, the pod recreated.",
    fault=PodKill(pod_role="worker", graceful=True),
    app=LONG_REQUEST_APP,
    on_user_app="run",
    # 2 requests/s per endpoint, 2 s each: ~16 in flight over 6 replicas (max_ongoing_requests 5).
    load=LoadSpec(rate=2.0, timeout_s=10.0, endpoints=("front", "role:head", "pods:worker")),
    slo=SLO(**bounds({})),
    bounds=bounds,
    expected_churn={"replica": "victims", "pod": "victims", "proxy": "victims_left", "controller": "none"},
    extra_checks=(failures_sent_after,),
    extra_metrics=(in_flight_losses, recreated_pods, replica_spread),
)


@pytest.mark.scenario(POD_DELETE_LONG_REQUESTS)
def test_pod_delete_long_requests(scenario_result):
    scenario_result.assert_promises()
