"""Issue 18 item 4: no raw ``ApiException`` leaves the kube target.

Every typed call and stream error becomes one of our errors (one line); idempotent calls are
retried through a transient 5xx or 429; a heal that fails is reported and never costs the
run its artifacts.
"""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from serve_chaos.harness.checks import SLO
from serve_chaos.harness.engine import Engine
from serve_chaos.harness.faults import ReplicaKill
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import SleepyPidConfig
from serve_chaos.runtime.errors import ServeChaosError
from tests.engine_fakes import FakeCluster, factories
from tests.kube_world import Kube


@pytest.fixture
def kube():
    k = Kube()
    k.bring_up()
    yield k
    k.close()


@pytest.mark.parametrize("status", [429, 500, 503, 504])
def test_a_transient_answer_does_not_abort_the_wait(kube, status):
    kube.store.fail("GET", r"/namespaces/serve-chaos/pods$", status, times=2)
    kube.store.fail("GET", r"/rayservices/serve-chaos$", status, times=1)
    kube.cluster.wait_ready(timeout_s=20)
    assert not kube.store.failures  # every injected failure was met, and retried


def test_a_persistent_error_is_one_line_not_an_api_exception(kube):
    kube.store.fail("GET", r"/namespaces/serve-chaos/pods$", 403, "Forbidden", times=100)
    with pytest.raises(ServeChaosError) as err:
        kube.cluster.pods()
    assert "403" in str(err.value) and "\n" not in str(err.value)
    assert not isinstance(err.value, ApiException)


def test_a_delete_refused_with_429_is_sent_again(kube):
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    kube.store.fail("DELETE", rf"/pods/{worker.name}$", 429, "TooManyRequests", times=1)
    kube.cluster.kill_pod(worker.name)
    deletes = [c for c in kube.store.calls if c["method"] == "DELETE"]
    assert len(deletes) == 2


def test_a_websocket_failure_of_an_exec_is_one_line(kube, monkeypatch):
    def broken(*_args, **_kwargs):
        raise ApiException(status=0, reason="Handshake status 500 Internal Server Error")

    monkeypatch.setattr("kubernetes.stream.stream", broken)
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    with pytest.raises(ServeChaosError) as err:
        kube.cluster.signal_process(worker.name, 101, "STOP")
    assert "Handshake status 500" in str(err.value) and "\n" not in str(err.value)


def test_a_heal_that_fails_still_heals_the_rest_and_says_what_failed(kube, monkeypatch):
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    redis = next(p for p in kube.cluster.pods() if p.role == "redis")
    kube.cluster.kill_node(worker.node, replacement_delay_s=3600)
    kube.cluster.kill_pod(redis.name, graceful=False, down_for_s=3600)
    kube.store.fail("PATCH", r"/deployments/serve-chaos-redis/scale$", 500, times=100)
    with pytest.raises(ServeChaosError) as err:
        kube.cluster.heal()
    assert "serve-chaos-redis" in str(err.value) and "\n" not in str(err.value)
    assert kube.cli.calls[-2:] == [("network", worker.node, True), ("start", worker.node)]  # healed anyway


class HealBreaks(FakeCluster):
    def heal(self):
        super().heal()
        from serve_chaos.runtime.kuberay.api import kube_error

        raise kube_error(ApiException(status=0, reason="Handshake status 500"), "exec into pod w-1")


def test_a_failed_heal_is_reported_in_the_verdict_and_the_artifacts_are_written(tmp_path):
    scenario = Scenario(name="fake_kill", title="t", promise="p", fault=ReplicaKill(), slo=SLO(max_recovery_s=5.0),
                        expected_churn={"replica": "victims"}, app=SleepyPidConfig(num_replicas=2).spec(),
                        warmup_s=0.1, hold_s=0.3, min_observe_s=0.5, deadline_s=2.0, gate_timeout_s=3.0)
    cluster = HealBreaks()
    Engine(cluster, tmp_path, seed=7, tick_s=0.05, **factories(cluster)).run(scenario)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert "heal failed" in verdict["error"] and "Handshake status 500" in verdict["error"]
    assert (run_dir / "requests.jsonl").exists()
