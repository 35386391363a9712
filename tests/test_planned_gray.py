"""Planned disruptions and gray faults on crafted timelines: the operator actions' plans and
config edits, a scale-down's desired count and churn, rollout and drain checks, the gray faults'
took-effect checks, and the router-shift test."""

from __future__ import annotations

import random

from serve_chaos.harness.checks import check_churn, first_steady_state
from serve_chaos.harness.checks.gray import memory_kills, ray_node_stayed_alive, traffic_shifted_away
from serve_chaos.harness.checks.planned import (replacements_before_stop, rollout_capacity, rollout_replaced_once,
                                    served_only_by_new)
from serve_chaos.harness.faults import CpuStarvation, InplaceUpdate, MemoryPressure, PacketLoss, RollingUpdate, ScaleDown
from serve_chaos.harness.faults.operator import Change, set_option
from serve_chaos.harness.observe.history import FaultRecord
from serve_chaos.runtime.cluster import PodInfo
from tests import synthetic as syn

DEPLOYED = {"app": {"status": "RUNNING", "deployments": {
    "d": {"config": {"num_replicas": 6, "max_ongoing_requests": 5, "ray_actor_options": {"num_cpus": 0}},
          "target_num_replicas": 6}}}}


def snap_with_config(t, actors, config=None, target=6):
    snap = syn.snapshot(t, actors)
    dep = {"config": {"num_replicas": target, "max_ongoing_requests": 5, **(config or {})},
           "target_num_replicas": target}
    snap.apps = {"app": {"status": "RUNNING", "deployments": {"d": dep}}}
    return snap


def test_inplace_update_changes_max_ongoing_requests_or_a_dict_user_config():
    plan = InplaceUpdate().plan(snap_with_config(0, syn.BASE_REPLICAS + syn.BASE_SYSTEM), [], random.Random(1))
    assert plan.params["changes"] == [{"role": "config", "app": "app", "deployment": "d",
                                       "option": "max_ongoing_requests", "old": 5, "new": 6}]
    assert [v["role"] for v in plan.victims] == ["config"]
    with_user = snap_with_config(0, syn.BASE_REPLICAS, {"user_config": {"threshold": 0.5}})
    change = InplaceUpdate().plan(with_user, [], random.Random(1)).params["changes"][0]
    assert change["option"] == "user_config" and change["new"] == {"threshold": 0.5, "serve_chaos_revision": 1}


def test_rolling_update_victims_are_the_old_replicas_and_the_batch_is_serves():
    plan = RollingUpdate().plan(snap_with_config(0, syn.BASE_REPLICAS + syn.BASE_SYSTEM), [], random.Random(1))
    assert sum(v["role"] == "replica" for v in plan.victims) == 6
    assert plan.params["rollout"]["app/d"] == {"target": 6, "batch": 1, "max_surge_percent": 0,
                                               "max_replicas_per_node": None, "nodes": None}
    assert plan.params["changes"][0]["option"] == "ray_actor_options.runtime_env.env_vars.SERVE_CHAOS_ROLLOUT"


def test_set_option_writes_nested_options_and_adds_missing_deployments():
    config = {"applications": [{"name": "app", "import_path": "m:app", "deployments": [
        {"name": "d", "ray_actor_options": {"num_cpus": 0}}]}]}
    set_option(config, Change("app", "d", "ray_actor_options.runtime_env.env_vars.X", None, "v1"))
    set_option(config, Change("app", "e", "num_replicas", 3, 1))
    deps = config["applications"][0]["deployments"]
    assert deps[0]["ray_actor_options"] == {"num_cpus": 0, "runtime_env": {"env_vars": {"X": "v1"}}}
    assert deps[1] == {"name": "e", "num_replicas": 1}


def test_scale_down_asks_for_a_third_and_the_history_follows_it():
    plan = ScaleDown().plan(snap_with_config(0, syn.BASE_REPLICAS), [], random.Random(1))
    assert plan.params["desired_replicas"] == 2 and plan.victims[0]["removed"] == 4
    fault = FaultRecord("scale_down", 10.0, 10.1, victims=plan.victims, params=plan.params)
    hist = syn.history([], [], [fault])
    assert hist.desired_at(9.0) == 6 and hist.desired_at(10.0) == 2


