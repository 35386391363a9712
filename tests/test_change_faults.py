"""Failures during change, on crafted timelines and a recording cluster double (pure logic): a bad
rollout's plan, end and checks, a fault injected during another, the controller restart."""

from __future__ import annotations

from dataclasses import replace
import random
from typing import Any

import pytest

from serve_chaos.harness.faults import BadRollout, ControllerRestart, During, RollingUpdate
from serve_chaos.harness.faults.badversion import (BAD_VERSION_ENV, FAIL_RECONFIGURE_KEY, failure_timeline, old_replicas_kept,
                                       serve_reported_failure)
from serve_chaos.harness.observe.history import FaultRecord
from serve_chaos.runtime.cluster import ActionRecord
from tests import synthetic as syn

GOOD = {"applications": [{"name": "app", "import_path": "m:app", "deployments": [
    {"name": "d", "num_replicas": 6, "ray_actor_options": {"num_cpus": 0}}]}]}


def snap(t: float, actors: list[dict[str, Any]], status: str = "HEALTHY", config: dict | None = None):
    s = syn.snapshot(t, actors)
    s.apps = {"app": {"status": "RUNNING", "message": "", "deployments": {"d": {
        "config": {"num_replicas": 6, "ray_actor_options": {"num_cpus": 0}, **(config or {})},
        "target_num_replicas": 6, "status": status}}}}
    s.replicas_running = sum(a["role"] == "replica" and a.get("state") == "RUNNING" for a in actors)
    return s


class RecordingCluster:
    """Records the Serve configs it is given (what an operator would PUT)."""

    def __init__(self) -> None:
        self.desired = GOOD
        self.puts: list[tuple[dict, str]] = []
        self.kills: list[tuple[Any, bool]] = []

    def serve_config(self) -> dict:
        return self.desired

    def update_serve_config(self, config: dict, change: str) -> ActionRecord:
        self.desired = config
        self.puts.append((config, change))
        return ActionRecord("update_serve_config", "serve", 1.0, 1.1, {"change": change})

    def kill_actor(self, name, namespace, no_restart, ignore_missing=False) -> ActionRecord:
        self.kills.append((name, no_restart))
        return ActionRecord("kill_actor", "serve", 2.0, 2.1, {"t_kill_start": 2.0})


ACTORS = syn.BASE_REPLICAS + syn.BASE_SYSTEM


@pytest.mark.parametrize("mode", ["constructor", "health"])
def test_a_bad_version_sets_its_switch_in_the_runtime_env_and_its_end_deploys_the_good_config(mode):
    fault = BadRollout(mode=mode)
    plan = fault.plan(snap(0, ACTORS), [], random.Random(1))
    (change,) = plan.params["changes"]
    assert change["option"] == "ray_actor_options.runtime_env.env_vars" and change["new"][BAD_VERSION_ENV] == mode
    # Recovered once Serve runs the good value again: the victim is the bad one.
    (victim,) = plan.victims
    assert (victim["old"], victim["new"]) == (change["new"], None)
    assert plan.params["old_replicas"] == {"app/d": 6}
    cluster = RecordingCluster()
    record = fault.inject(cluster, plan)
    bad_env = cluster.desired["applications"][0]["deployments"][0]["ray_actor_options"]["runtime_env"]["env_vars"]
    assert bad_env[BAD_VERSION_ENV] == mode
    fault.end(cluster, record)
    assert cluster.puts[-1] == (GOOD, "the good version back")  # a plain update, not a delete and redeploy


def test_a_bad_user_config_makes_reconfigure_raise():
    plan = BadRollout(mode="reconfigure").plan(snap(0, ACTORS), [], random.Random(1))
    (change,) = plan.params["changes"]
    assert (change["option"], change["old"], change["new"]) == ("user_config", None, {FAIL_RECONFIGURE_KEY: True})
    with pytest.raises(ValueError):
        BadRollout(mode="typo")


def _bad_record(t_heal: float = 20.0) -> FaultRecord:
    plan = BadRollout().plan(snap(0, ACTORS), [], random.Random(1))
    return FaultRecord("bad_rollout", 1.0, 1.1, plan.victims, params=plan.params, t_heal=t_heal)


