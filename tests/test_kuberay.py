"""The Kubernetes target without a cluster: manifests against Kubernetes' and KubeRay's own
schemas, and ``KubeRayCluster`` against a model of what KubeRay v1.7.0 really creates
(``tests/kuberay_fake.py`` cites the upstream file behind each behaviour).

What only a real kind cluster can show is exercised by .github/workflows/kind-chaos.yml.
"""

from __future__ import annotations

import json
import dataclasses
import random
from pathlib import Path

import pytest
import yaml

from serve_chaos.harness.catalog import load_scenarios
from serve_chaos.harness.checks import check_churn, churn, valid_churn_kind
from serve_chaos.harness.faults import FaultNotApplicable, NodeLoss, PodKill
from serve_chaos.harness.load.spec import resolve_endpoints
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import POD_ROLES, RayOptions
from serve_chaos.runtime.errors import ConfigError, InfrastructureError, ServeChaosError
from serve_chaos.runtime.kuberay import manifests, safety, schema
from serve_chaos.runtime.kuberay.api import KubeApi
from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig
from tests.fake_apiserver import FakeApiClient, Store, selects
from tests.kube_world import FakeWs, Kube

CRD_DIR = Path(__file__).resolve().parents[2] / "shared" / "kuberay"
#: The Kubernetes version of kind's node image the target is written for (runtime/kuberay/kind.py).
KUBE_VERSION = "1.35.0"
PASSWORD = "s3cret-pw-4c0ffee"


def rendered(mode: str = "options", active: str | None = None) -> list[dict]:
    return manifests.render(KubeRayConfig(gcs_ft=mode), PASSWORD, active_cluster=active)


def crd_dir() -> Path:
    """The KubeRay v1.7.0 CRDs: a missing copy fails the test, it never skips it."""
    assert (CRD_DIR / "ray.io_rayservices.yaml").exists(), f"KubeRay v1.7.0 CRDs not found at {CRD_DIR}"
    return CRD_DIR


# ---------------------------------------------------------------------- manifests against schemas
@pytest.mark.parametrize("mode", ["options", "legacy", "off"])
def test_rayservice_is_valid_against_the_v1_7_crd(mode):
    from serve_chaos.runtime.kuberay import schema

    (rs,) = [o for o in rendered(mode) if o["kind"] == "RayService"]
    assert schema.errors(rs, crd_dir()) == []
    rc = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "x"},
          "spec": rs["spec"]["rayClusterConfig"]}
    assert schema.errors(rc, crd_dir()) == []


def test_schema_check_is_strict_about_unknown_fields():
    from serve_chaos.runtime.kuberay import schema

    (rs,) = [o for o in rendered() if o["kind"] == "RayService"]
    rs["spec"]["rayClusterConfig"]["gcsFaultTolerance"] = {}
    assert any("gcsFaultTolerance" in e for e in schema.errors(rs, crd_dir()))


def builtin_objects(mode: str) -> list[dict]:
    """Every built-in object we send, including those embedded in the RayService."""
    objects = [o for o in rendered(mode, active="serve-chaos-abcde") if o["kind"] != "RayService"]
    (rs,) = [o for o in rendered(mode) if o["kind"] == "RayService"]
    cluster = rs["spec"]["rayClusterConfig"]
    for i, template in enumerate([cluster["headGroupSpec"]["template"]]
                                 + [g["template"] for g in cluster["workerGroupSpecs"]]):
        objects.append({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t{i}"},
                        "template": template})
    objects.append({"apiVersion": "v1", "kind": "Service", **rs["spec"]["serveService"]})
    return objects


@pytest.mark.parametrize("mode", ["options", "legacy", "off"])
def test_builtin_objects_are_valid_for_kinds_kubernetes(mode):
    import kubernetes_validate

    for obj in builtin_objects(mode):
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_builtin_validation_is_strict():
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError

    (svc,) = [o for o in rendered() if o["kind"] == "Service" and o["metadata"]["name"].endswith("redis")]
    svc["spec"]["selectr"] = {}
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(svc, KUBE_VERSION, strict=True)


