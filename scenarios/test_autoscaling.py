"""Replica autoscaling under a load step (issue: "Failures during change", item 3): SleepyPid with an
``autoscaling_config`` (2 replicas at rest, up to 6, 2 requests in flight each; metrics every 1 s
over 5 s, up after 3 s, down after 15 s), its requests 0.5 s of work; the load steps from 2 to 18
requests/s for 45 s, then back -- an open model throughout.

Promise (Ray 2.60 ``serve/_private/autoscaling_state.py``, ``serve/config.py``
``AutoscalingConfig``; the Serve docs' "Ray Serve Autoscaling"): the count follows
``ongoing requests / target_ongoing_requests`` (queued ones included), rounded up, within the bounds
-- up to 5 for 18 x 0.5 s in flight -- within the metrics' look-back, the upscale delay and one replica start; back down to 2 after the
downscale delay once the step ends, each stopped replica finishing its requests (graceful shutdown);
no request fails either way; the autoscaler's target rises then falls, once (an overshoot corrected
while the load holds is one fall; a rise after a fall is flapping).
"""

import pytest

from serve_chaos.harness.bounds import REPLACE_SLACK_S
from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults import During, Fault, InplaceUpdate
from serve_chaos.harness.faults.loadshape import (LoadBursts, LoadStep, expected_peak, held_through_gaps, no_flapping,
                                      scale_timeline, upscaled_to)
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import AUTOSCALING, AUTOSCALING_APP, AUTOSCALING_WORK_S

#: 18 x 0.5 s = 9 in flight (a little more with the proxy's own time): 4.5-4.8 replicas' worth,
#: rounded up to 5 -- away from a whole number, where Serve's decision could tip between two counts.
STEP_RATE = 18.0
#: The load takes up a new rate within a second (it re-reads its schedule every second).
LOAD_PICKUP_S = 1.0
#: A replica of SleepyPid with its 2 s constructor starts in 5-9 s here (placement, worker, constructor).
REPLICA_START_S = 9.0
#: The metrics a decision sees lag by the look-back period and two push intervals (s).
METRICS_LAG_S = AUTOSCALING["look_back_period_s"] + 2 * AUTOSCALING["metrics_interval_s"]
UPSCALE_WITHIN_S = (LOAD_PICKUP_S + METRICS_LAG_S + AUTOSCALING["upscale_delay_s"] + REPLICA_START_S
                    + REPLACE_SLACK_S)
#: Back at rest: the lag, the downscale delay, a stopping replica's wait loop (2 s) and its work.
DOWNSCALE_WITHIN_S = METRICS_LAG_S + AUTOSCALING["downscale_delay_s"] + 2.0 + AUTOSCALING_WORK_S + REPLACE_SLACK_S

SKIP_USER_APP = ("its bounds follow the bundled autoscaling_config and 0.5 s requests; your app's own autoscaling "
                 "needs its own figures")


def autoscaling_scenario(name: str, title: str, promise: str, fault: Fault, step_s: float,
                         more_checks: tuple = ()) -> Scenario:
    """A load step of ``step_s`` seconds on the bundled autoscaling SleepyPid, judged as above
    (and by ``more_checks``)."""
    return Scenario(
        name=name,
        title=title,
        promise=promise,
        fault=fault,
        app=AUTOSCALING_APP,
        on_user_app="skip",
        skip_reason=SKIP_USER_APP,
        load=LoadSpec(rate=2.0, timeout_s=10.0, endpoints=("front",)),
        slo=SLO(min_availability_during_fault=1.0, max_recovery_s=DOWNSCALE_WITHIN_S),
        # Replicas come and go by design; Serve keeps proxies only where replicas are.
        expected_churn={"replica": "any", "proxy": "any", "controller": "none", "pod": "none"},
        extra_checks=(upscaled_to(expected_peak(STEP_RATE, AUTOSCALING_WORK_S, AUTOSCALING), UPSCALE_WITHIN_S),
                      no_flapping, *more_checks),
        extra_metrics=(scale_timeline,),
        min_observe_s=step_s + 5.0,
        deadline_s=step_s + DOWNSCALE_WITHIN_S + 30.0,
    )


AUTOSCALING_STEP = autoscaling_scenario(
    "autoscaling_step",
    f"step the load from 2 to {STEP_RATE:g} requests/s (0.5 s each) for 45 s on an autoscaling deployment",
    f"Serve scales up to {expected_peak(STEP_RATE, AUTOSCALING_WORK_S, AUTOSCALING)} replicas within "
    f"{UPSCALE_WITHIN_S:g} s of the step and back to {AUTOSCALING['min_replicas']} within "
    f"{DOWNSCALE_WITHIN_S:g} s of its end; no request fails either way; the target rises, then falls, once.",
    LoadStep(rate=STEP_RATE, duration_s=45.0), step_s=45.0)


@pytest.mark.nightly_only  # autoscaling_redeploy (in CI) makes the same step, with the same checks, and more
@pytest.mark.scenario(AUTOSCALING_STEP)
def test_autoscaling_step(scenario_result):
    scenario_result.assert_promises()


# Ray 2.60 autoscaling_state.py ``register``: a redeploy that changes the deployment's config resets
# the target to ``initial_replicas`` when one is set, else keeps the current target (AUTOSCALING sets
# none); Serve docs: lightweight options update in place.
AUTOSCALING_REDEPLOY = autoscaling_scenario(
    "autoscaling_redeploy",
    f"step the load to {STEP_RATE:g} requests/s for 60 s and, 30 s in, update a lightweight option in place",
    "An in-place update while scaled up (no initial_replicas set) keeps the scaled-up target while the load "
    "holds, takes effect, and fails no request; the count comes back down after.",
    During(first=LoadStep(rate=STEP_RATE, duration_s=60.0), second=InplaceUpdate(), after_s=30.0), step_s=60.0)


@pytest.mark.scenario(AUTOSCALING_REDEPLOY)
def test_autoscaling_redeploy(scenario_result):
    scenario_result.assert_promises()


# Bursts shorter than the downscale delay apart (Ray 2.60 ``autoscaling_policy``: a decision to scale
# down needs the lower count to hold for ``downscale_delay_s``; a burst in between resets it).
BURSTS = LoadBursts(rate=STEP_RATE, burst_s=8.0, gap_s=7.0, bursts=4)
BURST_PEAK = expected_peak(STEP_RATE, AUTOSCALING_WORK_S, AUTOSCALING)
AUTOSCALING_BURSTS = autoscaling_scenario(
    "autoscaling_bursts",
    f"4 bursts of {STEP_RATE:g} requests/s (8 s each, 7 s apart at 2/s) on an autoscaling deployment",
    f"Serve scales up to {BURST_PEAK} replicas within {UPSCALE_WITHIN_S:g} s of the first burst and keeps them "
    f"through the gaps (7 s, shorter than the {AUTOSCALING['downscale_delay_s']:g} s downscale delay) until the "
    f"last burst ends; back to {AUTOSCALING['min_replicas']} after; no request fails; no flapping.",
    BURSTS, step_s=BURSTS.duration_s, more_checks=(held_through_gaps(BURST_PEAK),))


@pytest.mark.nightly_only  # autoscaling_redeploy (in CI) judges the same upscale and downscale
@pytest.mark.scenario(AUTOSCALING_BURSTS)
def test_autoscaling_bursts(scenario_result):
    scenario_result.assert_promises()
