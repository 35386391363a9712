"""What would help: the remedy table, keyed by scenario and check, as pure functions of verdicts."""

from __future__ import annotations

import pytest

from serve_chaos.harness.app.settings import app_summary
from serve_chaos.harness.catalog import load_scenarios
from serve_chaos.harness.report.remedies import MATCHES, REMEDIES, advice, config_text, remedies_for
from serve_chaos.runtime.app.serve_config import COMPOSED_APP, SCENARIO_APP, SleepyPidConfig


def verdict(scenario: str, app=SCENARIO_APP, **extra) -> dict:
    return {"scenario": scenario, "app_config": app_summary(app.to_serve_config(), app.source) if app else None,
            **extra}


def single_replica_app() -> dict:
    config = {"applications": [{"name": "a", "import_path": "m:app", "deployments": [{"name": "d"}]}]}
    return {"scenario": "replica_failure", "app_config": app_summary(config, "mine.yaml")}


def test_every_row_names_remedies_that_exist():
    assert all(key in REMEDIES for *_, keys in MATCHES for key in keys)
    assert all(r.scenario in load_scenarios() for r in REMEDIES.values())


@pytest.mark.parametrize("name", sorted(load_scenarios()))
def test_a_broken_promise_of_every_scenario_says_what_would_help(name):
    assert remedies_for(verdict(name), "availability_during_fault"), name
    assert remedies_for(verdict(name), "recovery_s"), name


def test_the_remedy_depends_on_the_users_config():
    assert [r.key for r in remedies_for(single_replica_app(), "availability_during_fault")] == ["spare_replicas"]
    assert [r.key for r in remedies_for(verdict("replica_failure"), "availability_during_fault")] == ["client_retry"]
    assert [r.key for r in remedies_for(verdict("network_partition", COMPOSED_APP), "availability_during_fault")] \
        == ["handle_timeout"]
    assert [r.key for r in remedies_for(verdict("network_partition"), "front_door_drop_s")] == ["client_retry"]
    assert [r.key for r in remedies_for(verdict("worker_node_failure"), "recovery_s")] == ["node_detection"]
    soft = SleepyPidConfig().spec()  # Serve's soft spreading: 6 replicas may share a node
    assert [r.key for r in remedies_for(verdict("worker_node_failure", soft), "recovery_s")] == \
        ["node_detection", "spread"]
    assert [r.key for r in remedies_for(verdict("worker_pod_failure", soft), "longest_outage_s")] == ["spread"]
    # 6 replicas, at most 2 per node: spreading is not what would help; retrying what was in flight is.
    assert [r.key for r in remedies_for(verdict("worker_pod_failure"), "longest_outage_s")] == ["client_retry"]


def test_the_users_own_setting_is_named():
    composed = verdict("worker_node_failure", COMPOSED_APP, settings={"gcs_ft": False})
    assert config_text(REMEDIES["spread"], composed) == (
        "composed/Ingress num_replicas=3 max_replicas_per_node=2; composed/Downstream num_replicas=3 "
        "max_replicas_per_node=2 (in bundled composed example (runtime/app/composed.py))")
    assert config_text(REMEDIES["gcs_ft"], composed).startswith("gcs_ft=False")
    assert config_text(REMEDIES["handle_timeout"], composed).startswith("http_options.request_timeout_s unset")
    assert "num_replicas unset (Serve's default: 1)" in config_text(REMEDIES["spare_replicas"], single_replica_app())
    assert config_text(REMEDIES["gcs_ft"], verdict("x", None)) == ""  # nothing known, nothing claimed


def test_advice_for_a_broken_verdict_carries_the_evidence():
    check = {"name": "front.longest_outage_s", "status": "fail", "value": 3.5, "bound": "<= 1.0 s", "unit": "s",
             "detail": ""}
    broken = verdict("worker_pod_failure", SleepyPidConfig().spec(), status="fail", checks=[check], known_broken={},
                     metrics={"endpoints": {"front": {}}})
    (item,) = advice(broken)
    assert item.remedy.key == "spread" and item.checks == ("front.longest_outage_s",)
    assert item.measured == "front.longest_outage_s = 3.50 s (bound <= 1.0 s)"
    assert "Yours: sleepy/SleepyPid num_replicas=6 max_replicas_per_node unset (Serve's default: soft spreading)" \
        in item.line()
    assert advice({**broken, "status": "pass", "checks": [{**check, "status": "pass"}]}) == []
