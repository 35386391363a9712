"""A crash loop (issue: "Failures during change", item 2): a replica dies and every replacement fails
in its constructor for 25 s -- a model store that is down, a config service that refuses -- then
the cause goes away.

Promise (Ray 2.60 ``serve/_private/deployment_state.py``: ``_failed_to_start_threshold`` and
DEPLOY_FAILED apply only before a version's first RUNNING replica or during a rolling update;
after that each failed start is stopped and retried on the next control-loop pass, with no
backoff): the other replicas keep serving; Serve keeps retrying, reports the deployment UNHEALTHY
and never DEPLOY_FAILED; once the cause is gone the count is back within one replica start.  The fault's
evidence is the number of starts the gate refused (at least 2: a loop, not one failure).
"""

import pytest

from serve_chaos.harness.bounds import replica_replaced_bounds
from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults.crashloop import CrashLoop, kept_retrying, loop_timeline, reported_unhealthy
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import SCENARIO_APP

CRASH_LOOP = Scenario(
    name="crash_loop",
    title="ray.kill a replica while every new replica's constructor fails for 25 s, under load",
    promise="The other replicas keep serving while the replacement fails to start again and again; Serve "
            "keeps retrying (UNHEALTHY, never DEPLOY_FAILED) and the replica count is back one replica start after "
            "the cause went away; only the killed replica's PID changes.",
    fault=CrashLoop(),
    app=SCENARIO_APP,
    on_user_app="skip",
    skip_reason="the start gate is SleepyPid's own (POST /-/chaos/startgate); your app's constructor has no "
                "such switch",
    needs=("health_toggle",),
    slo=SLO(min_availability_during_fault=0.995, max_outage_s=1.0, **replica_replaced_bounds({})),
    bounds=replica_replaced_bounds,
    expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
    extra_checks=(kept_retrying, reported_unhealthy),
    extra_metrics=(loop_timeline,),
    deadline_s=120.0,
)


@pytest.mark.scenario(CRASH_LOOP)
def test_crash_loop(scenario_result):
    scenario_result.assert_promises()
