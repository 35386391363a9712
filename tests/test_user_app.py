"""The user's own app: its Serve config, traffic and code checked before anything runs, the
kind manifests that carry it, the scenarios that apply to it and the ones skipped with a reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from serve_chaos.harness.app.options import app_spec, app_under_test
from serve_chaos.harness.app.selection import AppUnderTest, ScenarioSkipped
from serve_chaos.harness.catalog import load_scenarios
import random

from serve_chaos.harness.faults import DOWNSTREAM, FaultNotApplicable, NodeLoss, NoSuchDeployment, PodKill, ReplicaHang, ReplicaKill, aimed
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.app.serve_config import COMPOSED_APP, SCENARIO_APP
from serve_chaos.runtime.app.spec import AppSpec, load_requests
from serve_chaos.runtime.cluster import PodInfo
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.kuberay import manifests
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "two-apps"
CONFIG, SRC, REQUESTS = EXAMPLE / "serve_config.yaml", EXAMPLE / "src", EXAMPLE / "requests.yaml"


def user_app(**kw) -> AppSpec:
    return AppSpec.from_file(CONFIG, app_dir=str(SRC), **kw)


def test_the_example_config_reads_as_two_apps_with_its_code():
    app = user_app(requests_file=str(REQUESTS))
    assert [d.ref for d in app.deployments()] == ["greeter/Greeter", "pipeline/Frontend", "pipeline/Scorer"]
    assert app.desired_replicas() == 8
    assert dict(app.files).keys() == {"greeter.py", "pipeline.py"}
    assert [r.label for r in app.routes()] == ["greet", "score"]
    # Without a requests file: a GET of every application's route prefix, answered 200.
    assert [(r.label, r.path, r.expect_status) for r in user_app().routes()] == [
        ("greeter", "/greet", 200), ("pipeline", "/pipeline", 200)]
    assert app.recovery_settings("pipeline/Scorer") == {
        "health_check_period_s": 10.0, "health_check_timeout_s": 30.0, "graceful_shutdown_timeout_s": 20.0}


@pytest.mark.parametrize("text, words", [
    ("applications: [{name: a, import_path: x:app, deployments: [{name: D, num_replicas: zero}]}]",
     "does not fit Serve's config schema: applications.0.deployments.0: `num_replicas` must be an int"),
    ("applications: []", "needs a non-empty `applications` list"),
    ("applications: [{name: a, route_prefix: /x, import_path: x:app}, {name: a, route_prefix: /y, import_path: y:app}]",
     "Found multiple configs for application \"a\""),
    ("applications: [{name: a, route_prefix: /x, import_path: x:app}, {name: b, route_prefix: /x, import_path: y:app}]",
     "Found duplicate applications for route prefix \"/x\""),
    ("applications: [{name: a\n", "is not valid YAML at line"),
])
def test_a_config_that_is_not_serves_schema_is_one_line(tmp_path, text, words):
    path = tmp_path / "app.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        AppSpec.from_file(path)
    assert words in err.value.one_line() and "\n" not in err.value.one_line()


@pytest.mark.parametrize("text, words", [
    ("- {method: FETCH, path: /}", "item 1: method: method 'FETCH' is not an HTTP method"),
    ("- {path: nope}", "item 1: path: path 'nope' must start with /"),
    ("- {path: /, expect_status: 700}", "item 1: expect_status"),
    ("- {path: /, colour: red}", "item 1: colour"),
    ("- {path: /a}\n- {path: /a}", "two requests are both called 'GET /a'"),
    ("{path: /}", "must be a non-empty YAML list"),
])
def test_a_bad_requests_file_is_one_line(tmp_path, text, words):
    path = tmp_path / "requests.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_requests(path)
    assert words in err.value.one_line(), err.value.one_line()


@pytest.mark.parametrize("call, words", [
    (lambda: app_spec(None, app_dir="src"), "--app-dir needs --app"),
    (lambda: app_spec(None, image="me/app:1"), "--image needs --app"),
    (lambda: app_spec("/nope.yaml"), "--app /nope.yaml is not a file"),
    (lambda: app_spec(str(CONFIG), app_dir="/nope"), "--app-dir /nope is not a directory"),
    (lambda: app_under_test(user_app(), deployment="pipeline/Nope"),
     "--deployment 'pipeline/Nope' is not a deployment of"),
    (lambda: app_under_test(user_app(), requests=str(REQUESTS), locustfile="x.py"), "pass one of them"),
    (lambda: app_under_test(user_app(), locustfile="/nope.py"), "--locustfile /nope.py is not a file"),
])
def test_app_option_mistakes_are_one_line(call, words):
    with pytest.raises(ConfigError) as err:
        call()
    assert words in err.value.one_line(), err.value.one_line()


def test_a_locustfile_without_one_http_user_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "lf.py"
    bad.write_text("from locust import HttpUser, task\n\nclass A(HttpUser):\n    @task\n    def t(self): pass\n\n"
                   "class B(HttpUser):\n    @task\n    def t(self): pass\n")
    with pytest.raises(ConfigError) as err:
        app_under_test(None, locustfile=str(bad))
    assert "defines 2 HttpUser classes; it must define exactly one" in err.value.one_line()


# ---------------------------------------------------------------------- which scenarios apply
def test_bundled_runs_shape_the_app_and_a_users_app_is_run_as_it_is_or_skipped_with_a_reason():
    scenarios = load_scenarios()
    bundled, users = AppUnderTest(), AppUnderTest(base=user_app())
    assert bundled.app_for(scenarios["strict_spreading"]).deployments()[0].num_replicas == 3
    assert bundled.app_for(scenarios["downstream_replica_failure"]) == COMPOSED_APP
    assert users.app_for(scenarios["downstream_replica_failure"]) == users.base
    assert users.app_for(scenarios["worker_node_failure"]) == users.base
    with pytest.raises(ScenarioSkipped, match="reshaped to 3 replicas at 1 per node"):
        users.app_for(scenarios["strict_spreading"])
    with pytest.raises(ScenarioSkipped, match="does not opt into it .pass --health-toggle"):
        users.app_for(scenarios["health_check_raise_fast"])
    toggled = AppUnderTest(base=user_app().with_health_toggle(True))
    fast = toggled.app_for(scenarios["health_check_raise_fast"]).deployments()
    assert {(d.health_check_period_s, d.health_check_timeout_s) for d in fast} == {(1.0, 2.0)}
    assert toggled.app_for(scenarios["health_check_raise_fast"]).health_toggle_path() == "/greet/-/chaos/health"
    # A scenario's deployment options never touch what it did not set.
    hang = users.app_for(scenarios["replica_hang"]).to_serve_config()["applications"][1]["deployments"][1]
    assert hang == {"name": "Scorer", "num_replicas": 3, "max_replicas_per_node": 1,
                    "ray_actor_options": {"num_cpus": 0}, "health_check_period_s": 1.0, "health_check_timeout_s": 2.0}


def snap(with_downstream: bool) -> Snapshot:
    actors = [{"role": "replica", "actor_id": f"a{i}", "pid": i, "pod": "head", "state": "RUNNING", "app": app,
               "deployment": dep, "replica_id": f"r{i}", "ingress": dep != "Scorer"}
              for i, (app, dep) in enumerate([("greeter", "Greeter"), ("pipeline", "Frontend"),
                                              ("pipeline", "Scorer")])]
    apps = {"greeter": {"ingress": "Greeter", "downstream": []},
            "pipeline": {"ingress": "Frontend", "downstream": ["Scorer"] if with_downstream else []}}
    return Snapshot(t=0.0, serve_ok=True, actors_ok=True, actors=actors, apps=apps)


def test_faults_aim_at_a_deployment_and_downstream_needs_a_composed_app():
    assert [a["replica_id"] for a in aimed(snap(True), DOWNSTREAM)] == ["r2"]
    assert [a["replica_id"] for a in aimed(snap(True), "greeter/Greeter")] == ["r0"]
    assert len(aimed(snap(True), None)) == 3
    with pytest.raises(NoSuchDeployment, match="no deployment of the app is called by another"):
        aimed(snap(False), DOWNSTREAM)
    with pytest.raises(NoSuchDeployment, match="no deployment greeter/Nope"):
        aimed(snap(True), "greeter/Nope")
    # --deployment aims the aimable faults that are not aimed already.
    assert ReplicaKill().for_app(SCENARIO_APP, "greeter/Greeter").deployment == "greeter/Greeter"
    assert ReplicaHang(deployment=DOWNSTREAM).for_app(SCENARIO_APP, "greeter/Greeter").deployment == DOWNSTREAM


def test_soft_spreading_with_every_replica_on_the_head_still_loses_a_worker_node():
    """Serve's default spreading once placed 6/0/0: a worker node then hosts only its pod and
    proxy.  Losing it is still a node loss to survive; the plan says so instead of erroring."""
    pods = [PodInfo(name, role, f"node-{name}", f"10.0.0.{i}", "Running", True, f"u{i}", 0)
            for i, (name, role) in enumerate([("head", "head"), ("worker-1", "worker"), ("worker-2", "worker")])]
    plan = NodeLoss(pod_role="worker").plan(snap(True), pods, random.Random(3))
    assert plan.params["node"] in {"node-worker-1", "node-worker-2"}
    assert "0 replicas; soft spreading left no replica on any worker node" in plan.description
    assert [v["role"] for v in plan.victims] == ["pod"]
    # A pod kill still needs a victim that costs a replica.
    with pytest.raises(FaultNotApplicable, match="no Running worker pod hosting replicas"):
        PodKill(pod_role="worker").plan(snap(True), pods, random.Random(3))


# ---------------------------------------------------------------------- the kind manifests carry it
def test_kind_manifests_carry_the_users_config_and_code_and_validate():
    import kubernetes_validate

    from serve_chaos.runtime.kuberay import schema
    from tests.test_kuberay import KUBE_VERSION, crd_dir

    objects = manifests.render(KubeRayConfig(app=user_app()), "pw")
    (code,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-app")]
    (rs,) = [o for o in objects if o["kind"] == "RayService"]
    assert schema.errors(rs, crd_dir()) == []
    assert set(code["data"]) == {"greeter.py", "pipeline.py"}
    assert "applications:" in rs["spec"]["serveConfigV2"] and "import_path: pipeline:app" in rs["spec"]["serveConfigV2"]
    head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert {"name": "PYTHONPATH", "value": manifests.APP_MOUNT} in head["containers"][0]["env"]
    assert rs["metadata"]["annotations"][manifests.APP_CODE_ANNOTATION] == user_app().code_id()
    for obj in [o for o in objects if o["kind"] != "RayService"] + [
            {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "h"},
             "template": rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]}]:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_kind_manifests_with_the_users_image_ship_no_code():
    from serve_chaos.runtime.kuberay import schema
    from tests.test_kuberay import crd_dir

    objects = manifests.render(KubeRayConfig(app=user_app().with_image("registry.local/me/app:1")), "pw")
    assert not [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-app")]
    (rs,) = [o for o in objects if o["kind"] == "RayService"]
    assert schema.errors(rs, crd_dir()) == []
    for group in [rs["spec"]["rayClusterConfig"]["headGroupSpec"], *rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]]:
        spec = group["template"]["spec"]
        assert spec["containers"][0]["image"] == "registry.local/me/app:1"
        assert spec["volumes"] == [] and "volumeMounts" not in spec["containers"][0]


def test_code_too_big_for_a_configmap_asks_for_an_image():
    big = replace(user_app(), files=(("big.py", "x" * (1024 * 1024)),))
    with pytest.raises(ConfigError, match="pass --image"):
        KubeRayConfig(app=big)
    KubeRayConfig(app=big.with_image("me/app:1"))  # fine: the code is in the image