def test_the_bad_version_took_effect_only_when_serve_reported_it_failed():
    record = _bad_record()
    failed = [snap(t, ACTORS, "UPDATING") for t in range(1, 8)] + [snap(t, ACTORS, "DEPLOY_FAILED") for t in range(8, 20)]
    result = serve_reported_failure(syn.history([], failed, [record]), record)
    assert (result.status, result.value) == ("pass", 7.0)
    # A version that started fine (the switch not read) changed nothing: the scenario fails.
    fine = [snap(t, ACTORS, "HEALTHY") for t in range(1, 20)]
    result = serve_reported_failure(syn.history([], fine, [record]), record)
    assert result.status == "fail" and "HEALTHY" in result.detail
    assert BadRollout(settle_s=5.0).done_early(syn.history([], failed, [record]), record)
    assert not BadRollout(settle_s=5.0).done_early(syn.history([], fine, [record]), record)


def test_old_replicas_kept_allows_one_batch_stopped_and_no_more():
    record = _bad_record()
    one_gone = [snap(t, syn.BASE_REPLICAS[1:] + syn.BASE_SYSTEM, "DEPLOY_FAILED") for t in range(2, 19)]
    result = old_replicas_kept(syn.history([], one_gone, [record]), record)
    assert (result.status, result.value, result.bound) == ("pass", 5, ">= 5")
    two_gone = [snap(t, syn.BASE_REPLICAS[2:] + syn.BASE_SYSTEM, "DEPLOY_FAILED") for t in range(2, 19)]
    assert old_replicas_kept(syn.history([], two_gone, [record]), record).status == "fail"
    assert failure_timeline(syn.history([], one_gone, [record]), record)["bad_rollout"]["min_replicas_running"] == 5


def test_during_injects_the_second_fault_into_the_first_and_judges_each():
    fault = During(first=RollingUpdate(), second=ControllerRestart(), after_s=0.0)
    plan = fault.plan(snap(0, ACTORS), [], random.Random(1))
    assert {v["fault"] for v in plan.victims} == {"rolling_update", "controller_restart"}
    assert "rollout" in plan.params  # the first fault's checks read its params as they would alone
    assert fault.requires == ("update_serve_config", "kill_actor")
    cluster = RecordingCluster()
    record = fault.inject(cluster, plan)
    assert cluster.kills == [("SERVE_CONTROLLER_ACTOR", False)] and len(cluster.puts) == 1
    # Both took effect: the old replicas, the config and the controller's PID all replaced.
    new = [syn.replica(300 + i, pod) for i, pod in enumerate(["head", "worker-1", "worker-2"] * 2)]
    rolled = snap(9, new + [a for a in syn.BASE_SYSTEM if a["role"] != "controller"] + [syn.controller(999)],
                  config=plan.params["changes"][0] and {"ray_actor_options": {"num_cpus": 0, "runtime_env": {
                      "env_vars": {"SERVE_CHAOS_ROLLOUT": plan.params["changes"][0]["new"]}}}})
    history = syn.history([], [snap(1, ACTORS), rolled, rolled], [record])
    assert fault.verify(history, record).status == "pass"
    # The controller never restarted: the compound fault did not fully happen.
    stuck = snap(9, new + syn.BASE_SYSTEM, config=rolled.apps["app"]["deployments"]["d"]["config"])
    assert fault.verify(syn.history([], [snap(1, ACTORS), stuck], [record]), record).status == "fail"


