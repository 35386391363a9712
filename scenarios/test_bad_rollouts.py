"""Bad rollouts under load (issue: "Failures during change"): a new version whose constructor
raises, whose ``check_health`` keeps failing, or whose ``reconfigure`` raises on a
``user_config`` change -- deployed through the Serve config as an operator would, kept until
Serve gives up on it, then replaced by the good config again.

Promise (Ray 2.60 ``serve/_private/constants.py`` RAY_SERVE_STOP_FAILED_ROLLING_UPDATES, on by
default: "Stop rolling updates at the startup failure threshold, including health check
failures. Keep surviving replicas until a deploy changes the target"; ``deployment_state.py``
``_mark_rolling_update_failed_if_needed``; the Serve docs' "Deploy Ray Serve config": a config
that fails leaves the application DEPLOY_FAILED):
- clients see nothing fail: the old replicas keep serving;
- at most one rollout batch of old replicas is stopped (``max(int(0.2 x target), 1)``, the batch
  stopped before its new replica failed); the others stay RUNNING throughout;
- Serve reports the deployment DEPLOY_FAILED once its new replicas failed
  ``min(20, 3 x target)`` times;
- once the good config is deployed again, the missing replicas start and the deployment is
  healthy within a replica start.
"""

import pytest

from serve_chaos.harness.bounds import replica_replaced_bounds
from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults.badversion import BadRollout, failure_timeline, old_replicas_kept
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import BAD_ROLLOUT_APP

SKIP_USER_APP = ("it deploys a deliberately bad version of the bundled SleepyPid (an env var or user_config "
                 "its code reads); your app has no such switch")


def bad_rollout(mode: str, title: str, promise: str) -> Scenario:
    return Scenario(
        name=f"bad_rollout_{mode}",
        title=title,
        promise=promise,
        fault=BadRollout(mode=mode),
        app=BAD_ROLLOUT_APP,
        on_user_app="skip",
        skip_reason=SKIP_USER_APP,
        # Half the requests do 250 ms of work, so the stopped batch has requests in flight.
        load=LoadSpec(rate=10.0, endpoints=("front",)),
        slo=SLO(min_availability_during_fault=1.0, **replica_replaced_bounds({})),
        bounds=replica_replaced_bounds,
        # The stopped batch is replaced once the good config is back: replicas, and nothing else.
        expected_churn={"replica": "any", "proxy": "none", "controller": "none", "pod": "none"},
        extra_checks=(old_replicas_kept,),
        extra_metrics=(failure_timeline,),
        min_observe_s=20.0,
        deadline_s=240.0,
        after_recovery_s=3.0,
    )


BAD_ROLLOUT_CONSTRUCTOR = bad_rollout(
    "constructor",
    "roll out a version whose constructor raises, under load",
    "Serve stops the rollout after its new replicas failed to start min(20, 3 x target) times and reports "
    "DEPLOY_FAILED; the old replicas keep serving (at most one batch stopped), no request fails; the good "
    "config deployed again brings every replica back.")

BAD_ROLLOUT_HEALTH = bad_rollout(
    "health",
    "roll out a version whose check_health always fails, under load",
    "Replicas whose initial health check fails count as failed starts: Serve stops the rollout, reports "
    "DEPLOY_FAILED, the old replicas keep serving and no request fails; the good config brings every replica "
    "back.")

BAD_ROLLOUT_RECONFIGURE = bad_rollout(
    "reconfigure",
    "push a user_config whose reconfigure raises (an in-place update), under load",
    "A replica whose reconfigure raises is a failed update: Serve stops the update at the failure threshold "
    "and reports DEPLOY_FAILED; replicas not yet updated keep serving (at most one batch stopped), no "
    "request fails; the good user_config brings every replica back.")


@pytest.mark.scenario(BAD_ROLLOUT_CONSTRUCTOR)
def test_bad_rollout_constructor(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(BAD_ROLLOUT_HEALTH)
def test_bad_rollout_health(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(BAD_ROLLOUT_RECONFIGURE)
def test_bad_rollout_reconfigure(scenario_result):
    scenario_result.assert_promises()
