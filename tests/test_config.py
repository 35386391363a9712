"""Validation of cluster, app, load and scenario settings: bad values are one-line ConfigErrors."""

import pytest

from serve_chaos.harness.catalog import load_scenarios, select
from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults import ReplicaKill
from serve_chaos.harness.load.spec import LoadSpec, resolve_endpoints
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import SleepyPidConfig, deployed_config_problem, desired_replicas
from serve_chaos.runtime.cluster import Endpoints
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.local.config import LocalClusterConfig


def test_default_app_is_the_guides_sleepy_pid():
    config = SleepyPidConfig().to_serve_config()
    (app,) = config["applications"]
    (dep,) = app["deployments"]
    assert app["route_prefix"] == "/" and app["import_path"] == "serve_chaos.runtime.app.sleepy_pid:app"
    assert dep == {"name": "SleepyPid", "num_replicas": 6, "ray_actor_options": {"num_cpus": 0}}
    assert config["proxy_location"] == "EveryNode"
    assert desired_replicas(config) == 6
    assert SleepyPidConfig().spec().recovery_settings() == {
        "health_check_period_s": 10.0, "health_check_timeout_s": 30.0, "graceful_shutdown_timeout_s": 20.0}


def test_app_options_are_written_and_validated():
    config = SleepyPidConfig(num_replicas=3, health_check_period_s=1, health_check_timeout_s=2,
                             max_replicas_per_node=1).to_serve_config()
    dep = config["applications"][0]["deployments"][0]
    assert (dep["health_check_period_s"], dep["health_check_timeout_s"], dep["max_replicas_per_node"]) == (1, 2, 1)
    for bad in ({"num_replicas": 0}, {"health_check_period_s": 0}, {"max_replicas_per_node": 0}):
        with pytest.raises(ConfigError):
            SleepyPidConfig(**bad)


@pytest.mark.parametrize("change, words", [
    ({"workers": 0}, "workers: Input should be greater than or equal to 1"),
    ({"workers": 2.5}, "workers: Input should be a valid integer"),
    ({"isolation": "docker"}, "isolation: Input should be 'auto', 'netns' or 'loopback'"),
    ({"front_port": 70000}, "front_port: Input should be less than or equal to 65535"),
    ({"home": "/tmp/" + "x" * 60}, "107 bytes"),
    ({"gcs_ft": "no"}, "gcs_ft: Input should be a valid boolean"),
    ({"head": "big"}, "head: Input should be a valid dictionary or instance of PodResources"),
    ({"head": {"num_cpus": -1}}, "head.num_cpus: Input should be greater than or equal to 1"),
    ({"timing": {"grace_period_s": -5}}, "timing.grace_period_s: Input should be greater than or equal to 0"),
    ({"timing": {"grace_period_s": float("nan")}}, "timing.grace_period_s: Input should be a finite number"),
    ({"timing": {"grace": 5}}, "timing.grace: Extra inputs are not permitted"),
    ({"dashboard_port": 18000}, "dashboard_port 18000 is also the front_port"),
    ({"app": {"replicas": 3}}, "app: "),
])
def test_cluster_config_errors_are_one_line(change, words):
    with pytest.raises(ConfigError) as err:
        LocalClusterConfig.from_dict(change)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_cluster_config_round_trips_through_json():
    import json

    cfg = LocalClusterConfig(workers=3, gcs_ft=False)
    assert LocalClusterConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ConfigError):
        LocalClusterConfig.from_dict({"wokers": 2})


def test_load_spec_validation_and_endpoint_resolution():
    with pytest.raises(ConfigError):
        LoadSpec(rate=0)
    with pytest.raises(ConfigError):
        LoadSpec(endpoints=("http://x",))
    eps = Endpoints(front_door="http://127.0.0.1:18000", dashboard="http://d",
                    pods={"head": "http://h:8000", "worker-1": "http://a:8000", "worker-2": "http://b:8000"})
    roles = {"head": "head", "worker-1": "worker", "worker-2": "worker"}
    got = resolve_endpoints(LoadSpec(endpoints=("front", "pods:worker", "pod:head")), eps, roles)
    assert [(e["name"], e["url"]) for e in got] == [
        ("front", "http://127.0.0.1:18000"), ("pods:worker#1", "http://a:8000"),
        ("pods:worker#2", "http://b:8000"), ("pod:head", "http://h:8000")]
    with pytest.raises(ConfigError):
        resolve_endpoints(LoadSpec(endpoints=("pod:nope",)), eps, roles)


