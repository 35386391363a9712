"""Planned disruptions through the Serve config: an in-place update, a rolling update and a
scale-down under load (issue: "Planned disruptions under load").

Each "fault" is an operator's change of the Serve config (``Cluster.update_serve_config``: the
RayService's ``serveConfigV2`` on KubeRay), leased and healed by restoring the original.  The
disruption's window runs from the change to rollout complete: Serve runs the new option on every
changed deployment, the desired replicas are RUNNING as one set, no old replica is left, and
Serve's logs show every proxy answering only from the RUNNING set.  On SleepyPid half the
requests do 250 ms of work (``?work_ms=250``), so replicas are stopped with requests in flight.

Promises (Ray Serve docs, "Updating Applications In-Place" and "Deploy Ray Serve config"
(rolling updates); ``serve/_private/deployment_state.py`` and ``version.py`` of Ray 2.60):
- lightweight options (``user_config``, ``max_ongoing_requests``, ``num_replicas``, ...) are
  applied to the running replicas: none is torn down, no request fails;
- anything else replaces replicas in a rolling update, ``max(int(0.2 * target), 1)`` at a time
  (``rolling_update_percentage``), old ones stopped gracefully before their replacements start
  (``max_surge_percent`` 0), each old replica exactly once;
- a stopping replica first leaves the routers, then waits up to ``graceful_shutdown_timeout_s``
  for its requests in flight (``graceful_shutdown_wait_loop_s``): nothing fails.
"""

import pytest

from serve_chaos.harness.bounds import REPLACE_SLACK_S, replica_start_s
from serve_chaos.harness.checks import SLO, replica_spread
from serve_chaos.harness.checks.planned import (rollout_capacity, rollout_metrics, rollout_replaced_once, scale_down_metrics,
                                    served_only_by_new)
from serve_chaos.harness.faults import InplaceUpdate, RollingUpdate, ScaleDown
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import COMPOSED_APP, PLANNED_APP

#: Every endpoint: the front door and each pod's own proxy (which replicas a proxy reaches
#: is what a stale routing table would show).
PLANNED_LOAD = LoadSpec(rate=10.0, endpoints=("front", "role:head", "pods:worker"))
EVERY_POD = {"role:head": 1.0, "pods:worker": 1.0}