def test_a_query_of_death_is_judged_by_the_replicas_that_died_of_it():
    from serve_chaos.harness.faults import QueryOfDeath
    from serve_chaos.harness.faults.poison import one_replica_per_poison, replicas_killed

    fault = QueryOfDeath(sends=2)
    plan = fault.plan(snap(0, ACTORS), [], random.Random(1))
    assert plan.victims == [] and len(plan.params["replicas_before"]) == 6 and plan.params["sends"] == 2
    record = FaultRecord("query_of_death", 1.0, 2.0, [], params=plan.params)
    one_dead = [snap(t, syn.BASE_REPLICAS[1:] + syn.BASE_SYSTEM) for t in range(3, 10)]
    history = syn.history([], [snap(0, ACTORS)] + one_dead, [record])
    assert (replicas_killed(history, record).status, replicas_killed(history, record).value) == ("pass", 1)
    assert one_replica_per_poison(history, record).status == "pass"
    # The poison answered fine and nobody died: the fault changed nothing, the scenario fails.
    nothing = syn.history([], [snap(t, ACTORS) for t in range(0, 10)], [record])
    assert replicas_killed(nothing, record).status == "fail"
    # Three replicas died of two requests: Serve carried the poison on to another replica.
    cascade = syn.history([], [snap(t, syn.BASE_REPLICAS[3:] + syn.BASE_SYSTEM) for t in range(3, 10)], [record])
    assert one_replica_per_poison(cascade, record).status == "fail"


def test_the_local_kubelet_kills_the_pods_process_of_that_name_by_pid_and_no_other():
    import subprocess
    import threading
    from types import SimpleNamespace

    from serve_chaos.runtime.errors import ServeChaosError
    from serve_chaos.runtime.local.kubelet.processes import KubeletProcesses

    mine, other = subprocess.Popen(["sleep", "30"]), subprocess.Popen(["sleep", "30"])
    try:
        kubelet = object.__new__(KubeletProcesses)
        kubelet.lock, events = threading.Lock(), []
        kubelet.members = lambda pod: [mine.pid]  # the pod's processes: not ``other``
        kubelet.event = lambda kind, **kw: events.append((kind, kw))
        record = kubelet.kill_named(SimpleNamespace(name="head"), "sleep")
        assert record.details == {"pids": [mine.pid], "name": "sleep"} and mine.wait(5) == -9
        assert other.poll() is None and events[0][0] == "process_killed"
        with pytest.raises(ServeChaosError, match="runs no process named 'gcs_server'"):
            kubelet.kill_named(SimpleNamespace(name="head"), "gcs_server")
    finally:
        other.kill()
        other.wait(5)


