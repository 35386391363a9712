"""The engine without a cluster: healing on every way out, gates, aborts, --step, follow-ups,
and the victims a seed picks -- with a fake cluster, load and prober (tests/engine_fakes.py)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import replace

import pytest

from serve_chaos.harness.checks import SLO
from serve_chaos.harness.engine import AbortPolicy, Engine, GateError
from serve_chaos.harness.faults import MassReplicaKill, ReplicaKill
from serve_chaos.harness.interrupts import STOP_SIGNALS, interrupt_on_stop_signals
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Followup, Scenario, scenario_rng
from serve_chaos.runtime.app.serve_config import SleepyPidConfig
from serve_chaos.runtime.errors import InfrastructureError
from tests.engine_fakes import FakeCluster, factories


def scenario(fault=None, followups=(), **kw) -> Scenario:
    values = dict(name="fake_kill", title="t", promise="p", fault=fault or ReplicaKill(),
                  slo=SLO(max_recovery_s=5.0), expected_churn={"replica": "victims"},
                  app=SleepyPidConfig(num_replicas=2).spec(), warmup_s=0.1, hold_s=0.3, min_observe_s=0.5,
                  deadline_s=2.0, gate_timeout_s=3.0, followups=followups)
    values.update(kw)
    return Scenario(**values)


def engine(cluster: FakeCluster, tmp_path, **kw) -> Engine:
    return Engine(cluster, tmp_path, seed=7, tick_s=0.05, **factories(cluster), **kw)


def verdict(tmp_path) -> dict:
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    return json.loads((run_dir / "verdict.json").read_text())


def test_a_replica_kill_is_judged_and_healed_before_the_load_drains(tmp_path):
    cluster = FakeCluster()
    result = engine(cluster, tmp_path).run(scenario())
    assert result.status == "pass", result.violation_lines()
    assert result.evaluation.metrics["churn"]["replica"]["left"] == [f"{result.fault.victims[0]['actor_id']}:"
                                                                    f"{result.fault.victims[0]['pid']}"]
    calls = cluster.calls
    assert calls.index("kill_actor") < calls.index("heal") < calls.index("load.stop")


class ExplodingFault(ReplicaKill):
    """Kills its victim, then fails the way an infrastructure call fails."""

    def inject(self, cluster, plan):
        super().inject(cluster, plan)
        raise InfrastructureError("the exec into the head broke")


class InterruptedFault(ReplicaKill):
    def inject(self, cluster, plan):
        super().inject(cluster, plan)
        cluster.broken = True
        raise KeyboardInterrupt


def test_an_exception_during_the_fault_still_heals_and_reports(tmp_path):
    cluster = FakeCluster()
    with pytest.raises(InfrastructureError):
        engine(cluster, tmp_path).run(scenario(ExplodingFault()))
    assert cluster.calls.index("heal") < cluster.calls.index("load.stop")
    data = verdict(tmp_path)
    assert data["status"] == "error" and "exec into the head broke" in data["error"]


def test_ctrl_c_heals_and_reports_interrupted(tmp_path):
    cluster = FakeCluster()
    with pytest.raises(KeyboardInterrupt):
        engine(cluster, tmp_path).run(scenario(InterruptedFault()))
    assert not cluster.broken and "heal" in cluster.calls
    assert cluster.calls.index("heal") < cluster.calls.index("load.stop")
    assert verdict(tmp_path)["status"] == "interrupted"


@pytest.fixture
def stop_signals():
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    interrupt_on_stop_signals()
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_sigterm_heals_like_ctrl_c(tmp_path, stop_signals):
    cluster = FakeCluster(respawn_s=None)  # never recovers: the engine is still observing
    timer = threading.Timer(1.2, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        engine(cluster, tmp_path).run(scenario(deadline_s=10.0))
    timer.cancel()
    assert "heal" in cluster.calls and len(cluster.alive) == 2
    assert verdict(tmp_path)["status"] == "interrupted"


def test_an_abort_halts_heals_and_reports(tmp_path):
    cluster = FakeCluster(respawn_s=None)
    result = engine(cluster, tmp_path, abort=AbortPolicy(min_availability=0.5, window_s=0.3)).run(
        scenario(MassReplicaKill(), expected_churn={"replica": "all"}, deadline_s=10.0))
    assert result.status == "aborted" and "below 0.5" in result.error
    assert cluster.calls.index("heal") < cluster.calls.index("load.stop")


def test_a_declined_step_injects_nothing(tmp_path):
    cluster = FakeCluster()
    result = engine(cluster, tmp_path, confirm=lambda plan: False).run(scenario())
    assert result.status == "skipped" and "declined" in result.error
    assert "kill_actor" not in cluster.calls and "heal" in cluster.calls


def test_a_cluster_not_at_steady_state_is_a_gate_error(tmp_path):
    cluster = FakeCluster(replicas=1)  # the scenario wants 2
    with pytest.raises(GateError) as err:
        engine(cluster, tmp_path).run(scenario(gate_timeout_s=1.0))
    assert "steady state before the fault" in err.value.what and "1/2 replicas RUNNING" in err.value.what
    assert "kill_actor" not in cluster.calls and "load.stop" in cluster.calls


def test_follow_ups_wait_for_recovery(tmp_path):
    cluster = FakeCluster(respawn_s=None)
    follow = Followup(name="again", fault=ReplicaKill(), slo=SLO(max_recovery_s=5.0),
                      expected_churn={"replica": "victims"}, deadline_s=2.0, min_observe_s=0.5)
    result = engine(cluster, tmp_path).run(scenario(followups=(follow,)))
    assert cluster.calls.count("kill_actor") == 1
    completed = next(c for c in result.evaluation.checks if c.name == "phases.completed")
    assert completed.status == "fail" and "again" in completed.detail


def test_follow_ups_run_after_recovery(tmp_path):
    cluster = FakeCluster()
    follow = Followup(name="again", fault=ReplicaKill(), slo=SLO(max_recovery_s=5.0),
                      expected_churn={"replica": "victims"}, deadline_s=2.0, min_observe_s=0.5)
    result = engine(cluster, tmp_path).run(scenario(followups=(follow,)))
    assert cluster.calls.count("kill_actor") == 2 and result.status == "pass", result.violation_lines()
    assert "again.recovery_s" in result.evaluation.metrics["status_by_check"]


def test_dry_run_names_the_victims_the_run_picks(tmp_path):
    sc = scenario()
    cluster = FakeCluster()
    planned = sc.fault.plan(cluster.snapshot(0.0), cluster.pods(), scenario_rng(7, sc.name))
    result = engine(cluster, tmp_path).run(sc)
    assert result.verdict["plans"][0]["victims"] == planned.victims


def test_someone_elses_fault_in_effect_is_a_gate_error(tmp_path):
    cluster = FakeCluster(interfering=["pod worker-1 is partitioned"])
    with pytest.raises(GateError) as err:
        engine(cluster, tmp_path).run(scenario())
    assert "not ours alone: pod worker-1 is partitioned" in err.value.what
    assert "kill_actor" not in cluster.calls


def test_a_cluster_taken_away_ends_the_run_as_interrupted(tmp_path):
    from serve_chaos.runtime.errors import ClusterLost

    cluster = FakeCluster(respawn_s=None)
    threading.Timer(1.0, lambda: setattr(cluster, "gone", "taken down by `serve-chaos down --force`")).start()
    with pytest.raises(ClusterLost):
        engine(cluster, tmp_path).run(scenario(deadline_s=10.0))
    data = verdict(tmp_path)
    assert data["status"] == "interrupted" and "down --force" in data["error"]
    assert "heal" not in cluster.calls  # nothing to heal on a cluster that is gone


# ---------------------------------------------------------------------- pods recreated under load
def node_loss_then_replica_kill(**kw) -> Scenario:
    """Lose a worker's node, then -- once recovered -- kill a replica: the follow-up is judged
    on every worker slot, the recreated pod's included."""
    from serve_chaos.harness.faults import NodeLoss

    follow = Followup(name="then", fault=ReplicaKill(), expected_churn={"replica": "victims"},
                      slo=SLO(max_recovery_s=5.0, endpoint_availability={"pods:worker": 1.0}),
                      deadline_s=3.0, min_observe_s=0.5, delay_s=0.3)
    return scenario(NodeLoss(pod_role="worker"), followups=(follow,), deadline_s=3.0,
                    expected_churn={"replica": "victims", "pod": "victims", "proxy": "victims_or_idle"},
                    app=SleepyPidConfig(num_replicas=4).spec(),
                    load=LoadSpec(timeout_s=1.0, endpoints=("front", "pods:worker")), **kw)