def rollout_bounds(settings: dict) -> dict:
    """A rolling update replaces each deployment's replicas one batch after another; Serve rolls the
    deployments side by side, so the slowest one sets the bound (s).

    Per batch: a graceful stop (the wait loop twice when nothing is in flight), the app's own
    replica start and a scheduling tick.  Where the deployment's placement leaves no room for a
    new replica while its predecessor still holds a place (``max_replicas_per_node`` x nodes <
    target + batch), the predecessor must be gone first: its stop may take the whole
    ``graceful_shutdown_timeout_s``.  The batches come from the fault's plan (``settings['fault']``,
    what Serve deployed); before a plan exists (``serve-chaos list``), SleepyPid's 6 in 6 batches.
    """
    start = replica_start_s(settings)
    wait_loop = float(settings.get("graceful_shutdown_wait_loop_s", 2.0))
    graceful = float(settings.get("graceful_shutdown_timeout_s", 20.0))
    plan = (settings.get("fault") or {}).get("rollout") or {"SleepyPid": {"target": 6, "batch": 1}}
    longest = 0.0
    for dep in plan.values():
        batches = -(-int(dep["target"]) // max(int(dep["batch"]), 1))
        per_node, nodes = dep.get("max_replicas_per_node"), dep.get("nodes")
        tight = bool(per_node and nodes and int(per_node) * int(nodes) < int(dep["target"]) + int(dep["batch"]))
        stop = graceful if tight else 2.0 * wait_loop
        longest = max(longest, batches * (start + stop + 2.0))
    return {"max_recovery_s": longest + REPLACE_SLACK_S}


INPLACE_UPDATE = Scenario(
    name="inplace_update",
    title="update a lightweight option in place (user_config, else max_ongoing_requests) under load",
    promise="A lightweight update reaches the running replicas in place: none is torn down (same actor ids) "
            "and no request fails.",
    fault=InplaceUpdate(),
    app=PLANNED_APP,
    load=PLANNED_LOAD,
    slo=SLO(min_availability_during_fault=1.0, other_pods_min_availability_during_fault=1.0,
            max_recovery_s=REPLACE_SLACK_S),
    expected_churn={"replica": "none", "proxy": "none", "controller": "none", "pod": "none"},
    min_observe_s=5.0,
    deadline_s=60.0,
)

ROLLING_UPDATE = Scenario(
    name="rolling_update",
    title="roll out a new version (an env var in runtime_env) under load",
    promise="Serve replaces the replicas in batches of max(20 %, 1), stopping each gracefully: every replica is "
            "replaced exactly once, capacity never drops below target minus one batch, no request fails, and "
            "afterwards only new replicas answer.",
    fault=RollingUpdate(),
    app=PLANNED_APP,
    load=PLANNED_LOAD,
    # Every pod hosts old replicas: each pod's own proxy is judged, not "the others".
    slo=SLO(min_availability_during_fault=1.0, endpoint_availability=EVERY_POD, **rollout_bounds({})),
    bounds=rollout_bounds,
    expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
    extra_checks=(rollout_replaced_once, rollout_capacity, served_only_by_new),
    extra_metrics=(rollout_metrics, replica_spread),
    deadline_s=240.0,
    after_recovery_s=3.0,
)

SCALE_DOWN = Scenario(
    name="scale_down",
    title="scale down to about a third of the replicas (6 -> 2) under load",
    promise="Stopping replicas finish their requests in flight (graceful shutdown): nothing fails through the "
            "front door; exactly the removed replicas leave and none appear.",
    fault=ScaleDown(),
    app=PLANNED_APP,
    load=LoadSpec(rate=20.0, endpoints=("front",)),
    slo=SLO(min_availability_during_fault=1.0, max_recovery_s=REPLACE_SLACK_S + 20.0),
    # A node left without replicas has its proxy drained by Serve: idle proxies may go.
    expected_churn={"replica": "shrunk", "proxy": "victims_or_idle", "controller": "none", "pod": "none"},
    extra_metrics=(scale_down_metrics, replica_spread),
    min_observe_s=5.0,
    deadline_s=90.0,
)

ROLLING_UPDATE_COMPOSED = Scenario(
    name="rolling_update_composed",
    title="composed app: roll out a new version of both deployments under load at the ingress",
    promise="The ingress keeps answering while both deployments are rolled: no request fails, every replica is "
            "replaced exactly once, afterwards only new replicas answer.",
    fault=RollingUpdate(),
    app=COMPOSED_APP,
    on_user_app="skip",
    skip_reason="it is rolling_update on the bundled composed example; rolling_update itself runs on your app",
    # Three Python hops per request: 45 req/s saturated the 2-core machine during the rollout (p50
    # 2-8 s, timeouts) while SleepyPid's rollout stayed under 0.5 s; 24 req/s leaves headroom.
    load=LoadSpec(rate=8.0, endpoints=("front", "role:head", "pods:worker")),
    # Every pod hosts old replicas: each pod's own proxy is judged, not "the others".
    slo=SLO(min_availability_during_fault=1.0, endpoint_availability=EVERY_POD, **rollout_bounds({})),
    bounds=rollout_bounds,
    expected_churn={"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"},
    extra_checks=(rollout_replaced_once, rollout_capacity, served_only_by_new),
    extra_metrics=(rollout_metrics, replica_spread),
    deadline_s=240.0,
    after_recovery_s=3.0,
)


@pytest.mark.scenario(INPLACE_UPDATE)
def test_inplace_update(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(ROLLING_UPDATE)
def test_rolling_update(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(SCALE_DOWN)
def test_scale_down(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.nightly_only  # rolling_update and the composed scenarios run in CI
@pytest.mark.scenario(ROLLING_UPDATE_COMPOSED)
def test_rolling_update_composed(scenario_result):
    scenario_result.assert_promises()
