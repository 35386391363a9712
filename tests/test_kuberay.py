"""The Kubernetes target without a cluster: manifests against the KubeRay v1.7.0 CRDs,
safety rules, victim selection and the requests KubeRayCluster sends.

The kind target itself is exercised on kind by .github/workflows/kind-chaos.yml.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.faults import NodeLoss, PodKill
from harness.observe import Snapshot
from runtime.errors import ConfigError, ServeChaosError
from runtime.kuberay import manifests, safety
from runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
from runtime.kuberay.manifests import KubeRayConfig
from tests.kube_fake import FakeKube, pod

CRD_DIR = Path(__file__).resolve().parents[2] / "shared" / "kuberay"
needs_crds = pytest.mark.skipif(not (CRD_DIR / "ray.io_rayservices.yaml").exists(),
                                reason=f"KubeRay CRDs not found at {CRD_DIR} (only our CI machines have them)")
PASSWORD = "s3cret-pw-4c0ffee"


def rendered(mode: str = "options") -> list[dict]:
    return manifests.render(KubeRayConfig(gcs_ft=mode), PASSWORD)


# ---------------------------------------------------------------------- manifests
@needs_crds
@pytest.mark.parametrize("mode", ["options", "legacy", "off"])
def test_rayservice_is_valid_against_the_v1_7_crd(mode):
    from runtime.kuberay import schema

    (rs,) = [o for o in rendered(mode) if o["kind"] == "RayService"]
    assert schema.errors(rs, CRD_DIR) == []
    # the embedded cluster spec is a valid RayCluster spec too
    rc = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "x"},
          "spec": rs["spec"]["rayClusterConfig"]}
    assert schema.errors(rc, CRD_DIR) == []


@needs_crds
def test_schema_check_is_strict_about_unknown_fields():
    from runtime.kuberay import schema

    (rs,) = [o for o in rendered() if o["kind"] == "RayService"]
    rs["spec"]["rayClusterConfig"]["gcsFaultTolerance"] = {}
    assert any("gcsFaultTolerance" in e for e in schema.errors(rs, CRD_DIR))


def test_gcs_ft_forms():
    rs = {m: next(o for o in rendered(m) if o["kind"] == "RayService") for m in ("options", "legacy", "off")}
    opts = rs["options"]["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert opts["redisAddress"] == "serve-chaos-redis.serve-chaos.svc.cluster.local:6379"
    assert opts["redisPassword"] == {"valueFrom": {"secretKeyRef": {"name": "serve-chaos-redis-password",
                                                                    "key": "password"}}}
    assert "redis-password" not in rs["options"]["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    legacy = rs["legacy"]
    assert legacy["metadata"]["annotations"] == {"ray.io/ft-enabled": "true"}
    head_env = legacy["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "RAY_REDIS_ADDRESS", "value": opts["redisAddress"]} in head_env
    assert "gcsFaultToleranceOptions" not in legacy["spec"]["rayClusterConfig"]
    off = rs["off"]["spec"]["rayClusterConfig"]
    assert "gcsFaultToleranceOptions" not in off and not any(o["kind"] == "Deployment" for o in rendered("off"))


def test_worker_prestop_app_and_placement():
    rs = next(o for o in rendered() if o["kind"] == "RayService")
    worker = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    container = worker["template"]["spec"]["containers"][0]
    assert container["lifecycle"] == {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}}
    assert worker["template"]["spec"]["nodeSelector"] == {"serve-chaos/role": "worker"}
    head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert head["nodeSelector"] == {"serve-chaos/role": "head"}
    serve = yaml.safe_load(rs["spec"]["serveConfigV2"])
    (app,) = serve["applications"]
    assert app["import_path"] == "runtime.app.sleepy_pid:app" and app["deployments"][0]["num_replicas"] == 6
    cm = next(o for o in rendered() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "serve-chaos-app")
    assert "class SleepyPid" in cm["data"]["sleepy_pid.py"]
    kind_cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "kind-config.yaml").read_text())
    roles = [n.get("labels", {}).get("serve-chaos/role") for n in kind_cfg["nodes"] if n["role"] == "worker"]
    assert roles == ["head", "worker", "worker"]
    ports = {m["containerPort"] for m in kind_cfg["nodes"][0]["extraPortMappings"]}
    assert ports == {manifests.SERVE_NODE_PORT, manifests.DASHBOARD_NODE_PORT}


def test_every_object_is_labelled_ours():
    for obj in rendered("legacy"):
        assert safety.is_ours(obj), obj["kind"]


def test_redis_password_never_appears_outside_the_secret():
    for mode in ("options", "legacy"):
        for obj in rendered(mode):
            if obj["kind"] == "Secret":
                continue
            assert PASSWORD not in json.dumps(obj), obj["kind"]
        assert PASSWORD not in manifests.to_yaml(rendered(mode))


# ---------------------------------------------------------------------- safety
def test_context_rules():
    assert safety.check_context("kind-serve-chaos") == "kind-serve-chaos"
    assert safety.check_context("prod-eu", allowed=("prod-eu",)) == "prod-eu"
    with pytest.raises(ConfigError) as err:
        safety.check_context("gke_prod_europe")
    assert "only kind-* contexts" in str(err.value) and "--allow-context gke_prod_europe" in str(err.value)
    with pytest.raises(ConfigError):
        safety.check_context(None)


def test_foreign_namespace_is_refused():
    safety.check_namespace(None, "serve-chaos")
    safety.check_namespace({"metadata": {"labels": dict(manifests.MANAGED_BY)}}, "serve-chaos")
    with pytest.raises(ConfigError):
        safety.check_namespace({"metadata": {"labels": {}}}, "default")


def test_cluster_refuses_a_non_kind_context():
    with pytest.raises(ConfigError):
        KubeRayCluster(KubeTargetConfig(), api_client=FakeKube(), context_name="arn:aws:eks:prod")


# ---------------------------------------------------------------------- what the client sends
class FakeCli:
    def __init__(self):
        self.calls = []

    def node_network(self, node, connect):
        self.calls.append(("network", node, connect))

    def node_kill(self, node):
        self.calls.append(("kill", node))

    def node_start(self, node):
        self.calls.append(("start", node))


@pytest.fixture
def kube():
    api = FakeKube()
    api.pods = {"h": pod("h", "head", node="kind-worker"), "w1": pod("w1", "worker", node="kind-worker2"),
                "r": pod("r", "redis", node="kind-worker3"),
                "stranger": pod("stranger", "worker", labels={"app": "theirs"})}
    cli = FakeCli()
    cluster = KubeRayCluster(KubeTargetConfig(), api_client=api, context_name="kind-serve-chaos", cli=cli)
    return api, cluster, cli


def test_pods_are_listed_by_our_labels(kube):
    api, cluster, _ = kube
    pods = {p.name: p for p in cluster.pods()}
    call = api.calls[-1]
    assert call["method"] == "GET" and call["path"] == "/api/v1/namespaces/serve-chaos/pods"
    assert call["query"]["labelSelector"] == ["app.kubernetes.io/managed-by=serve-chaos,"
                                              "app.kubernetes.io/part-of=serve-chaos"]
    assert pods["h"].role == "head" and pods["w1"].role == "worker" and pods["r"].role == "redis"
    assert pods["w1"].node == "kind-worker2" and pods["w1"].ready and pods["w1"].restarts == 1


@pytest.mark.parametrize("graceful, grace", [(True, None), (False, "0")])
def test_pod_delete_is_a_kubectl_delete(kube, graceful, grace):
    api, cluster, _ = kube
    record = cluster.kill_pod("w1", graceful=graceful)
    delete = next(c for c in api.calls if c["method"] == "DELETE")
    assert delete["path"] == "/api/v1/namespaces/serve-chaos/pods/w1"
    assert delete["query"].get("gracePeriodSeconds", [None])[0] == grace
    assert record.details["uid"] == "uid-w1"


def test_a_pod_without_our_label_is_never_deleted(kube):
    api, cluster, _ = kube
    with pytest.raises(ConfigError):
        cluster.kill_pod("stranger")
    assert "DELETE" not in {c["method"] for c in api.calls}


def test_node_loss_on_kind_cuts_network_then_kills_then_deletes_the_node(kube):
    api, cluster, cli = kube
    cluster.kill_node("kind-worker2", replacement_delay_s=0.0)
    assert cli.calls == [("network", "kind-worker2", False), ("kill", "kind-worker2")]
    for timer in cluster._timers:
        timer.join(5)
    assert "/api/v1/nodes/kind-worker2" in api.paths("DELETE")
    cluster.heal()
    assert cli.calls[-2:] == [("network", "kind-worker2", True), ("start", "kind-worker2")]
    with pytest.raises(ServeChaosError):
        cluster.kill_node("control-plane-without-our-pods")


def test_serve_config_goes_into_the_rayservice_as_a_merge_patch(kube):
    api, cluster, _ = kube
    api.objects["RayService/serve-chaos"] = {"apiVersion": "ray.io/v1", "kind": "RayService",
                                             "metadata": {"name": "serve-chaos", "labels": dict(manifests.MANAGED_BY)}}
    config = KubeRayConfig().app.with_(health_check_period_s=1.0).to_serve_config()
    cluster.apply_serve_config(config)
    patch = next(c for c in api.calls if c["method"] == "PATCH")
    assert patch["path"] == "/apis/ray.io/v1/namespaces/serve-chaos/rayservices/serve-chaos"
    assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
    body = patch["body"]
    assert yaml.safe_load(body["spec"]["serveConfigV2"])["applications"] == config["applications"]
    assert json.loads(body["metadata"]["annotations"]["serve-chaos/serve-config"]) == config


def test_up_creates_objects_in_order_in_our_namespace(kube, monkeypatch):
    api, cluster, _ = kube
    monkeypatch.setattr(cluster, "wait_ready", lambda timeout_s=0: None)
    cluster.up()
    posts = [c for c in api.calls if c["method"] == "POST"]
    kinds = [c["body"]["kind"] for c in posts]
    assert kinds[:2] == ["Namespace", "ConfigMap"] and kinds.index("Secret") < kinds.index("RayService")
    assert posts[kinds.index("RayService")]["path"] == "/apis/ray.io/v1/namespaces/serve-chaos/rayservices"
    assert posts[kinds.index("Deployment")]["path"] == "/apis/apps/v1/namespaces/serve-chaos/deployments"


def test_actor_kill_execs_ray_kill_in_the_head_pod(kube, monkeypatch):
    _, cluster, _ = kube
    seen = {}

    def fake_stream(fn, name, namespace, **kwargs):
        seen.update(name=name, namespace=namespace, **kwargs)
        return '{"killed": [{"name": "X", "actor_id": "a1", "t": 1.0}], "actor_id": "a1", ' \
               '"t_kill_start": 1.0, "t_kill_end": 1.1, "connect_s": 0.1, "no_restart": true}'

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    record = cluster.kill_actor("SERVE_CONTROLLER_ACTOR", "serve", no_restart=True)
    assert seen["name"] == "h" and seen["namespace"] == "serve-chaos" and seen["container"] == "ray-head"
    command = seen["command"]
    assert command[:2] == ["python", "-c"] and "ray.kill(handle, no_restart=args.no_restart)" in command[2]
    assert "--name=SERVE_CONTROLLER_ACTOR" in command and "--no-restart" in command
    assert record.details["t_kill_start"] == 1.0


# ---------------------------------------------------------------------- victim selection on kube pods
def test_victims_are_chosen_among_our_worker_pods_that_host_replicas(kube):
    import random

    _, cluster, _ = kube
    pods = cluster.pods()
    snap = Snapshot(t=0.0, serve_ok=True, actors_ok=True, pods_ok=True, pods=[p.to_dict() for p in pods], actors=[
        {"role": "replica", "actor_id": "a", "pid": 5, "pod": "w1", "state": "RUNNING", "name": "R"},
        {"role": "replica", "actor_id": "b", "pid": 6, "pod": "h", "state": "RUNNING", "name": "S"}],
        nodes=[{"node_id": "n1", "pod": "w1"}])
    plan = PodKill(pod_role="worker").plan(snap, pods, random.Random(1))
    assert plan.params["pod"] == "w1"
    assert {v["role"] for v in plan.victims} == {"pod", "replica"}
    plan = NodeLoss(pod_role="worker").plan(snap, pods, random.Random(1))
    assert plan.params["node"] == "kind-worker2" and plan.params["ray_node_ids"] == ["n1"]
    assert not cluster.capabilities.partition_pod and cluster.capabilities.kill_node