def test_scale_down_with_autoscaling_does_not_apply():
    snap = snap_with_config(0, syn.BASE_REPLICAS, {"autoscaling_config": {"min_replicas": 1}})
    try:
        ScaleDown().plan(snap, [], random.Random(1))
    except Exception as err:  # noqa: BLE001 - the type is what is checked
        assert type(err).__name__ == "NoSuchDeployment"
    else:
        raise AssertionError("an autoscaling deployment was scaled by num_replicas")


def test_shrunk_churn_wants_exactly_the_removed_count_and_nothing_new():
    victims = [{"role": "config", "removed": 4}]
    left = {"left": ["a:1", "b:2", "c:3", "d:4"], "appeared": []}
    assert check_churn("replica", "shrunk", {"replica": left}, victims).status == "pass"
    assert check_churn("replica", "shrunk", {"replica": {**left, "appeared": ["e:5"]}}, victims).status == "fail"
    assert check_churn("replica", "shrunk", {"replica": {"left": ["a:1"], "appeared": []}}, victims).status == "fail"


def test_a_stopping_replica_keeps_steady_state_away_after_a_scale_down():
    running = [syn.replica(101, "head"), syn.replica(102, "head")]
    stopping = [syn.replica(p, "worker-1", "STOPPING") for p in (103, 104)]
    fault = FaultRecord("scale_down", 1.0, 1.1, params={"desired_replicas": 2})
    snaps = [syn.snapshot(t, running + stopping + syn.BASE_SYSTEM) for t in range(0, 6)]
    snaps += [syn.snapshot(t, running + syn.BASE_SYSTEM) for t in range(6, 12)]
    hist = syn.history(syn.requests(0, 12, 10, pid_of=lambda i, t: 101 + i % 2), snaps, [fault])
    t_ok, _ = first_steady_state(hist, 1.0, 3.0)
    assert t_ok == 6


def _rollout_fault():
    old = [syn.replica(p, pod) for p, pod in ((101, "head"), (102, "worker-1"))]
    victims = [{"role": "replica", "actor_id": a["actor_id"], "pid": a["pid"], "replica_id": a["replica_id"],
                "pod": a["pod"]} for a in old]
    params = {"changes": [{"app": "app", "deployment": "d"}], "rollout": {"app/d": {"target": 2, "batch": 1}}}
    return old, FaultRecord("rolling_update", 1.0, 1.1, victims=victims, params=params)


def test_rollout_checks_pass_one_at_a_time_and_catch_a_second_replacement():
    old, fault = _rollout_fault()
    new = [syn.replica(201, "head"), syn.replica(202, "worker-1")]
    timeline = [old, [old[1], new[0]], [new[0], new[1]], [new[0], new[1]]]
    hist = syn.history([], [syn.snapshot(t + 1, actors) for t, actors in enumerate(timeline)], [fault], desired=2)
    assert rollout_replaced_once(hist, fault).status == "pass"
    assert rollout_capacity(hist, fault).status == "pass"
    flaky = [old, [old[1], syn.replica(203, "head")], [old[1], new[0]], [new[0], new[1]]]
    hist = syn.history([], [syn.snapshot(t + 1, actors) for t, actors in enumerate(flaky)], [fault], desired=2)
    assert rollout_replaced_once(hist, fault).status == "fail"
    dip = [old, [old[1]], [], [new[0], new[1]]]
    hist = syn.history([], [syn.snapshot(t + 1, actors) for t, actors in enumerate(dip)], [fault], desired=2)
    capacity = rollout_capacity(hist, fault)
    assert capacity.status == "fail" and capacity.value == 0
    assert "fewest 2.0 s after the change: no replica listed)" in capacity.detail
    stopping = [old, [old[1], dict(old[0], state="STOPPING"), dict(new[0], state="STARTING")], [new[0], new[1]]]
    hist = syn.history([], [syn.snapshot(t + 1, actors) for t, actors in enumerate(stopping)], [fault], desired=2)
    capacity = rollout_capacity(hist, fault)
    assert capacity.status == "pass" and capacity.value == 1
    fault.params["rollout"]["app/d"]["batch"] = 0
    assert "new STARTING 1, old RUNNING 1, old STOPPING 1" in rollout_capacity(hist, fault).detail