def test_gcs_ft_forms():
    rs = {m: next(o for o in rendered(m) if o["kind"] == "RayService") for m in ("options", "legacy", "off")}
    opts = rs["options"]["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert opts["redisAddress"] == "serve-chaos-redis.serve-chaos.svc.cluster.local:6379"
    assert opts["redisPassword"] == {"valueFrom": {"secretKeyRef": {"name": "serve-chaos-redis-password",
                                                                    "key": "password"}}}
    # A fixed storage namespace would make a new RayCluster resurrect the old one's state.
    assert "externalStorageNamespace" not in opts
    assert "redis-password" not in rs["options"]["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    legacy = rs["legacy"]
    assert legacy["metadata"]["annotations"]["ray.io/ft-enabled"] == "true"
    assert "ray.io/ft-enabled" not in rs["options"]["metadata"]["annotations"]
    head_env = legacy["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "RAY_REDIS_ADDRESS", "value": opts["redisAddress"]} in head_env
    assert "gcsFaultToleranceOptions" not in legacy["spec"]["rayClusterConfig"]
    off = rs["off"]["spec"]["rayClusterConfig"]
    assert "gcsFaultToleranceOptions" not in off and not any(o["kind"] == "Deployment" for o in rendered("off"))


def test_redis_keeps_its_data_on_a_volume():
    objs = {(o["kind"], o["metadata"]["name"]): o for o in rendered()}
    deploy = objs[("Deployment", "serve-chaos-redis")]
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    pod = deploy["spec"]["template"]["spec"]
    claim = next(v for v in pod["volumes"] if v["name"] == "data")["persistentVolumeClaim"]["claimName"]
    pvc = objs[("PersistentVolumeClaim", claim)]
    assert pvc["spec"]["storageClassName"] == "standard"
    assert {"name": "data", "mountPath": "/data"} in pod["containers"][0]["volumeMounts"]
    conf = objs[("ConfigMap", "serve-chaos-redis-config")]["data"]["redis.conf"]
    assert "appendonly yes" in conf and "dir /data" in conf


def test_placement_keeps_head_and_redis_off_worker_nodes_and_fits_small_nodes():
    rs = next(o for o in rendered() if o["kind"] == "RayService")
    cluster = rs["spec"]["rayClusterConfig"]
    worker = cluster["workerGroupSpecs"][0]
    container = worker["template"]["spec"]["containers"][0]
    assert container["lifecycle"] == {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}}
    assert worker["template"]["spec"]["nodeSelector"] == {"serve-chaos/role": "worker"}
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert head["nodeSelector"] == {"serve-chaos/role": "head"}
    redis = next(o for o in rendered() if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert redis["nodeSelector"] == {"serve-chaos/role": "head"}
    # A kind node offers the host's cores; a 2-vCPU runner cannot schedule a 2-CPU request.
    for spec in (head, worker["template"]["spec"]):
        request = spec["containers"][0]["resources"]["requests"]["cpu"]
        assert request.endswith("m") and int(request[:-1]) < 1000
    kind_cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "kind-config.yaml").read_text())
    roles = [n.get("labels", {}).get("serve-chaos/role") for n in kind_cfg["nodes"] if n["role"] == "worker"]
    # A worker node for each worker and a spare for a lost one's replacement (one Ray pod per node).
    assert roles == ["head"] + ["worker"] * (KubeRayConfig().workers + 1)
    digest = worker["template"]["metadata"]["labels"][manifests.SPEC_LABEL]
    assert worker["template"]["spec"]["affinity"] == manifests.one_ray_pod_per_node(digest)
    ports = {m["containerPort"] for m in kind_cfg["nodes"][0]["extraPortMappings"]}
    assert ports == {manifests.SERVE_NODE_PORT, manifests.DASHBOARD_NODE_PORT}


def test_serve_service_is_kuberays_with_our_node_port():
    rs = next(o for o in rendered() if o["kind"] == "RayService")
    svc = rs["spec"]["serveService"]
    (port,) = svc["spec"]["ports"]
    head_ports = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    # KubeRay keeps a user port whose name matches a head container port named "serve".
    assert port["name"] == "serve" and {"containerPort": 8000, "name": "serve"} in head_ports
    assert svc["spec"]["type"] == "NodePort" and port["nodePort"] == manifests.SERVE_NODE_PORT
    assert "selector" not in svc["spec"]  # KubeRay sets it to the active cluster
    # No Service of our own for Serve: its selector would not follow an upgrade.
    assert not any(o["kind"] == "Service" and "ray.io/serve" in o["spec"].get("selector", {}) for o in rendered())


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


@pytest.fixture
def kube():
    k = Kube()
    yield k
    k.close()


def test_cluster_refuses_a_non_kind_context():
    store = Store()
    with pytest.raises(ConfigError):
        KubeRayCluster(KubeTargetConfig(), api=KubeApi(lambda: FakeApiClient(store)), context_name="arn:aws:eks:prod")


# ---------------------------------------------------------------------- services reach the pods they must
def test_every_service_selector_is_a_subset_of_the_labels_of_the_pods_it_must_reach(kube):
    active = kube.bring_up()
    assert kube.cluster.readiness_problem() is None  # pins the dashboard on the active cluster
    pods = kube.operator.pods()
    by_role = {role: [p for p in pods if p["metadata"]["labels"].get("ray.io/node-type") == role]
               for role in ("head", "worker")}
    redis_pods = [p for p in pods if p["metadata"]["labels"].get("serve-chaos/component") == "redis"]
    must_reach = {
        "serve-chaos-serve-svc": by_role["head"] + by_role["worker"],
        "serve-chaos-dashboard-nodeport": by_role["head"],
        "serve-chaos-redis": redis_pods,
        "serve-chaos-head-svc": by_role["head"],
    }
    services = {s["metadata"]["name"]: s for s in kube.store.list("Service", "serve-chaos")}
    for name, targets in must_reach.items():
        selector = services[name]["spec"]["selector"]
        assert targets, name
        for pod in targets:
            assert selects(selector, pod["metadata"]["labels"]), (name, selector, pod["metadata"]["labels"])
        reached = {p["metadata"]["name"] for p in pods if selects(selector, p["metadata"]["labels"])}
        assert reached == {p["metadata"]["name"] for p in targets}, name
    assert services["serve-chaos-serve-svc"]["spec"]["selector"]["ray.io/cluster"] == active
    assert services["serve-chaos-serve-svc"]["spec"]["type"] == "NodePort"
    # The selector of the NodePort Services before this fix: labels KubeRay never puts on pods.
    old = {"ray.io/originated-from-crd": "RayService", "ray.io/originated-from-cr-name": "serve-chaos"}
    assert not any(selects(old, p["metadata"]["labels"]) for p in pods)


def test_head_leaves_the_serve_service_until_its_proxy_is_healthy(kube):
    kube.cluster.apply(kube.cluster.manifests())
    kube.operator.settle()
    cluster = kube.serving()
    kube.operator.run_pods(cluster)
    kube.operator.serve_ready(cluster)
    kube.operator.settle()
    head = next(p for p in kube.operator.pods(cluster) if p["metadata"]["labels"]["ray.io/node-type"] == "head")
    assert head["metadata"]["labels"]["ray.io/serve"] == "false"
    assert kube.cluster.readiness_problem() is not None


# ---------------------------------------------------------------------- readiness and upgrades
def test_readiness_walks_through_an_upgrade(kube):
    old = kube.bring_up()
    assert kube.cluster.readiness_problem() is None
    kube.operator.lag = True
    kube.cluster.set_ray_options(RayOptions(gcs_ft=False))
    assert "not reconciled" in kube.cluster.readiness_problem()
    kube.operator.lag = False
    kube.operator.settle()
    problem = kube.cluster.readiness_problem()
    assert "upgrade is under way" in problem
    new = kube.cluster.state().pending
    assert new and new != old
    # While upgrading, the cluster under test is still the active one: no victim in the new one.
    assert {p.name for p in kube.cluster.pods() if p.role != "redis"} <= \
        {p["metadata"]["name"] for p in kube.operator.pods(old)}
    kube.finish_pending()
    assert kube.cluster.state().active == new and kube.cluster.state().pending is None
    assert kube.cluster.readiness_problem() is None
    assert {p.name for p in kube.cluster.pods() if p.role != "redis"} == \
        {p["metadata"]["name"] for p in kube.operator.pods(new)}
    # The old cluster lives on for 60 s; its pods are never ours to judge.
    assert kube.operator.pods(old)
    dashboard = kube.store.get("Service", "serve-chaos", "serve-chaos-dashboard-nodeport")
    assert dashboard["spec"]["selector"]["ray.io/cluster"] == new
    # The operator deletes the old (GCS-FT) cluster; its Redis cleanup pod copies the head's labels
    # and runs once the old head is gone.
    kube.store.advance(61)
    kube.operator.settle()
    kube.store.advance(31)  # the old pods' grace period
    kube.operator.settle()
    cleanup = [p for p in kube.operator.pods() if p["metadata"]["labels"].get("ray.io/node-type") == "redis-cleanup"]
    assert cleanup and cleanup[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "serve-chaos"
    assert all(p.role != "redis-cleanup" and p.name != cleanup[0]["metadata"]["name"] for p in kube.cluster.pods())
    assert kube.cluster.readiness_problem() is None
    kube.operator.settle()
    assert kube.store.get("RayCluster", "serve-chaos", old) is None  # the cleanup Job finished: finalizer gone


def test_the_deployed_serve_config_must_be_the_desired_one(kube):
    active = kube.bring_up()
    other = kube.cluster.ray.app.with_options(num_replicas=3).to_serve_config()
    kube.operator.dashboard(active).put(other)
    kube.operator.serve_ready(active)
    assert "not deployed as configured" in kube.cluster.readiness_problem()


def test_apply_removes_a_field_we_stop_sending(kube):
    kube.cluster.ray = kube.cluster.ray.__class__(**{**kube.cluster.ray.__dict__, "gcs_ft": "legacy"})
    kube.bring_up()
    rs = kube.store.get("RayService", "serve-chaos", "serve-chaos")
    assert rs["metadata"]["annotations"]["ray.io/ft-enabled"] == "true"
    kube.cluster.set_ray_options(RayOptions(gcs_ft=True))  # -> gcsFaultToleranceOptions
    rs = kube.store.get("RayService", "serve-chaos", "serve-chaos")
    assert "ray.io/ft-enabled" not in rs["metadata"]["annotations"]
    assert rs["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    patches = [c for c in kube.store.calls if c["method"] == "PATCH"]
    assert patches and all(c["headers"]["Content-Type"] == "application/apply-patch+yaml" for c in patches)
    assert all(c["query"]["fieldManager"] == ["serve-chaos"] and c["query"]["force"] == ["true"] for c in patches)


# ---------------------------------------------------------------------- roles, not names
def test_a_recreated_head_is_still_the_head(kube):
    kube.bring_up()
    (head,) = [p for p in kube.cluster.pods() if p.role == "head"]
    assert head.name.startswith(f"{kube.serving()}-head-")
    kube.cluster.kill_pod(head.name)
    kube.operator.kube.terminate(head.name)  # the kubelet has stopped it
    kube.operator.reconcile()
    (new_head,) = [p for p in kube.cluster.pods() if p.role == "head"]
    assert new_head.name != head.name and new_head.name.startswith(f"{kube.serving()}-head-")
    workers = [p.name for p in kube.cluster.pods() if p.role == "worker"]
    assert all(w.startswith(f"{kube.serving()}-workers-worker-") for w in workers)


def test_a_container_restart_in_place_is_a_new_incarnation(kube):
    kube.bring_up()
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    before = Snapshot(t=0.0, pods_ok=True, pods=[p.to_dict() for p in kube.cluster.pods()], actors_ok=True,
                      serve_ok=True)
    kube.operator.restart_container(worker.name)
    again = next(p for p in kube.cluster.pods() if p.name == worker.name)
    assert again.uid == worker.uid and again.restarts == worker.restarts + 1
    assert again.incarnation != worker.incarnation
    after = Snapshot(t=1.0, pods_ok=True, pods=[p.to_dict() for p in kube.cluster.pods()], actors_ok=True,
                     serve_ok=True)
    observed = churn(before, after)
    assert observed["pod"]["left"] == [worker.incarnation]
    victims = [{"role": "pod", "name": p.name, "uid": p.uid, "restarts": p.restarts}
               for p in kube.cluster.pods() if p.role == "worker" and p.name == worker.name]
    assert check_churn("pod", "victims", observed, [{**victims[0], "restarts": worker.restarts}]).status == "pass"


def kube_snapshot(kube: Kube, pids_per_pod: tuple[int, ...] = (101, 102)) -> Snapshot:
    """Replicas with the *same* PIDs on every pod, as separate PID namespaces give them; one
    app whose ingress ``I`` calls ``D`` (a composed app), a replica of each per PID pair."""
    pods = kube.cluster.pods()
    actors = []
    for pod in pods:
        if pod.role not in ("head", "worker"):
            continue
        for i, pid in enumerate(pids_per_pod):
            dep = ("I", "D")[i % 2]
            actors.append({"role": "replica", "actor_id": f"{pod.name}-{pid}", "name": f"SERVE_REPLICA::a#{dep}#{pid}",
                           "pid": pid, "pod": pod.name, "node_ip": pod.ip, "state": "RUNNING", "app": "a",
                           "deployment": dep, "replica_id": f"{pod.name}-{pid}", "ingress": dep == "I"})
        actors.append({"role": "proxy", "actor_id": f"proxy-{pod.name}", "name": f"SERVE_PROXY_ACTOR-{pod.name}",
                       "pid": 50, "pod": pod.name, "node_ip": pod.ip, "state": "HEALTHY"})
    actors.append({"role": "controller", "actor_id": "ctrl", "name": "SERVE_CONTROLLER_ACTOR", "pid": 60,
                   "pod": next(p.name for p in pods if p.role == "head"), "state": "ALIVE"})
    ray_pods = sum(p.role in ("head", "worker") for p in pods)
    # What the Serve REST API reports of each deployment (serve_chaos.harness.observe.probe.app_summary).
    deployments = {dep: {"config": {"num_replicas": ray_pods, "max_ongoing_requests": 5}, "target_num_replicas": ray_pods}
                   for dep in ("I", "D")}
    return Snapshot(t=0.0, serve_ok=True, actors_ok=True, pods_ok=True, nodes_ok=True,
                    apps={"a": {"status": "RUNNING", "ingress": "I", "downstream": ["D"], "route_prefix": "/",
                                "deployments": deployments}},
                    pods=[p.to_dict() for p in pods], actors=actors, replicas_running=len(actors) - 4,
                    nodes=[{"node_id": f"n-{p.name}", "pod": p.name, "state": "ALIVE"} for p in pods])


def test_every_scenario_resolves_on_kuberay_named_pods(kube):
    kube.bring_up()
    pods = kube.cluster.pods()
    roles = {p.name: p.role for p in pods}
    endpoints = kube.cluster.endpoints()
    snap = kube_snapshot(kube)
    caps = kube.cluster.capabilities
    for name, scenario in load_scenarios().items():
        targets = resolve_endpoints(scenario.load, endpoints, roles, {p.name for p in pods if p.ready})
        assert targets, name
        for phase in scenario.phases():
            for scope in phase.slo.endpoint_availability:
                role = scope.split(":", 1)[1] if scope.startswith("pods:") else None
                assert role in POD_ROLES or any(t["name"] == scope for t in targets), (name, scope)
            for kind in phase.expected_churn.values():
                assert valid_churn_kind(kind)
                if kind.startswith("none_outside:"):
                    assert set(kind.split(":", 1)[1].split(",")) <= set(POD_ROLES), (name, kind)
            if all(getattr(caps, c) for c in phase.fault.requires):
                fault = phase.fault
                if "/" in (fault.deployment or ""):  # aimed at a bundled example's deployment: at this app's
                    fault = dataclasses.replace(fault, deployment="a/D")
                try:
                    plan = fault.plan(snap, pods, random.Random(1))
                except FaultNotApplicable as err:
                    pytest.fail(f"{name}: {err}")
                # A config victim is a deployment option's old value, on no pod.
                assert all(v.get("pod", roles.get(v.get("name"), "x")) in roles or v.get("role") in ("pod", "config")
                           for v in plan.victims), name


def test_replicas_with_equal_pids_on_different_pods_are_different_replicas(kube):
    from serve_chaos.harness.checks import replica_keys, victim_present

    kube.bring_up()
    snap = kube_snapshot(kube)
    assert len(replica_keys(snap)) == 6  # 2 per pod, PIDs 101 and 102 on each
    victim = next(a for a in snap.actors if a["role"] == "replica" and a["pid"] == 101)
    without = Snapshot(**{**snap.__dict__, "actors": [a for a in snap.actors if a is not victim]})
    assert victim_present(snap, victim) and not victim_present(without, victim)


def test_the_head_endpoint_follows_the_head(kube, monkeypatch):
    kube.bring_up()
    endpoints = kube.cluster.endpoints()
    assert set(endpoints.roles) == {"head"}
    opened = []
    monkeypatch.setattr("kubernetes.stream.portforward",
                        lambda fn, name, ns, **kw: opened.append(name) or (_ for _ in ()).throw(OSError("no")))
    _uid, forwarder, _port = kube.cluster._forwarders["role:head"]
    head = next(p.name for p in kube.cluster.pods() if p.role == "head")
    with pytest.raises(OSError):
        forwarder.open_stream()
    kube.cluster.kill_pod(head)
    kube.operator.kube.terminate(head)
    kube.operator.reconcile()
    with pytest.raises(InfrastructureError):  # the new head is not Running yet: connections are refused
        forwarder.open_stream()
    kube.operator.run_pods()
    with pytest.raises(OSError):
        forwarder.open_stream()
    assert opened[0] == head and opened[1] != head and opened[1].startswith(f"{kube.serving()}-head-")


# ---------------------------------------------------------------------- what the client sends
@pytest.mark.parametrize("graceful, grace", [(True, None), (False, "0")])
def test_pod_delete_is_a_kubectl_delete(kube, graceful, grace):
    kube.bring_up()
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    record = kube.cluster.kill_pod(worker.name, graceful=graceful)
    delete = next(c for c in kube.store.calls if c["method"] == "DELETE")
    assert delete["path"] == f"/api/v1/namespaces/serve-chaos/pods/{worker.name}"
    assert delete["query"].get("gracePeriodSeconds", [None])[0] == grace
    assert record.details["uid"] == worker.uid


def test_a_pod_without_our_label_is_never_deleted(kube):
    kube.bring_up()
    kube.store.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stranger", "namespace": "serve-chaos",
                                                                    "labels": {"app": "theirs"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Running"}})
    with pytest.raises(ConfigError):
        kube.cluster.kill_pod("stranger")
    assert "DELETE" not in {c["method"] for c in kube.store.calls}


def test_redis_hold_scales_to_zero_and_heal_returns_it(kube):
    kube.bring_up()
    redis = next(p for p in kube.cluster.pods() if p.role == "redis")
    kube.cluster.kill_pod(redis.name, graceful=False, down_for_s=300)
    assert kube.store.get("Deployment", "serve-chaos", "serve-chaos-redis")["spec"]["replicas"] == 0
    records = kube.cluster.heal()
    assert [r.action for r in records] == ["release_redis"]
    assert kube.store.get("Deployment", "serve-chaos", "serve-chaos-redis")["spec"]["replicas"] == 1
    assert kube.cluster.heal() == []


def test_node_loss_on_kind_cuts_network_then_kills_then_deletes_the_node(kube):
    kube.bring_up()
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    kube.cluster.kill_node(worker.node, replacement_delay_s=0.0)
    assert kube.cli.calls == [("network", worker.node, False), ("kill", worker.node)]
    for timer in list(kube.cluster._timers):
        timer.join(5)
    assert f"/api/v1/nodes/{worker.node}" in [c["path"] for c in kube.store.calls if c["method"] == "DELETE"]
    kube.cluster.heal()
    assert kube.cli.calls[-2:] == [("network", worker.node, True), ("start", worker.node)]
    with pytest.raises(ServeChaosError):
        kube.cluster.kill_node("control-plane-without-our-pods")


def test_up_applies_objects_in_order_in_our_namespace(kube):
    kube.cluster.apply(kube.cluster.manifests())
    applied = [c for c in kube.store.calls if c["method"] == "PATCH"]
    kinds = [c["body"]["kind"] for c in applied]
    assert kinds[:2] == ["Namespace", "ConfigMap"] and kinds.index("Secret") < kinds.index("RayService")
    assert applied[kinds.index("RayService")]["path"] == "/apis/ray.io/v1/namespaces/serve-chaos/rayservices/serve-chaos"
    assert applied[kinds.index("Deployment")]["path"] == "/apis/apps/v1/namespaces/serve-chaos/deployments/serve-chaos-redis"


def test_the_password_is_generated_once(kube):
    kube.bring_up()
    first = dict(kube.store.get("Secret", "serve-chaos", "serve-chaos-redis-password")["data"])
    kube.cluster.apply(kube.cluster.manifests())
    assert kube.store.get("Secret", "serve-chaos", "serve-chaos-redis-password")["data"] == first
    assert not [c for c in kube.store.calls if c["method"] == "PATCH" and c["body"]["kind"] == "Secret"][1:]


def test_down_deletes_the_rayservice_first_and_waits_for_its_clusters(kube):
    active = kube.bring_up()
    put = kube.store.put
    jobs_with_redis = []

    def spy(obj):
        if obj.get("kind") == "Job":
            jobs_with_redis.append((obj["metadata"]["name"],
                                    kube.store.get("Deployment", "serve-chaos", "serve-chaos-redis") is not None))
        return put(obj)

    kube.store.put = spy
    with kube.operator.running():
        kube.cluster.down(timeout_s=20)
    deletes = [c["path"] for c in kube.store.calls if c["method"] == "DELETE"]
    assert deletes[0] == "/apis/ray.io/v1/namespaces/serve-chaos/rayservices/serve-chaos"
    assert deletes[-1] == "/api/v1/namespaces/serve-chaos"
    # The GCS-FT cluster's finalizer ran the Redis cleanup Job against Redis, which was still there
    # (the Job itself went with the namespace).
    assert (f"{active}-redis-cleanup", True) in jobs_with_redis
    assert kube.store.list("RayCluster", "serve-chaos") == [] and kube.store.list("RayService", "serve-chaos") == []


def test_down_gives_up_in_one_line_when_clusters_never_go(kube):
    kube.bring_up()
    with pytest.raises(InfrastructureError) as err:
        kube.cluster.down(timeout_s=1)
    assert "RayClusters still being deleted" in str(err.value) and "\n" not in str(err.value)


def test_actor_kill_execs_ray_kill_in_the_head_pod_on_a_client_of_its_own(kube, monkeypatch):
    kube.bring_up()
    seen = {}

    def fake_stream(fn, name, namespace, **kwargs):
        seen.update(name=name, namespace=namespace, client=fn.__self__.api_client, **kwargs)
        return FakeWs('{"killed": [{"name": "X", "actor_id": "a1", "t": 1.0}], "actor_id": "a1", '
                      '"t_kill_start": 1.0, "t_kill_end": 1.1, "connect_s": 0.1, "no_restart": true}')

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    record = kube.cluster.kill_actor("SERVE_CONTROLLER_ACTOR", "serve", no_restart=True)
    head = next(p for p in kube.cluster.pods() if p.role == "head")
    assert seen["name"] == head.name and seen["namespace"] == "serve-chaos" and seen["container"] == "ray-head"
    assert seen["client"] is not kube.cluster.api.rest
    command = seen["command"]
    assert command[:2] == ["python", "-c"] and "ray.kill(handle, no_restart=args.no_restart)" in command[2]
    assert "--name=SERVE_CONTROLLER_ACTOR" in command and "--no-restart" in command
    assert record.details["t_kill_start"] == 1.0


def test_a_freeze_is_kill_stop_by_exec_in_the_pod_leased_and_thawed_by_heal(kube, monkeypatch):
    """``replica_hang`` on Kubernetes: ``kill -STOP <pid>`` in the replica's pod (the State API's
    PIDs are the container's own), a lease in the ConfigMap, ``kill -CONT`` on heal."""
    kube.bring_up()
    commands = []

    def fake_stream(fn, name, namespace, **kwargs):
        commands.append((name, kwargs["container"], " ".join(kwargs["command"]), fn.__self__.api_client))
        return FakeWs()

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    kube.cluster.signal_process(worker.name, 101, "STOP")
    assert commands[-1][:3] == (worker.name, "ray-worker", "kill -STOP 101")
    assert commands[-1][3] is not kube.cluster.api.rest
    assert [f["kind"] for f in kube.cluster.lease.faults()] == ["freeze"]
    assert any("freeze" in x for x in kube.cluster.interference()) is False  # our own fault
    healed = kube.cluster.heal()
    assert "kill -CONT 101" in commands[-1][2] and [r.action for r in healed] == ["thaw"]
    assert kube.cluster.lease.faults() == []
    monkeypatch.setattr("kubernetes.stream.stream",
                        lambda *a, **k: FakeWs(stderr="kill: (101) - No such process", returncode=1))
    with pytest.raises(ServeChaosError, match="kill -STOP 101 in pod .* failed: kill: .101. - No such process"):
        kube.cluster.signal_process(worker.name, 101, "STOP")


def test_a_process_crash_is_kill_by_pid_found_in_the_pods_own_proc(kube, monkeypatch):
    """``gcs_crash`` on Kubernetes: the pod's own /proc walked for the command name, the PIDs
    found killed with SIGKILL -- by PID, inside the pod; nothing found is one clear error."""
    kube.bring_up()
    commands = []

    def fake_stream(fn, name, namespace, **kwargs):
        commands.append((name, kwargs["container"], kwargs["command"]))
        return FakeWs(stdout="57\n")

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    head = next(p for p in kube.cluster.pods() if p.role == "head")
    record = kube.cluster.kill_process(head.name, "gcs_server")
    pod, container, command = commands[-1]
    assert (pod, container, command[:2]) == (head.name, "ray-head", ["/bin/sh", "-c"])
    assert '"$(cat $d/comm 2>/dev/null)" = "gcs_server"' in command[2] and "kill -KILL $pids" in command[2]
    assert record.details == {"pids": [57], "name": "gcs_server"}
    with pytest.raises(ServeChaosError, match="not a command name"):
        kube.cluster.kill_process(head.name, "gcs; rm -rf /")
    monkeypatch.setattr("kubernetes.stream.stream",
                        lambda *a, **k: FakeWs(stderr="no process named gcs_server", returncode=3))
    with pytest.raises(ServeChaosError, match="killing gcs_server in pod .* failed: no process named gcs_server"):
        kube.cluster.kill_process(head.name, "gcs_server")


def test_victims_are_chosen_among_worker_pods_that_host_replicas(kube):
    kube.bring_up()
    pods = kube.cluster.pods()
    snap = kube_snapshot(kube)
    plan = PodKill(pod_role="worker").plan(snap, pods, random.Random(1))
    assert plan.params["pod"] in {p.name for p in pods if p.role == "worker"}
    assert {v["role"] for v in plan.victims} == {"pod", "replica", "proxy"}
    plan = NodeLoss(pod_role="worker").plan(snap, pods, random.Random(1))
    assert plan.params["node"] == "kind-worker2"
    assert not kube.cluster.capabilities.partition_pod and kube.cluster.capabilities.kill_node


# ---------------------------------------------------------------------- kind and helm commands
def test_images_are_saved_for_the_host_platform_and_loaded_only_where_they_run(monkeypatch):
    from serve_chaos.runtime.kuberay import kind

    commands = []

    def fake_run(cmd, timeout_s=600.0, check=True):
        commands.append(cmd)

        class Done:
            stdout = "linux/arm64\n"
            returncode = 1  # no image is here yet
        return Done()

    monkeypatch.setattr(kind, "run", fake_run)
    kind.load_images("sc", {"rayproject/ray:2.60.0": ["sc-worker", "sc-worker2"], "redis:7.2": ["sc-worker"],
                            "unused:1": []})
    loads = [c for c in commands if c[:3] == ["kind", "load", "image-archive"]]
    saves = [c for c in commands if c[:2] == ["docker", "save"]]
    assert not any(c[:3] == ["kind", "load", "docker-image"] for c in commands)  # kubernetes-sigs/kind#3795
    assert [s[s.index("--platform") + 1] for s in saves] == ["linux/arm64", "linux/arm64"]
    assert [c[c.index("--nodes") + 1] for c in loads] == ["sc-worker,sc-worker2", "sc-worker"]
    assert not any("unused:1" in c for c in commands)


def test_the_operator_is_placed_by_a_node_selector(monkeypatch):
    from serve_chaos.runtime.kuberay import kind

    commands = []
    monkeypatch.setattr(kind, "run", lambda cmd, timeout_s=600.0, check=True: commands.append(cmd))
    kind.install_operator("kind-sc", {"serve-chaos/role": "head"})
    helm = next(c for c in commands if "upgrade" in c)
    assert helm[helm.index("--set-string") + 1] == "nodeSelector.serve-chaos/role=head"
    assert helm[helm.index("--version") + 1] == "1.7.0"


def test_up_waits_for_a_terminating_namespace(kube, monkeypatch):
    kube.cluster.apply(kube.cluster.manifests()[:1])
    ns = kube.store.get("Namespace", "", "serve-chaos")
    ns["metadata"]["deletionTimestamp"] = "2026-11-26T00:00:00Z"
    with pytest.raises(InfrastructureError) as err:
        kube.cluster._wait_namespace_usable(timeout_s=1)
    assert "namespace serve-chaos is still terminating" in str(err.value)
    del ns["metadata"]["deletionTimestamp"]
    kube.cluster._wait_namespace_usable(timeout_s=1)


# ---------------------------------------------------------------------- issue 18: one Ray pod per node
def ray_pod_nodes(kube: Kube, cluster: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in kube.operator.pods(cluster)
            if p["metadata"]["labels"].get("ray.io/node-type") in ("head", "worker")
            and not p["metadata"].get("deletionTimestamp")}


def test_after_a_node_loss_every_ray_pod_still_has_a_node_of_its_own(kube):
    """Issue 18 item 1: the lost worker's replacement must not join the surviving worker's node."""
    active = kube.bring_up()
    placed = ray_pod_nodes(kube, active)
    assert len(set(placed.values())) == len(placed) == 3
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    kube.cluster.kill_node(worker.node, replacement_delay_s=0.0)
    for timer in list(kube.cluster._timers):
        timer.join(5)  # the Node object is deleted
    kube.operator.settle()
    kube.store.advance(41)  # PodGC's quarantine
    kube.finish_pending()
    placed = ray_pod_nodes(kube, active)
    assert len(placed) == 3 and all(placed.values()), placed
    assert len(set(placed.values())) == 3, f"two Ray pods share a node: {placed}"
    assert worker.node not in placed.values()
    kube.cluster.heal()  # the node comes back, empty
    kube.operator.settle()
    assert kube.cluster.placement_problem() is None


def test_the_gate_refuses_ray_pods_sharing_a_node(kube):
    active = kube.bring_up()
    workers = [p for p in kube.operator.pods(active) if p["metadata"]["labels"]["ray.io/node-type"] == "worker"]
    workers[1]["spec"]["nodeName"] = workers[0]["spec"]["nodeName"]  # as a cluster made without the rule may be
    problem = kube.cluster.placement_problem()
    assert problem and workers[0]["spec"]["nodeName"] in problem and "\n" not in problem
    assert any(problem in x for x in kube.cluster.interference())
    with pytest.raises(InfrastructureError) as err:
        kube.cluster.wait_ready(timeout_s=30)
    assert "share node" in str(err.value) and "timed out" not in str(err.value)


# ---------------------------------------------------------------------- issue 18: attaching changes nothing
def attach_to(kube: Kube, ray: KubeRayConfig | None = None, asked: tuple[str, ...] = ()) -> KubeRayCluster:
    """A second harness (pytest, `run`) on the same cluster, built with its own defaults."""
    from dataclasses import replace

    target = replace(kube.cluster.target, ray=ray, asked=asked)
    return KubeRayCluster(target, api=KubeApi(lambda: FakeApiClient(kube.store)), context_name="kind-serve-chaos",
                          cli=kube.cli)


def writes(kube: Kube) -> list[str]:
    return [f"{c['method']} {c['path']}" for c in kube.store.calls if c["method"] in ("PATCH", "POST", "PUT", "DELETE")
            and "/configmaps/serve-chaos-lease" not in c["path"]]


@pytest.mark.parametrize("running, attaching", [
    (KubeRayConfig(workers=3), KubeRayConfig()),                      # `kind up --workers 3`, then pytest
    (KubeRayConfig(gcs_ft="legacy"), KubeRayConfig()),                # `kind up --gcs-ft legacy`, then pytest
])
def test_attaching_reclaims_and_waits_and_adopts_what_runs(running, attaching):
    kube = Kube()
    try:
        kube.cluster.ray = running
        kube.bring_up()
        assert kube.cluster.readiness_problem() is None  # the dashboard is pinned to the active cluster
        before = len(writes(kube))
        other = attach_to(kube, attaching)
        other.up(timeout_s=10)
        assert writes(kube)[before:] == [], "attaching re-applied objects"
        assert not other.created and other.ray.workers == running.workers and other.ray.gcs_ft == running.gcs_ft
        assert other.settings()["workers"] == running.workers
    finally:
        kube.close()


def test_attaching_refuses_in_one_line_what_was_asked_differently(kube):
    kube.cluster.ray = KubeRayConfig(workers=3)
    kube.bring_up()
    before = len(writes(kube))
    with pytest.raises(ConfigError) as err:
        attach_to(kube, KubeRayConfig(workers=2), asked=("workers",)).up(timeout_s=10)
    assert "workers 3" in str(err.value) and "asked 2" in str(err.value) and "\n" not in str(err.value)
    assert writes(kube)[before:] == []


def test_attaching_with_other_app_code_is_refused_before_anything_is_written(kube):
    from tests.test_user_app import user_app

    kube.bring_up()
    before = len(writes(kube))
    code = kube.store.get("ConfigMap", "serve-chaos", "serve-chaos-app")["data"]
    with pytest.raises(ConfigError) as err:
        attach_to(kube, KubeRayConfig(app=user_app())).up(timeout_s=10)
    assert "other app code" in str(err.value)
    assert writes(kube)[before:] == [] and kube.store.get("ConfigMap", "serve-chaos", "serve-chaos-app")["data"] == code


# ---------------------------------------------------------------------- issue 18: a user's --image
def test_an_image_present_only_locally_is_loaded_without_a_pull(monkeypatch):
    from serve_chaos.runtime.kuberay import kind

    commands = []

    def fake_run(cmd, timeout_s=600.0, check=True):
        commands.append(cmd)

        class Done:
            stdout = "linux/amd64\n"
            returncode = 0 if cmd[:3] == ["docker", "image", "inspect"] and "mine:dev" in cmd else 1
        return Done()

    monkeypatch.setattr(kind, "run", fake_run)
    kind.load_images("sc", {"mine:dev": ["sc-worker"], "rayproject/ray:2.60.0": ["sc-worker"]})
    pulls = [c[-1] for c in commands if c[:2] == ["docker", "pull"]]
    assert pulls == ["rayproject/ray:2.60.0"]  # the local image is used as it is
    assert any(c[:2] == ["docker", "save"] and "mine:dev" in c for c in commands)


@pytest.mark.parametrize("image", [None, "registry.local/me/app", "me/app:latest"])
def test_every_container_pulls_only_if_the_image_is_not_on_the_node(image):
    """A `:latest` or untagged image defaults to imagePullPolicy Always (kubernetes
    pkg/apis/core/v1/defaults.go SetDefaults_Container), which ignores `kind load`."""
    from tests.test_user_app import user_app

    config = KubeRayConfig(app=user_app().with_image(image)) if image else KubeRayConfig()
    rs = next(o for o in manifests.render(config, "pw") if o["kind"] == "RayService")
    cluster = rs["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    templates += [o["spec"]["template"] for o in manifests.render(config, "pw") if o["kind"] == "Deployment"]
    for template in templates:
        for container in template["spec"]["containers"]:
            assert container["imagePullPolicy"] == "IfNotPresent", container["name"]


# ---------------------------------------------------------------------- issue 18: the user's whole Serve config
def test_serve_config_v2_keeps_the_users_top_level_settings():
    """Only http_options.host and .port are ours: the Serve Service targets the pods' port 8000."""
    from serve_chaos.runtime.app.spec import AppSpec

    config = {"proxy_location": "HeadOnly", "logging_config": {"encoding": "JSON", "log_level": "DEBUG"},
              "grpc_options": {"port": 9001, "grpc_servicer_functions": []},
              "http_options": {"host": "127.0.0.1", "port": 9000, "request_timeout_s": 30},
              "applications": [{"name": "a", "route_prefix": "/", "import_path": "m:app", "deployments": []}]}
    app = AppSpec.of(config, "mine.yaml", image="me/app:1")
    rs = next(o for o in manifests.render(KubeRayConfig(app=app), "pw") if o["kind"] == "RayService")
    v2 = yaml.safe_load(rs["spec"]["serveConfigV2"])
    assert v2["proxy_location"] == "HeadOnly" and v2["logging_config"] == config["logging_config"]
    assert v2["grpc_options"] == config["grpc_options"]
    assert v2["http_options"] == {"host": "0.0.0.0", "port": 8000, "request_timeout_s": 30}
    assert v2["applications"] == config["applications"]


# ---------------------------------------------------------------------- issue 18: any cluster with KubeRay
def test_on_another_cluster_the_front_door_is_asked_for_and_the_dashboard_forwarded(kube, monkeypatch):
    """Issue 18 item 6: NodePorts mapped to 127.0.0.1 exist on kind only."""
    kube.bring_up()
    target = KubeTargetConfig(context="gke_prod", allowed_contexts=("gke_prod",),
                              serve_url=f"http://127.0.0.1:{kube.serve.port}")
    other = KubeRayCluster(target, api=KubeApi(lambda: FakeApiClient(kube.store)), context_name="gke_prod")
    try:
        opened = []
        monkeypatch.setattr("kubernetes.stream.portforward",
                            lambda fn, name, ns, **kw: opened.append((name, kw["ports"])) or (_ for _ in ()).throw(
                                OSError("no")))
        endpoints = other.endpoints()
        assert endpoints.front_door == f"http://127.0.0.1:{kube.serve.port}"
        assert endpoints.dashboard.startswith("http://127.0.0.1:") and endpoints.dashboard != "http://127.0.0.1:8265"
        _uid, forwarder, port = other._forwarders["role:dashboard"]
        assert endpoints.dashboard == f"http://127.0.0.1:{port}"
        with pytest.raises(OSError):
            forwarder.open_stream()
        head = next(p.name for p in other.pods() if p.role == "head")
        assert opened == [(head, "8265")]
    finally:
        other._stop_forwarders()


def test_on_another_cluster_without_a_serve_url_up_says_what_to_pass(kube):
    kube.bring_up()
    target = KubeTargetConfig(context="gke_prod", allowed_contexts=("gke_prod",))
    other = KubeRayCluster(target, api=KubeApi(lambda: FakeApiClient(kube.store)), context_name="gke_prod")
    with pytest.raises(ConfigError) as err:
        other.up(timeout_s=5)
    assert "--serve-url" in str(err.value) and "\n" not in str(err.value)
    for bad in ("10.0.0.5:30800", "http://lb.example.com", "ftp://h:1"):
        with pytest.raises(ConfigError):
            KubeTargetConfig(serve_url=bad)


# ---------------------------------------------------------------------- issue 20: a Ray version on kind
@pytest.mark.parametrize("version", ["2.40.0", "2.50.0", "2.60.0"])
def test_the_ray_pods_run_the_ray_version_asked(version):
    config = KubeRayConfig(ray_version=version)
    rs = next(o for o in manifests.render(config, "pw") if o["kind"] == "RayService")
    cluster = rs["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == version  # KubeRay picks probes by it (common/pod.go supportsUnifiedHealthCheck)
    for template in [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]:
        assert template["spec"]["containers"][0]["image"] == f"rayproject/ray:{version}"
    assert schema.errors(rs, crd_dir()) == []


@pytest.mark.parametrize("version, why", [("2.39.0", "below 2.40.0"), ("2.9", "is not a Ray version"),
                                          ("latest", "is not a Ray version")])
def test_a_ray_version_the_kind_target_cannot_run_is_one_line(version, why):
    with pytest.raises(ConfigError) as err:
        KubeRayConfig(ray_version=version)
    assert why in str(err.value) and "\n" not in str(err.value)


def test_attaching_adopts_the_running_ray_version_unless_another_was_asked(kube):
    kube.cluster.ray = KubeRayConfig(ray_version="2.50.0")
    kube.bring_up()
    other = attach_to(kube)
    other.up(timeout_s=10)
    assert other.ray.ray_version == "2.50.0" and other.settings()["ray_version"] == "2.50.0"
    with pytest.raises(ConfigError, match="ray_version 2.50.0 .asked 2.60.0."):
        attach_to(kube, KubeRayConfig(ray_version="2.60.0"), asked=("ray_version",)).up(timeout_s=10)


def test_the_kind_workflow_runs_the_suite_once_per_ray_version():
    flow = yaml.safe_load((Path(__file__).resolve().parents[1] / ".github" / "workflows" / "kind-chaos.yml").read_text())
    job = flow["jobs"]["scenarios"]
    assert job["strategy"]["matrix"]["ray"] == ["2.40.0", "2.50.0", "2.60.0"] and job["strategy"]["fail-fast"] is False
    runs = [step.get("run", "") for step in job["steps"]]
    assert any("kind up --preload --ray-version \"${{ matrix.ray }}\"" in r for r in runs)
    assert any("pytest scenarios/ --target kind --ray-version \"${{ matrix.ray }}\"" in r for r in runs)
    for version in job["strategy"]["matrix"]["ray"]:
        KubeRayConfig(ray_version=version)  # each one the kind target runs


def test_kind_up_makes_a_worker_node_per_ray_worker_and_a_spare():
    from serve_chaos.runtime.kuberay import kind

    for workers in (1, 2, 3, 5):
        config = yaml.safe_load(kind.config_for_workers(kind.DEFAULT_KIND_CONFIG, workers))
        roles = [n.get("labels", {}).get("serve-chaos/role") for n in config["nodes"] if n["role"] == "worker"]
        assert roles.count("worker") == max(workers + 1, 3) and roles.count("head") == 1
    assert kind.spare_problem(3, 2) is None and "need one more" in kind.spare_problem(3, 3)
