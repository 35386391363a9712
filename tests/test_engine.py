"""The engine without a cluster: healing on every way out, gates, aborts, --step, follow-ups,
and the victims a seed picks -- with a fake cluster, load and prober (tests/engine_fakes.py)."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from harness.checks import SLO
from harness.engine import AbortPolicy, Engine, GateError
from harness.faults import MassReplicaKill, ReplicaKill
from harness.interrupts import STOP_SIGNALS, interrupt_on_stop_signals
from harness.scenario import Followup, Scenario, scenario_rng
from runtime.app.serve_config import SleepyPidConfig
from runtime.errors import InfrastructureError
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
    from runtime.errors import ClusterLost

    cluster = FakeCluster(respawn_s=None)
    threading.Timer(1.0, lambda: setattr(cluster, "gone", "taken down by `serve-chaos down --force`")).start()
    with pytest.raises(ClusterLost):
        engine(cluster, tmp_path).run(scenario(deadline_s=10.0))
    data = verdict(tmp_path)
    assert data["status"] == "interrupted" and "down --force" in data["error"]
    assert "heal" not in cluster.calls  # nothing to heal on a cluster that is gone