def test_only_new_replicas_answer_after_the_rollout():
    old, fault = _rollout_fault()
    fault.t_recovered_observed = 5.0
    reqs = syn.requests(0, 10, 10, pid_of=lambda i, t: 101 if t < 5 else 201)
    snaps = [syn.snapshot(t, old if t < 4 else [syn.replica(201, "head")]) for t in range(0, 10)]
    assert served_only_by_new(syn.history(reqs, snaps, [fault]), fault).status == "pass"
    stale = syn.requests(0, 10, 10, pid_of=lambda i, t: 101 if t < 7 else 201)
    snaps = [syn.snapshot(t, old + [syn.replica(201, "head")]) for t in range(0, 10)]
    assert served_only_by_new(syn.history(stale, snaps, [fault]), fault).status == "fail"


def test_drain_replacements_must_serve_before_the_drained_replicas_stop():
    drained = [syn.replica(103, "worker-1"), syn.replica(104, "worker-1")]
    others = [syn.replica(101, "head"), syn.replica(102, "head")]
    victims = [{"role": "replica", "actor_id": a["actor_id"], "app": "app", "deployment": "d"} for a in drained]
    fault = FaultRecord("node_drain", 1.0, 1.1, victims=victims, params={"pod": "worker-1"}, t_heal=9.0)
    migrating = [dict(a, state="PENDING_MIGRATION") for a in drained]
    new = [syn.replica(201, "worker-2"), syn.replica(202, "worker-2")]
    safe = [others + drained, others + migrating, others + migrating + new, others + new, others + new]
    hist = syn.history([], [syn.snapshot(t * 2, a) for t, a in enumerate(safe)], [fault], desired=4)
    assert replacements_before_stop(hist, fault).status == "pass"
    unsafe = [others + drained, others + [dict(a, state="STOPPING") for a in drained], others + new]
    hist = syn.history([], [syn.snapshot(t * 2, a) for t, a in enumerate(unsafe)], [fault], desired=4)
    assert replacements_before_stop(hist, fault).status == "fail"


def _lifted(kind, **details):
    return FaultRecord(kind, 1.0, 1.1, params={"pod": "worker-1"},
                       heal_actions=[{"action": f"lift_{kind}", "details": details}], t_heal=31.0)


def test_a_gray_fault_that_changed_nothing_fails():
    hist = syn.history([], [])
    starve = CpuStarvation()
    assert starve.verify(hist, _lifted("starve_cpu", throttled_periods=120, periods=300)).status == "pass"
    assert starve.verify(hist, _lifted("starve_cpu", throttled_periods=0, periods=300)).status == "fail"
    loss = PacketLoss(percent=20)
    assert loss.verify(hist, _lifted("lose_packets", dropped_in=0, dropped_out=0)).status == "fail"
    assert loss.verify(hist, _lifted("lose_packets", dropped_in=3, dropped_out=0)).status == "pass"
    press = MemoryPressure()
    assert press.verify(hist, _lifted("press_memory", max_usage_bytes=90, limit_bytes=100)).status == "fail"
    assert press.verify(hist, _lifted("press_memory", max_usage_bytes=100, limit_bytes=100)).status == "pass"
    assert loss.verify(hist, _lifted("lose_packets", injected=False)).status == "fail"
    never = FaultRecord("lose_packets", 1.0, 1.1, params={"pod": "worker-1"})
    assert loss.verify(hist, never).status == "unknown"


def test_memory_pressure_needs_a_pod_with_a_limit():
    snap = syn.snapshot(0, syn.BASE_REPLICAS)
    pods = [PodInfo("worker-1", "worker", "n1", "10.0.0.20", "Running", True, "u1", 0, memory_limit=None)]
    try:
        MemoryPressure().plan(snap, pods, random.Random(1))
    except Exception as err:  # noqa: BLE001 - the type and message are what is checked
        assert "no memory limit" in str(err)
    else:
        raise AssertionError("a pod without a limit was pressed")
    pods = [PodInfo("worker-1", "worker", "n1", "10.0.0.20", "Running", True, "u1", 0, memory_limit=2 * 2**30)]
    assert MemoryPressure().plan(snap, pods, random.Random(1)).params["size_bytes"] == 2 * 2**30