def recreating_cluster(**kw) -> FakeCluster:
    from tests.engine_fakes import standard_pods

    return FakeCluster(replicas=4, pod_list=standard_pods(workers=2), spare_nodes=("node-spare",), **kw)


@pytest.mark.parametrize("rename", [False, True], ids=["local: same name, new IP", "kuberay: new name"])
def test_a_pod_recreated_at_a_new_address_keeps_its_slot_and_is_judged(tmp_path, rename):
    cluster = recreating_cluster(rename_on_recreate=rename)
    result = engine(cluster, tmp_path).run(node_loss_then_replica_kill())
    assert result.status == "pass", result.violation_lines()
    lost = next(v for v in result.fault.victims if v["role"] == "pod")
    reqs = result.history.requests
    slots = sorted(e for e in reqs["endpoint"].unique() if e.startswith("pods:"))
    assert slots == ["pods:worker#1", "pods:worker#2"]
    # The slot that aimed at the lost pod: vacant while it had no pod, then on its successor.
    slot = reqs.loc[reqs["incarnation"] == f"{lost['uid']}#0", "endpoint"].iloc[0]
    mine = reqs[reqs["endpoint"] == slot]
    followup = result.history.faults[1]
    after = mine[mine["t"] >= followup.t_inject]
    assert len(after) >= 5 and after["ok"].all()
    assert set(after["incarnation"]) != {f"{lost['uid']}#0"} and set(after["address"]) != {f"http://{lost['ip']}"}
    assert (after["pod"] == lost["name"]).all() != rename  # KubeRay: another name, the same slot
    assert (result.history.unsent["endpoint"] == slot).any()  # vacant until the new pod was ready
    judged = result.evaluation.metrics["followups"]["then"]["endpoints"][slot]
    assert judged["availability_during_fault"] == 1.0