def test_a_gcs_crash_plans_the_head_and_judges_the_workers_routers_while_it_is_away():
    from serve_chaos.harness.checks.gcsaway import routers_kept_spreading
    from serve_chaos.harness.faults import GcsCrash
    from serve_chaos.runtime.cluster import PodInfo

    pods = [PodInfo(name, role, f"n-{name}", ip, "Running", True, f"uid-{name}", 0)
            for name, role, ip in (("head", "head", "10.0.0.10"), ("worker-1", "worker", "10.0.0.20"),
                                   ("worker-2", "worker", "10.0.0.21"))]
    plan = GcsCrash().plan(snap(0, ACTORS), pods, random.Random(1))
    assert plan.params["pod"] == "head" and plan.params["process"] == "gcs_server"
    assert {v["role"] for v in plan.victims} == {"pod", "replica", "proxy", "controller"}
    assert plan.params["worker_replicas"] == {"worker-1": ["103", "104"], "worker-2": ["105", "106"]}
    record = FaultRecord("gcs_crash", 1.0, 1.1, plan.victims, params=plan.params)

    def through_workers(pick):
        reqs = []
        for i, pod in enumerate(["worker-1", "worker-2"] * 20):
            reqs += syn.requests(2 + i * 0.1, 2.1 + i * 0.1, 10, endpoint=f"pods:worker#{pod[-1]}",
                                 pod_of=lambda j, t, pod=pod: pod, seq0=None)
        for n, rec in enumerate(reqs):
            rec["pid"] = int(pick(rec["pod"], n // 2))  # who served it: the PID the body names
        return syn.history(reqs, [snap(t, ACTORS) for t in range(0, 8)], [record])

    local = {"worker-1": ["103", "104"], "worker-2": ["105", "106"]}
    spread = routers_kept_spreading(through_workers(lambda pod, n: local[pod][n % 2]), record)
    assert spread.status == "pass", spread.detail
    stuck = routers_kept_spreading(through_workers(lambda pod, n: local[pod][0]), record)
    assert stuck.status == "fail" and "104 on worker-1" in stuck.detail


def test_the_stage_not_killed_must_keep_being_routed_to():
    from serve_chaos.harness.checks.stages import other_stage_routed, stage_calls

    score = [dict(syn.replica(400 + i, pod), app="chained", deployment="Score", ingress=False)
             for i, pod in enumerate(["head", "worker-1", "worker-2"])]
    actors = score + syn.BASE_SYSTEM
    record = FaultRecord("replica_kill", 5.0, 5.1, [])
    reqs = syn.requests(0, 20, 30)
    for r in reqs:
        r["request_id"] = f"r{r['seq']}"

    def history(pick, router=lambda r: "ing-1"):
        served = [{"request_id": r["request_id"], "ingress": False, "replica_id": pick(r)} for r in reqs]
        served += [{"request_id": r["request_id"], "ingress": True, "replica_id": router(r)} for r in reqs]
        return syn.history(reqs, [syn.snapshot(t, actors) for t in range(0, 20)], [record], served_by=served)

    spread = other_stage_routed("chained/Score")(history(lambda r: str(400 + r["seq"] % 3)), record)
    assert spread.status == "pass" and spread.value == 0
    # After the fault one healthy Score replica never got a call again: dropped from routing.
    dropped = other_stage_routed("chained/Score")(
        history(lambda r: str(400 + (r["seq"] % 3 if r["t"] < 5 else r["seq"] % 2))), record)
    assert dropped.status == "fail" and "never again: 402 by ing-1" in dropped.detail
    # Two routers: one dropped 402, the other kept it -- the one that dropped it is not hidden.
    two = history(lambda r: str(400 + (r["seq"] % 3 if r["seq"] % 2 or r["t"] < 5 else (r["seq"] // 2) % 2 * 1)),
                  router=lambda r: f"ing-{r['seq'] % 2}")
    assert other_stage_routed("chained/Score")(two, record).status == "fail"
    assert stage_calls(history(lambda r: "400"), record)["stage_calls"] == {"400": 450}


def test_a_flapping_health_check_reads_back_how_many_checks_failed_and_keeps_its_replica(monkeypatch):
    from types import SimpleNamespace

    from serve_chaos.harness.faults import HealthFlap
    from serve_chaos.runtime.cluster import Endpoints

    fault = HealthFlap(failures=2)
    plan = fault.plan(snap(0, ACTORS), [], random.Random(1))
    pod = plan.params["pod"]
    local = [a for a in syn.BASE_REPLICAS if a["pod"] == pod]
    answers = iter([{"pid": local[0]["pid"], "mode": "flap", "failed_checks": 0},  # the switch
                    {"pid": local[-1]["pid"] + 1000, "mode": "ok", "failed_checks": 0},  # another replica
                    {"pid": local[0]["pid"], "mode": "ok", "failed_checks": 2}])  # the flapped one
    sent = []
    monkeypatch.setattr("requests.post", lambda url, timeout: sent.append(url) or SimpleNamespace(
        json=lambda: next(answers)))
    cluster = SimpleNamespace(endpoints=lambda: Endpoints("http://f", "http://d", {pod: "http://p"}))
    record = fault.inject(cluster, plan)
    assert record.victims == [] and record.params["target"]["pid"] == local[0]["pid"]  # it must stay
    assert sent[0].endswith("?mode=flap&failures=2")
    record.heal_actions = [a.to_dict() for a in fault.end(cluster, record)]
    assert fault.verify(syn.history([], [], [record]), record).status == "pass"
    record.heal_actions[0]["details"]["failed_checks"] = 1  # a check that never ran: not the flap asked for
    assert fault.verify(syn.history([], [], [record]), record).status == "fail"


def test_during_carries_the_first_faults_deadline_and_victims_learnt_when_striking(monkeypatch):
    from types import SimpleNamespace

    from serve_chaos.harness.faults import HealthCheckFailure, InplaceUpdate, NodeDrain, ReplicaKill
    from serve_chaos.runtime.cluster import Endpoints

    drain = During(first=NodeDrain(duration_s=45.0), second=ReplicaKill(pod_role="head"), after_s=0.0)
    assert drain.duration_s == 45.0 and During(first=RollingUpdate(), second=ControllerRestart()).duration_s is None
    # The health switch names its victim only when the replica answers: the record has it.
    fault = During(first=InplaceUpdate(), second=HealthCheckFailure(mode="raise"), after_s=0.0)
    plan = fault.plan(snap(0, ACTORS), [], random.Random(1))
    pod = plan.params["pod"]
    victim = next(a for a in syn.BASE_REPLICAS if a["pod"] == pod)
    monkeypatch.setattr("requests.post", lambda url, timeout: SimpleNamespace(json=lambda: {"pid": victim["pid"]}))
    cluster = RecordingCluster()
    cluster.endpoints = lambda: Endpoints("http://f", "http://d", {pod: "http://p"})
    record = fault.inject(cluster, plan)
    assert [(v["role"], v["fault"]) for v in record.victims] == [("config", "inplace_update"),
                                                                 ("replica", "health_check_failure")]


def test_a_drain_is_not_charged_for_a_replica_another_fault_killed_elsewhere():
    from serve_chaos.harness.checks.planned import replacements_before_stop

    drained = [dict(a, fault="node_drain") for a in syn.BASE_REPLICAS if a["pod"] == "worker-1"]
    killed = dict(next(a for a in syn.BASE_REPLICAS if a["pod"] == "head"), fault="replica_kill")
    during = {"second": {"record": {"t_inject": 2.0}}}
    record = FaultRecord("node_drain+replica_kill", 1.0, 1.1, drained + [killed],
                         params={"pod": "worker-1", "during": during}, t_heal=30.0)
    rest = [a for a in syn.BASE_REPLICAS if a is not None and a["pid"] != killed["pid"]]
    spare = syn.replica(301, "worker-2")
    ok = [snap(0, ACTORS)] + [snap(t, rest + syn.BASE_SYSTEM) for t in range(2, 10)] + \
        [snap(t, [a for a in rest if a["pod"] != "worker-1"] + [spare, syn.replica(302, "head")] + syn.BASE_SYSTEM)
         for t in range(10, 20)]
    assert replacements_before_stop(syn.history([], ok, [record]), record).status == "pass"
    # A drained replica stopping before its replacement served: 4 of the 5 left.
    early = ok[:5] + [snap(t, [a for a in rest if a["pid"] != drained[0]["pid"]] + syn.BASE_SYSTEM)
                      for t in range(5, 10)]
    assert replacements_before_stop(syn.history([], early, [record]), record).status == "fail"
    # Once the kill's replacement served (6 again), a drained replica stopping early is a dip again.
    whole = [snap(t, rest + [syn.replica(302, "head")] + syn.BASE_SYSTEM) for t in range(2, 6)]
    late = ok[:1] + whole + [snap(t, [a for a in rest if a["pid"] != drained[0]["pid"]]
                                   + [syn.replica(302, "head")] + syn.BASE_SYSTEM) for t in range(6, 10)]
    assert replacements_before_stop(syn.history([], late, [record]), record).status == "fail"


def test_a_crash_loop_needs_refused_starts_and_serve_never_giving_up():
    from serve_chaos.harness.faults import CrashLoop
    from serve_chaos.harness.faults.crashloop import kept_retrying, reported_unhealthy

    fault = CrashLoop()
    plan = fault.plan(snap(0, ACTORS), [], random.Random(1))
    (victim,) = plan.victims
    record = FaultRecord("crash_loop", 1.0, 1.1, plan.victims, params=plan.params, t_heal=26.0)
    survivors = [a for a in syn.BASE_REPLICAS if a["pid"] != victim["pid"]]
    loop = [snap(t, survivors + syn.BASE_SYSTEM, status="UNHEALTHY") for t in range(2, 26)]
    history = syn.history([], [snap(0, ACTORS)] + loop, [record])

    def read(failed: int | None) -> FaultRecord:
        return replace(record, heal_actions=[{"action": "start_gate_read", "details": {"failed_starts": failed}}])

    assert fault.verify(history, read(5)).status == "pass"
    # One refused start is a failure, not a loop; an unread gate proves nothing.
    assert fault.verify(history, read(1)).status == "fail"
    assert fault.verify(history, read(None)).status == "unknown"
    # The victim never went: the fault changed nothing.
    alive = syn.history([], [snap(t, ACTORS) for t in range(0, 26)], [record])
    assert fault.verify(alive, read(5)).status == "fail"
    assert kept_retrying(history, record).status == "pass"
    assert reported_unhealthy(history, record).status == "pass"
    # Serve gave up on the deployment mid-loop, or never said it was unhealthy: both are broken promises.
    gave_up = syn.history([], [snap(0, ACTORS)] + loop[:5] + [snap(9.5, survivors + syn.BASE_SYSTEM,
                                                                   status="DEPLOY_FAILED")], [record])
    assert kept_retrying(gave_up, record).status == "fail"
    quiet = syn.history([], [snap(t, survivors + syn.BASE_SYSTEM) for t in range(2, 26)], [record])
    assert reported_unhealthy(quiet, record).status == "fail"


def test_a_refused_pod_is_cut_off_with_resets_and_lifted_like_a_partition():
    from types import SimpleNamespace

    from serve_chaos.harness.faults import PodReject
    from serve_chaos.runtime.cluster import PodInfo
    from serve_chaos.runtime.local.netns import partition_rules

    refused, dropped = partition_rules(reject=True), partition_rules()
    assert "policy accept" in refused and refused.count("reject with tcp reset") == 2
    # The answers the input chain makes must get out, or the peer sees silence.
    assert refused.index("tcp flags & rst == rst accept") < refused.rindex("reject with tcp reset")
    assert "policy drop" in dropped and "reject" not in dropped
    calls = []
    cluster = SimpleNamespace(partition_pod=lambda pod, reject=False: calls.append((pod, reject)) or ActionRecord(
        "partition_pod", pod, 1.0, 1.1, {}), unpartition_pod=lambda pod: calls.append((pod, "lifted")) or ActionRecord(
        "unpartition_pod", pod, 5.0, 5.1, {}))
    pods = [PodInfo(n, "head" if n == "head" else "worker", f"node-{n}", "198.18.0.9", "Running", True, f"u-{n}", 0)
            for n in ("head", "worker-1", "worker-2")]
    fault = PodReject()
    plan = fault.plan(snap(0, ACTORS), pods, random.Random(1))
    assert plan.params["pod"].startswith("worker-") and "TCP reset" in plan.description
    record = fault.inject(cluster, plan)
    fault.end(cluster, record)
    assert calls == [(plan.params["pod"], True), (plan.params["pod"], "lifted")]


def test_a_load_step_is_judged_on_the_offered_rate_the_target_and_the_running_count():
    from serve_chaos.harness.faults.loadshape import LoadStep, expected_peak, no_flapping, scale_timeline, upscaled_to

    auto = {"min_replicas": 2, "max_replicas": 6, "target_ongoing_requests": 2}
    assert expected_peak(20.0, 0.5, auto) == 5 and expected_peak(100.0, 0.5, auto) == 6
    assert expected_peak(1.0, 0.5, auto) == 2
    fault = LoadStep(rate=20.0, duration_s=40.0)
    assert fault.load_rates() == ((0.0, 20.0), (40.0, None))
    record = FaultRecord("load_step", 100.0, 100.0, [], params={"rate": 20.0, "duration_s": 40.0})

    def probe(t, running, target):
        s = snap(t, syn.BASE_REPLICAS[:running] + syn.BASE_SYSTEM)
        s.apps["app"]["deployments"]["d"]["target_num_replicas"] = target
        return s

    shape = [(96, 2, 2), (106, 2, 6), (112, 4, 6), (118, 5, 6), (125, 6, 6), (135, 6, 6), (145, 6, 6),
             (158, 2, 2), (165, 2, 2)]
    reqs = syn.requests(90, 100, 2.0) + syn.requests(100, 140, 20.0, seq0=20) + syn.requests(140, 170, 2.0, seq0=820)
    history = syn.history(reqs, [probe(*p) for p in shape], [record], desired=2)
    assert fault.verify(history, record).status == "pass"
    assert (upscaled_to(5, 34.0)(history, record).status, upscaled_to(5, 34.0)(history, record).value) == ("pass", 18)
    assert upscaled_to(5, 10.0)(history, record).status == "fail"  # there, but too late
    assert no_flapping(history, record).status == "pass"
    assert scale_timeline(history, record)["autoscale"]["target_by_time"] == [(-4, 2), (6, 6), (58, 2)]
    # The load never stepped up: the fault changed nothing.
    flat = syn.history(syn.requests(90, 170, 2.0), [probe(*p) for p in shape], [record], desired=2)
    assert fault.verify(flat, record).status == "fail"
    # Overshoot, corrected down while the load held, then down at its end: one fall, not flapping.
    corrected = shape[:5] + [(135, 6, 5), (145, 6, 5)] + shape[7:]
    assert no_flapping(syn.history(reqs, [probe(*p) for p in corrected], [record], desired=2), record).status == "pass"
    # The autoscaler went down and up again while the load held: flapping.
    flapping = shape[:5] + [(130, 6, 3), (135, 6, 6)] + shape[6:]
    assert no_flapping(syn.history(reqs, [probe(*p) for p in flapping], [record], desired=2), record).status == "fail"


def test_advise_names_the_target_reset_a_set_initial_replicas_brings_on_every_redeploy():
    import copy

    from serve_chaos.harness.app.advise import replica_findings
    from serve_chaos.harness.app.settings import deployment_settings
    from serve_chaos.runtime.app.serve_config import AUTOSCALING_APP

    config = copy.deepcopy(AUTOSCALING_APP.to_serve_config())
    assert replica_findings(deployment_settings(config)) == []
    config["applications"][0]["deployments"][0]["autoscaling_config"]["initial_replicas"] = 2
    (finding,) = replica_findings(deployment_settings(config))
    assert finding.severity == "info" and "initial_replicas=2" in finding.line() and "#30464" in finding.line()


def test_load_bursts_follow_their_windows_and_the_target_must_hold_through_the_gaps():
    from serve_chaos.harness.faults.loadshape import LoadBursts, held_through_gaps

    fault = LoadBursts(rate=20.0, burst_s=8.0, gap_s=7.0, bursts=3)
    assert fault.duration_s == 38.0 and fault.windows() == [(0.0, 8.0), (15.0, 23.0), (30.0, 38.0)]
    assert fault.load_rates() == ((0.0, 20.0), (8.0, None), (15.0, 20.0), (23.0, None), (30.0, 20.0), (38.0, None))
    with pytest.raises(ValueError, match="bursts >= 1"):
        LoadBursts(bursts=0)
    record = FaultRecord("load_bursts", 100.0, 100.0, [], params={"rate": 20.0, "duration_s": 38.0})

    def probe(t, target):
        s = snap(t, syn.BASE_REPLICAS + syn.BASE_SYSTEM)
        s.apps["app"]["deployments"]["d"]["target_num_replicas"] = target
        return s

    reqs = []
    for start, end in fault.windows():
        reqs += syn.requests(100 + start, 100 + end, 20.0, seq0=len(reqs))
        reqs += syn.requests(100 + end, 100 + end + 7.0, 2.0, seq0=len(reqs))
    held = [probe(t, n) for t, n in ((98, 2), (106, 5), (112, 5), (120, 6), (128, 5), (136, 5), (160, 2))]
    history = syn.history(reqs, held, [record], desired=2)
    assert fault.verify(history, record).status == "pass"
    assert held_through_gaps(5)(history, record).status == "pass"
    # Down to 3 in the second gap, before the last burst: it did not hold.
    dropped = [probe(t, n) for t, n in ((98, 2), (106, 5), (120, 3), (132, 5), (160, 2))]
    result = held_through_gaps(5)(syn.history(reqs, dropped, [record], desired=2), record)
    assert (result.status, result.value) == ("fail", 3) and "before the last one ended" in result.detail
    # No burst sent: the fault changed nothing.
    flat = syn.history(syn.requests(95, 150, 2.0), held, [record], desired=2)
    assert fault.verify(flat, record).status == "fail"