def test_memory_kills_name_the_killer_and_the_victims():
    fault = _lifted("press_memory", hog_pid=77, hog_end="killed by SIGKILL",
                    ray_memory_monitor_killed=[{"task": "SERVE_REPLICA::app#d#103:ServeReplica:app:d.__init__"},
                                               {"task": "SERVE_PROXY_ACTOR-n1:ProxyActor.__init__"}],
                    kernel_oom_killed=[{"pid": 77, "name": "python"}], max_usage_bytes=100, limit_bytes=100)
    fault.params["replicas_on_pod"] = [{"name": "SERVE_REPLICA::app#d#103", "replica_id": "103"}]
    killed = memory_kills(syn.history([], []), fault)["killed"]
    assert killed["by_ray_memory_monitor"] == ["replica 103", "the pod's Serve proxy"]
    assert killed["by_kernel_oom_killer"] == ["the hog"] and killed["pod_peak_of_limit"] == 1.0
    assert killed["replicas_left_unnamed"] == []


def test_a_replica_that_left_while_pressed_but_is_named_by_no_killer_is_said():
    fault = _lifted("press_memory", hog_pid=77, ray_memory_monitor_killed=[], kernel_oom_killed=[],
                    max_usage_bytes=100, limit_bytes=100)
    gone = syn.BASE_REPLICAS[0]
    fault.params["replicas_on_pod"] = [gone]
    before = syn.snapshot(fault.t_inject - 1.0, syn.BASE_REPLICAS)
    after = syn.snapshot(fault.t_inject + 5.0, syn.BASE_REPLICAS[1:])
    killed = memory_kills(syn.history([], [before, after]), fault)["killed"]
    assert killed["by_ray_memory_monitor"] == [] and killed["replicas_left_unnamed"] == [f"replica {gone['replica_id']}"]


def test_a_dead_ray_node_breaks_the_memory_promise():
    fault = FaultRecord("press_memory", 1.0, 1.1, params={"ray_node_ids": ["n-worker-1"]})
    alive = syn.snapshot(2, syn.BASE_REPLICAS)
    alive.nodes = [{"node_id": "n-worker-1", "state": "ALIVE"}]
    dead = syn.snapshot(3, syn.BASE_REPLICAS)
    dead.nodes = [{"node_id": "n-worker-1", "state": "DEAD"}]
    assert ray_node_stayed_alive(syn.history([], [alive]), fault).status == "pass"
    assert ray_node_stayed_alive(syn.history([], [alive, dead]), fault).status == "fail"


def test_the_router_shift_must_be_significant():
    replica = {"replica_id": "101", "app": "app", "deployment": "d"}
    fault = FaultRecord("slow_process", 30.0, 30.1, params={"replica": replica, "duration_s": 30.0}, t_heal=60.0)
    snaps = [syn.snapshot(t, syn.BASE_REPLICAS) for t in range(0, 62, 2)]

    def pids(share_during):
        def pid_of(i, t):
            if t >= 30 and (i % 100) < share_during * 100:
                return 101
            return 102 + i % 5 if t >= 30 else 101 + i % 6
        return pid_of

    shifted = syn.history(syn.requests(0, 60, 40, pid_of=pids(0.05)), snaps, [fault])
    assert traffic_shifted_away(shifted, fault).status == "pass"
    even = syn.history(syn.requests(0, 60, 40, pid_of=pids(0.16)), snaps, [fault])
    assert traffic_shifted_away(even, fault).status == "fail"


def test_a_proxy_killed_by_memory_pressure_is_given_its_replacement_time():
    # The memory monitor may kill the pod's proxy up to the lift; Serve replaces a dead proxy only
    # after 3 failed 10 s health checks (proxy_failure measured 30-32 s), then the front door lags.
    from serve_chaos.harness.bounds import dead_proxy_replaced_s
    from serve_chaos.scenarios.test_gray_failures import MEMORY_PRESSURE, dead_proxy_bounds

    assert dead_proxy_replaced_s({"front_door_lag_s": 8.0}) == 30.0 + 5.0 + 8.0 + 3.0
    # Checks that time out: 3 x (10 s period + 10 s timeout) before the controller gives up on it.
    assert dead_proxy_replaced_s({"front_door_lag_s": 8.0}, checks_time_out=True) == 60.0 + 5.0 + 8.0 + 3.0
    fast_app = dead_proxy_bounds({"replica_start_s": 5.0, "front_door_lag_s": 8.0})
    # The proxy replaced after checks that time out (76 s), then the pod's replicas start.
    assert fast_app["max_recovery_s"] == 76.0 + 5.0 and fast_app["max_failure_span_s"] == 8.0
    slow_app = dead_proxy_bounds({"replica_start_s": 40.0, "front_door_lag_s": 8.0})
    assert slow_app["max_recovery_s"] == 76.0 + 40.0
    assert MEMORY_PRESSURE.bounds is dead_proxy_bounds


