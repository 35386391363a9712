"""A chained composition (issue: "Failures during change"): the ingress passes ``Embed``'s
unresolved response into its call to ``Score`` (``runtime/app/chained.py``), and one replica of
one stage is killed under load.

Promise (Serve docs "Deploy Compositions of Models": replicas of a deployment keep serving while
one is replaced; Ray 2.60 ``serve/_private/router.py``: an ActorDiedError met while resolving an
*upstream* response passed into a call becomes ``_make_upstream_crash_error`` before a replica is
chosen, and one from a chosen replica drops it only when that replica is the dead actor --
``_handle_actor_died_error``: "this replica is healthy but the request failed due to a bad
input"; either way the caller gets a fast error and the healthy replica stays routed):
- the ingress keeps serving through the other replicas of the killed stage; only calls in flight
  on the dead replica may fail (no outage over 1 s);
- when ``Embed`` (upstream) loses a replica, every router keeps routing to every ``Score`` replica
  (an upstream death does not drop a healthy downstream replica); when ``Score`` (the last stage)
  loses one, nothing downstream of it is left to judge;
- only the killed replica changes, and it is replaced within a replica start.
"""

import pytest

from serve_chaos.harness.bounds import replica_replaced_bounds
from serve_chaos.harness.checks import SLO, failures_after_fault
from serve_chaos.harness.checks.stages import other_stage_routed, stage_calls
from serve_chaos.harness.faults import ReplicaKill
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import CHAINED_APP

SKIP_USER_APP = "it is shaped around the bundled chained example; downstream_replica_failure aims at your app"


def stage_failure(killed: str, other: str | None) -> Scenario:
    """``other``: the downstream stage whose routing a death upstream must not disturb (None when the
    killed stage is the last: nothing downstream of it to judge)."""
    return Scenario(
        name=f"chained_{killed.lower()}_failure",
        title=f"chained app: ray.kill one {killed} replica under load at the ingress",
        promise=f"The ingress keeps serving through the other {killed} replicas; "
                + (f"every router keeps routing to every {other} replica; " if other else "")
                + f"only the killed {killed} replica changes.",
        fault=ReplicaKill(deployment=f"chained/{killed}"),
        app=CHAINED_APP,
        on_user_app="skip",
        skip_reason=SKIP_USER_APP,
        load=LoadSpec(rate=10.0, endpoints=("front", "role:head", "pods:worker")),
        slo=SLO(min_availability_during_fault=0.99, max_outage_s=1.0, **replica_replaced_bounds({})),
        bounds=replica_replaced_bounds,
        expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
        extra_checks=(other_stage_routed(f"chained/{other}"),) if other else (),
        extra_metrics=(failures_after_fault, stage_calls),
        min_observe_s=15.0,
    )


CHAINED_EMBED_FAILURE = stage_failure("Embed", "Score")
# Embed is called before Score and never sees Score's errors: no check of its routing could fail.
CHAINED_SCORE_FAILURE = stage_failure("Score", None)


@pytest.mark.scenario(CHAINED_EMBED_FAILURE)
def test_chained_embed_failure(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(CHAINED_SCORE_FAILURE)
def test_chained_score_failure(scenario_result):
    scenario_result.assert_promises()