def test_without_following_the_old_address_fails_the_next_fault(tmp_path, monkeypatch):
    """The failure this guards against: a slot resolved once keeps timing out on the dead
    address, and the follow-up is charged with it."""
    monkeypatch.setattr(Engine, "_follow_pods", lambda self, run: None)
    result = engine(recreating_cluster(), tmp_path).run(node_loss_then_replica_kill())
    assert result.status == "fail"
    failed = {c.name for c in result.evaluation.checks if c.status == "fail"}
    assert "then.pods:worker.availability_during_fault" in failed and "then.recovery_s" in failed
    assert "main.recovery_s" not in failed and "recovery_s" not in failed  # the node loss itself recovered


# ---------------------------------------------------------------------- soak
SOAK_NAMES = ("gcs_store_lost", "worker_node_failure", "health_check_raise_default")


def soak_for_the_fake(phases: int, names: tuple[str, ...] = SOAK_NAMES):
    """``soak --faults gcs_store_lost,worker_node_failure,health_check_raise_default --seed 11`` (or
    ``names``) as built, its first ``phases`` faults, with waits and timeouts scaled to the fake (SLOs, bounds,
    churn expectations and checks untouched); the health check is switched through the fake."""
    from dataclasses import replace

    from serve_chaos.harness.faults import HealthCheckFailure, RedisLoss
    from serve_chaos.harness.soak import build_soak
    from tests.engine_fakes import FakeHealthCheckFailure

    def fake(fault):
        if isinstance(fault, HealthCheckFailure):
            return FakeHealthCheckFailure(mode=fault.mode, path=fault.path)
        return replace(fault, duration_s=0.5) if isinstance(fault, RedisLoss) else fault

    soak = build_soak(120, 11, min_interval_s=0.3, max_interval_s=0.6, names=names)
    follow = tuple(replace(f, fault=fake(f.fault), min_observe_s=0.5, deadline_s=4.0)
                   for f in soak.followups[:phases - 1])
    return replace(soak, fault=fake(soak.fault), followups=follow, min_observe_s=0.5, deadline_s=4.0, hold_s=0.3,
                   warmup_s=0.1, gate_timeout_s=5.0, load=replace(soak.load, timeout_s=0.5))


def soak_engine(tmp_path):
    from serve_chaos.harness.app.selection import AppUnderTest
    from tests.engine_fakes import standard_pods

    app = SleepyPidConfig(num_replicas=6, max_replicas_per_node=2).spec()
    cluster = FakeCluster(replicas=6, pod_list=standard_pods(workers=2, redis=True), spare_nodes=("node-spare",),
                          config=app.to_serve_config())
    return cluster, engine(cluster, tmp_path, app=AppUnderTest(base=app))