def test_scenario_validation():
    base = dict(name="x", title="t", promise="p", fault=ReplicaKill(), slo=SLO(), expected_churn={})
    Scenario(**base)
    with pytest.raises(ConfigError):
        Scenario(**{**base, "expected_churn": {"replica": "some"}})
    with pytest.raises(ConfigError):
        Scenario(**{**base, "expected_churn": {"gpu": "none"}})
    with pytest.raises(ConfigError):
        Scenario(**{**base, "name": "bad name!"})
    with pytest.raises(ConfigError):
        Scenario(**{**base, "deadline_s": 5, "min_observe_s": 10})


def test_catalogue_has_the_guides_failures_and_rejects_unknown_names():
    names = set(load_scenarios())
    assert {"replica_failure", "proxy_failure", "controller_failure"} <= names
    with pytest.raises(ConfigError) as err:
        select(["nope"])
    assert "unknown scenario 'nope'" in str(err.value)
    assert [s.name for s in select(["all"])] == list(load_scenarios())


def test_app_module_is_self_contained_and_agrees_with_the_harness():
    import ast
    from pathlib import Path

    from serve_chaos.runtime.app import serve_config, spec

    source = Path(serve_config.__file__).with_name("sleepy_pid.py").read_text()
    tree = ast.parse(source)
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith(("serve_chaos", "runtime", "harness")) for m in imported)
    consts = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and t.id in ("HEALTH_ROUTE", "HEALTH_MODES")}
    assert consts == {"HEALTH_ROUTE": spec.HEALTH_ROUTE, "HEALTH_MODES": serve_config.HEALTH_MODES}
    from serve_chaos.harness.faults import badversion
    assert f'BAD_VERSION_ENV = "{badversion.BAD_VERSION_ENV}"' in source
    assert f'FAIL_RECONFIGURE_KEY = "{badversion.FAIL_RECONFIGURE_KEY}"' in source
    from serve_chaos.harness.faults import crashloop
    assert f'START_GATE_ROUTE = "{crashloop.START_GATE_ROUTE}"' in source
    for mode in ("constructor", "health"):
        assert f'bad == "{mode}"' in source


def test_node_loss_bounds_follow_the_target():
    from serve_chaos.harness.bounds import node_loss_bounds

    local = node_loss_bounds({"replica_start_s": 10.0}, 10.0, needs_replacement_pod=True)
    # 5 x (10 s + 3 s) + 3 s probe slack, then the app's measured 10 s start + 15 s to be routed to
    assert local == {"max_fault_effect_s": 68.0, "max_recovery_s": 93.0}
    # Not measured (the controller's log unreadable): the stated 30 s fallback.
    assert node_loss_bounds({}, 10.0, needs_replacement_pod=True)["max_recovery_s"] == 113.0
    kube_settings = {"podgc_quarantine_s": 40.0, "podgc_period_s": 20.0, "replica_start_s": 10.0}
    kube = node_loss_bounds(kube_settings, 10.0, needs_replacement_pod=True)
    # Node deleted after 10 s, PodGC after 40 s quarantine + up to 2 x 20 s, then the pod joins (15 s)
    assert kube == {"max_fault_effect_s": 90.0, "max_recovery_s": 130.0}
    soft = node_loss_bounds(kube_settings, 10.0, needs_replacement_pod=False)
    assert soft["max_recovery_s"] == 115.0


def test_scenario_slos_take_the_targets_bounds():
    from serve_chaos.harness.catalog import load_scenarios

    node = load_scenarios()["worker_node_failure"].phases()[0]
    assert node.slo_for({}).max_recovery_s == node.slo.max_recovery_s == 113.0
    assert node.slo_for({"replica_start_s": 10.0}).max_recovery_s == 93.0
    kube = {"podgc_quarantine_s": 40.0, "podgc_period_s": 20.0, "replica_start_s": 10.0}
    assert node.slo_for(kube).max_recovery_s == 115.0
    # A slow app's own start moves the bound; SleepyPid's 10 s is never assumed.
    assert node.slo_for({**kube, "replica_start_s": 60.0}).max_recovery_s == 165.0


def test_the_gate_sees_placement_options_serve_took_but_never_applied():
    desired = SleepyPidConfig(max_replicas_per_node=3).spec().to_serve_config()
    app = desired["applications"][0]
    dep = app["deployments"][0]

    def details(effective: int | None) -> dict:
        config = {"name": dep["name"], "num_replicas": 6}
        if effective is not None:
            config["max_replicas_per_node"] = effective
        return {"applications": {app["name"]: {"deployed_app_config": app, "deployments": {
            dep["name"]: {"status": "HEALTHY", "deployment_config": config}}}}}

    # Measured on Ray 2.60: deployed_app_config says 3, the deployment still runs 2.
    problem = deployed_config_problem(desired, details(2))
    assert problem and "runs max_replicas_per_node 2, not 3" in problem and "\n" not in problem
    assert deployed_config_problem(desired, details(3)) is None
    assert deployed_config_problem(desired, details(None)) is None  # an older Ray that does not report it