def test_a_crashed_head_may_fail_only_its_share_of_the_front_for_the_lag():
    # Redis loss crashes the head; the front door round-robins over head and workers and
    # keeps the head for at most its lag, plus the requests in flight when it died.
    from serve_chaos.harness.bounds import crashed_pod_failures
    from serve_chaos.harness.checks import SLO
    from serve_chaos.harness.checks.slo import judge
    from serve_chaos.scenarios.test_gcs_store_lost import GCS_STORE_LOST

    assert crashed_pod_failures(15.0, {"front_door_lag_s": 8.0, "workers": 2}) == 45
    assert crashed_pod_failures(15.0, {"front_door_lag_s": 8.0, "workers": 4}) == 27
    bounds = GCS_STORE_LOST.bounds({"front_door_lag_s": 2.0, "workers": 2})
    assert bounds["max_failed_during_fault"] == 15 and bounds["max_failure_span_s"] == 2.0
    slo = SLO(max_failed_during_fault=bounds["max_failed_during_fault"])
    front = {"endpoints": {"front": {"failed_during_fault": 16}}}
    [check] = judge(slo, front, [], {})
    assert (check.name, check.status) == ("front.failed_during_fault", "fail")
    front["endpoints"]["front"]["failed_during_fault"] = 5
    assert judge(slo, front, [], {})[0].status == "pass"


def test_rollout_bound_follows_the_planned_batches_and_a_placement_without_room():
    from serve_chaos.scenarios.test_planned_updates import rollout_bounds
    base = {"replica_start_s": 10.0, "graceful_shutdown_timeout_s": 20.0}
    roomy = {"rollout": {"g/G": {"target": 3, "batch": 1, "max_replicas_per_node": 2, "nodes": 3}}}
    tight = {"rollout": {"g/G": {"target": 3, "batch": 1, "max_replicas_per_node": 1, "nodes": 3},
                         "p/F": {"target": 2, "batch": 1}}}
    # 3 batches of (start 10 + stop 4 + tick 2), plus the slack to steady state.
    assert rollout_bounds({**base, "fault": roomy}) == {"max_recovery_s": 3 * 16.0 + 15.0}
    # No room for the new replica beside the old: each stop may take the graceful timeout.
    assert rollout_bounds({**base, "fault": tight}) == {"max_recovery_s": 3 * 32.0 + 15.0}
    assert rollout_bounds(base) == {"max_recovery_s": 6 * 16.0 + 15.0}  # SleepyPid before a plan


def test_a_rollout_not_done_says_how_many_replicas_are_not_on_the_new_version():
    old, fault = _rollout_fault()
    fault.victims.append({"role": "config", "app": "app", "deployment": "d", "option": "x", "old": 1, "new": 2})
    new = syn.replica(201, "head")
    snaps = [syn.snapshot(t, [old[1], new] + syn.BASE_SYSTEM) for t in range(2, 8)]
    t, reason = first_steady_state(syn.history([], snaps, [fault], desired=2), 2.0, 2.0, fault.victims)
    assert t is None and reason == "1 of 2 replicas not yet on the new version (old replicas still alive on worker-1)"


def test_the_not_recovered_reason_describes_the_cluster_before_healing_began():
    from serve_chaos.harness.checks import SLO, evaluate
    old, fault = _rollout_fault()
    snaps = [syn.snapshot(t, [old[1], syn.replica(201, "head")] + syn.BASE_SYSTEM) for t in range(2, 8)]
    snaps += [syn.snapshot(t, syn.BASE_SYSTEM) for t in range(8, 12)]  # the heal deleted the apps
    hist = syn.history([], snaps, [fault], desired=2)
    hist.t_heal_start = 8.0
    ev = evaluate(hist, SLO(max_recovery_s=5.0), {}, hold_s=2.0)
    assert ev.metrics["not_recovered_reason"].startswith("victim replica")