def test_a_soak_across_node_loss_is_judged_fault_by_fault(tmp_path):
    soak = soak_for_the_fake(phases=4)
    assert [p.fault.name for p in soak.phases()] == ["health_check_failure", "node_loss", "redis_loss", "node_loss"]
    cluster, eng = soak_engine(tmp_path)
    result = eng.run(soak)
    assert result.status == "pass", result.violation_lines()
    assert [f.phase for f in result.history.faults] == [p.name for p in soak.phases()]
    by_check = result.evaluation.metrics["status_by_check"]
    recovery = {"": "recovery_s", "02_worker_node_failure.": "recovery_s",
                "03_gcs_store_lost.": "recovery_after_fault_end_s", "04_worker_node_failure.": "recovery_s"}
    for phase, metric in recovery.items():
        assert by_check[f"{phase}{metric}"] == "pass" and by_check[f"{phase}fault.took_effect"] == "pass"
    # Redis loss after the node loss: every worker slot, the recreated pod's too, kept serving.
    assert by_check["03_gcs_store_lost.pods:worker.availability_during_fault"] == "pass"
    # The lost node was healed before the next fault, so the second loss had a node to come back on.
    assert any(a.get("between_phases") for a in result.history.faults[1].heal_actions)
    assert not any(c.startswith("unplaced:") for c in cluster.calls)
    # Each fault's figures start at the previous one's recovery: the health check's phase saw
    # no request of the node loss.
    windows = [result.evaluation.metrics["window"]] + [
        m["window"] for m in result.evaluation.metrics["followups"].values()]
    assert all(later["start"] >= earlier["end"] for earlier, later in zip(windows, windows[1:]))


@pytest.mark.parametrize("heal_between", [True, False])
def test_a_second_node_loss_needs_the_first_lost_node_back(tmp_path, monkeypatch, heal_between):
    """Two node losses in a row (a spare node for one replacement): healed between the phases,
    the second loss's pod comes back on the first lost node; left lost, it has nowhere to go and
    what the first fault left behind would be charged to the second."""
    if not heal_between:
        monkeypatch.setattr(Engine, "_clear_after", lambda self, run, record: None)
    cluster, eng = soak_engine(tmp_path)
    result = eng.run(soak_for_the_fake(phases=2, names=("worker_node_failure",)))
    assert len([c for c in cluster.calls if c.startswith("kill_node:")]) == 2
    failed = {c.name for c in result.evaluation.checks if c.status == "fail"}
    assert "recovery_s" not in failed
    if heal_between:
        assert result.status == "pass", result.violation_lines()
    else:
        assert result.status == "fail" and any(c.startswith("unplaced:") for c in cluster.calls)
        assert "02_worker_node_failure.recovery_s" in failed


def test_a_fault_with_nothing_to_act_on_in_this_cluster_is_skipped_not_failed(tmp_path):
    # Pods without a memory limit (the kube target before it read resources.limits.memory):
    # memory pressure does not apply -- a skip with the reason, never a failed run.
    from dataclasses import replace

    from serve_chaos.harness.faults import MemoryPressure
    from serve_chaos.runtime.cluster import Capabilities

    class Pressable(FakeCluster):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(ready_timeout_s=5.0, press_memory=True)

    from serve_chaos.harness.app.selection import ScenarioSkipped

    cluster = Pressable()
    cluster.pod_list = [replace(p, memory_limit=None) for p in cluster.pod_list]
    runner = engine(cluster, tmp_path)
    with pytest.raises(ScenarioSkipped, match="has no memory limit"):
        runner.run(scenario(fault=MemoryPressure(), expected_churn={}))
    assert runner.last_result.status == "skipped"
    assert verdict(tmp_path)["status"] == "skipped"
    assert not any("press" in c for c in cluster.calls) and "heal" in cluster.calls


def test_the_load_waits_for_a_worker_the_front_door_has_not_checked_yet(tmp_path):
    # A cluster is ready once the front door serves through one pod; a worker's proxy may pass
    # its readiness check up to the front door's lag later.  Aiming at pods:worker before then
    # would leave the worker out of the load for the whole run.
    cluster = FakeCluster()
    late = next(p for p in cluster.pod_list if p.role == "worker")
    cluster._replace_pod(late, replace(late, ready=False))
    threading.Timer(0.5, cluster._ready, args=(replace(late, ready=False),)).start()
    spec = LoadSpec(endpoints=("front", "pods:worker"))
    slots = engine(cluster, tmp_path)._slots(spec, cluster.endpoints(), lag_s=5.0)
    assert late.name in {t.pod for t in slots.targets if t.url}
    # a pod that never passes (it hosts no replica) holds a vacant slot once the lag has passed
    never = next(p for p in cluster.pod_list if p.role == "worker")
    cluster._replace_pod(never, replace(never, ready=False))
    t0 = time.monotonic()
    slots = engine(cluster, tmp_path)._slots(spec, cluster.endpoints(), lag_s=0.5)
    assert [t.url for t in slots.targets if t.pod == never.name] == [None]
    assert 0.5 <= time.monotonic() - t0 < 10.0
