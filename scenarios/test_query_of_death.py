"""A query of death under load (issue: "Failures during change"): a request that makes the replica
serving it exit, sent twice -- a client that retries once.

Promise (Ray 2.60 ``serve/_private/router.py`` ``_handle_actor_died_error``: a router whose call
fails with ActorDiedError drops that replica from its routing set at once, "will not be
considered for future requests", without waiting for the controller; ``deployment_state.py``
replaces a dead replica):
- the loss is bounded by what was in flight on the dying replica: at most its
  ``max_ongoing_requests`` (5) per poison request;
- the routers stop sending to the dead replica before the controller's health check (10 s period)
  would have: failures span at most a few seconds;
- no cascade inside Serve: each poison request takes at most one replica with it; the client's
  retry takes another (reported);
- the dead replicas are replaced within a replica start.
"""

import pytest

from serve_chaos.harness.bounds import replica_replaced_bounds
from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults.poison import QueryOfDeath, one_replica_per_poison, poison_answers
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import PLANNED_APP

#: SleepyPid's ``max_ongoing_requests`` (Serve's default): what one dying replica can hold in flight.
MAX_ONGOING = 5
SENDS = 2

QUERY_OF_DEATH = Scenario(
    name="query_of_death",
    title="send a request that makes its replica exit, and retry it once, under load",
    promise="Only requests in flight on the dying replica fail (at most max_ongoing_requests each); the routers "
            "drop a dead replica at once, before a health check would; each poison request kills at most one "
            "replica; the dead replicas are replaced.",
    fault=QueryOfDeath(sends=SENDS),
    app=PLANNED_APP,
    on_user_app="skip",
    skip_reason="it needs a request that crashes a replica; the bundled SleepyPid has one (GET /?serve_chaos_exit=1)",
    load=LoadSpec(rate=15.0, endpoints=("front", "role:head", "pods:worker")),
    slo=SLO(max_failed_during_fault=SENDS * MAX_ONGOING, max_failure_span_s=5.0, **replica_replaced_bounds({})),
    bounds=replica_replaced_bounds,
    expected_churn={"replica": "any", "proxy": "none", "controller": "none", "pod": "none"},
    extra_checks=(one_replica_per_poison,),
    extra_metrics=(poison_answers,),
    min_observe_s=15.0,
    deadline_s=90.0,
)


@pytest.mark.scenario(QUERY_OF_DEATH)
def test_query_of_death(scenario_result):
    scenario_result.assert_promises()
