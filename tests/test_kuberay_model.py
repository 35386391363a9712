"""The model of KubeRay v1.7.0 and Kubernetes behaves as the cited upstream code does (issue 18 item 8).

Each test pins one behaviour the kube target's tests rely on; the upstream file is named in
``tests/kuberay_fake.py`` and ``tests/fake_kubernetes.py``.
"""

from __future__ import annotations

import copy
import json

import pytest

from serve_chaos.runtime.kuberay import manifests
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig
from tests.fake_apiserver import Store
from tests.fake_kubernetes import FakeKubernetes, kind_nodes
from tests.kube_world import Kube
from tests.kuberay_fake import FakeKubeRay, cluster_hash


@pytest.fixture
def kube():
    k = Kube()
    yield k
    k.close()


def rayservice(kube: Kube) -> dict:
    return kube.store.get("RayService", "serve-chaos", "serve-chaos")


def test_a_the_cluster_hash_leaves_out_replica_counts():
    spec = next(o for o in manifests.render(KubeRayConfig(), "pw") if o["kind"] == "RayService")["spec"]
    cluster = spec["rayClusterConfig"]
    more = copy.deepcopy(cluster)
    more["workerGroupSpecs"][0].update(replicas=3, minReplicas=3, maxReplicas=3)
    assert cluster_hash(more) == cluster_hash(cluster)
    env = copy.deepcopy(cluster)
    env["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    assert cluster_hash(env) != cluster_hash(cluster)


def test_a_a_new_replica_count_alone_changes_no_cluster(kube):
    active = kube.bring_up()
    rs = rayservice(kube)
    rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(replicas=3, minReplicas=3, maxReplicas=3)
    kube.operator.settle()
    assert kube.cluster.state().pending is None
    cluster = kube.store.get("RayCluster", "serve-chaos", active)
    assert cluster["spec"]["workerGroupSpecs"][0]["replicas"] == 2  # never propagated
    assert len([p for p in kube.operator.pods(active) if p["metadata"]["labels"]["ray.io/node-type"] == "worker"]) == 2


def test_b_a_terminating_pod_is_counted_until_it_is_gone(kube):
    active = kube.bring_up()
    worker = next(p for p in kube.operator.pods(active) if p["metadata"]["labels"]["ray.io/node-type"] == "worker")
    kube.cluster.kill_pod(worker["metadata"]["name"])  # graceful: Terminating for its grace period
    kube.operator.settle()
    workers = [p for p in kube.operator.pods(active) if p["metadata"]["labels"]["ray.io/node-type"] == "worker"]
    assert len(workers) == 2 and any(p["metadata"].get("deletionTimestamp") for p in workers)
    kube.store.advance(31)
    kube.operator.settle()
    workers = [p for p in kube.operator.pods(active) if p["metadata"]["labels"]["ray.io/node-type"] == "worker"]
    assert len(workers) == 2 and worker["metadata"]["name"] not in {p["metadata"]["name"] for p in workers}


def test_c_ready_follows_the_serve_services_ready_endpoints(kube):
    active = kube.bring_up()
    status = rayservice(kube)["status"]
    assert status["numServeEndpoints"] == 3
    for pod in kube.operator.pods(active):
        if pod["metadata"]["labels"].get("ray.io/node-type") == "worker":
            kube.operator.kube.probe_fails.add(pod["metadata"]["name"])  # the proxy's /-/healthz fails
    kube.operator.healthy_heads.clear()  # the head's proxy fails KubeRay's health check too
    kube.operator.settle()
    status = rayservice(kube)["status"]
    # Every pod is still Running; no endpoint is ready, so the RayService is not Ready.
    assert all(p["status"]["phase"] == "Running" for p in kube.operator.pods(active))
    assert status["numServeEndpoints"] == 0
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"


@pytest.mark.parametrize("mode", ["options", "legacy"])
def test_d_both_gcs_ft_forms_run_the_redis_cleanup_job(mode):
    kube = Kube()
    try:
        kube.cluster.ray = KubeRayConfig(gcs_ft=mode)
        active = kube.bring_up()
        cluster = kube.store.get("RayCluster", "serve-chaos", active)
        assert "ray.io/gcs-ft-redis-cleanup-finalizer" in cluster["metadata"]["finalizers"]
        kube.store.delete("RayCluster", "serve-chaos", active)
        kube.operator.settle()  # its pods are deleted; the head must be gone before the cleanup
        assert kube.store.get("Job", "serve-chaos", f"{active}-redis-cleanup") is None
        kube.store.advance(31)
        kube.operator.settle(8)
        assert kube.store.get("Job", "serve-chaos", f"{active}-redis-cleanup") is not None
        assert kube.store.get("RayCluster", "serve-chaos", active) is None
    finally:
        kube.close()


def test_e_the_scheduler_honours_node_selectors_taints_and_anti_affinity():
    store = Store()
    kube = FakeKubernetes(store)
    names = [n for n, _, _ in kind_nodes()]
    assert names[0] == "kind-control-plane" and names[1:] == [f"kind-worker{'' if i == 1 else i}"
                                                             for i in range(1, len(names))]
    term = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "w"}},
            "matchLabelKeys": ["group"]}
    spec = {"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"serve-chaos/role": "worker"},
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}
    workers = [n for n, labels, _ in kind_nodes() if labels.get("serve-chaos/role") == "worker"]
    for i in range(len(workers) + 1):
        store.put(kube.new_pod(f"a{i}", {"app": "w", "group": "a"}, spec))
    store.put(kube.new_pod("b0", {"app": "w", "group": "b"}, spec))  # another group: not repelled
    kube.schedule()
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in kube.pods()}
    a_nodes = [placed[f"a{i}"] for i in range(len(workers)) if placed[f"a{i}"]]
    assert sorted(a_nodes) == sorted(workers)  # one per worker node ...
    assert placed[f"a{len(workers)}"] is None  # ... and the next one stays Pending
    assert placed["b0"] in workers
    # matchLabelKeys was merged into the selector by the API server on create.
    expr = store.get("Pod", "serve-chaos", "a0")["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]["matchExpressions"]
    assert expr == [{"key": "group", "operator": "In", "values": ["a"]}]


def test_e_podgc_removes_a_lost_nodes_pods_only_after_the_node_is_deleted_and_quarantined():
    store = Store()
    kube = FakeKubernetes(store)
    store.put(kube.new_pod("p", {"app": "x"}, {"containers": [{"name": "c", "image": "i"}],
                                               "nodeSelector": {"serve-chaos/role": "head"}}))
    kube.step()
    kube.start()
    node = store.get("Pod", "serve-chaos", "p")["spec"]["nodeName"]
    kube.stop_node(node)
    store.delete("Pod", "serve-chaos", "p")  # a graceful delete on a dead node never completes
    store.advance(300)
    kube.step()
    assert store.get("Pod", "serve-chaos", "p") is not None
    store.remove("Node", "", node)
    kube.step()
    store.advance(39)
    kube.step()
    assert store.get("Pod", "serve-chaos", "p") is not None
    store.advance(2)
    kube.step()
    assert store.get("Pod", "serve-chaos", "p") is None
    kube.start_node(node)
    assert store.get("Node", "", node)["metadata"]["labels"]["serve-chaos/role"] == "head"


def test_f_kuberay_resubmits_the_config_when_the_dashboard_has_no_application(kube):
    active = kube.bring_up()
    dashboard = kube.operator.dashboard(active)
    puts = len(dashboard.puts)
    kube.operator.settle()
    assert len(dashboard.puts) == puts  # cached and unchanged: not submitted again
    dashboard.applications.clear()  # a head restarted without GCS FT
    kube.operator.settle()
    assert len(dashboard.puts) == puts + 1 and dashboard.applications


def test_f_a_config_the_dashboard_refuses_is_a_warning_event_and_no_status(kube):
    active = kube.bring_up()
    kube.operator.dashboard(active).reject = "Invalid Serve config: num_replicas must be > 0"
    rs = rayservice(kube)
    rs["spec"]["serveConfigV2"] = rs["spec"]["serveConfigV2"].replace("num_replicas: 6", "num_replicas: -1")
    rs["metadata"]["generation"] += 1
    kube.operator.settle()
    events = kube.store.list("Event", "serve-chaos", fields="reason=FailedToUpdateServeApplications")
    assert events and "UpdateDeployments fail: 400" in events[0]["message"]
    assert events[0]["message"].endswith("num_replicas must be > 0") and events[0]["series"]["count"] > 1
    assert rs["status"]["observedGeneration"] == rs["metadata"]["generation"] - 1


def test_g_a_deleted_rayservice_waits_for_its_clusters():
    store = Store()
    operator = FakeKubeRay(store)
    obj = next(o for o in manifests.render(KubeRayConfig(gcs_ft="off"), "pw") if o["kind"] == "RayService")
    store.put(copy.deepcopy(obj))
    operator.settle()
    rs = store.get("RayService", "serve-chaos", "serve-chaos")
    assert rs["metadata"]["finalizers"] == ["ray.io/rayservice-finalizer"]
    cluster = rs["status"]["pendingServiceStatus"]["rayClusterName"]
    assert store.get("RayCluster", "serve-chaos", cluster) is not None
    store.delete("RayService", "serve-chaos", "serve-chaos")
    assert store.get("RayService", "serve-chaos", "serve-chaos")["metadata"]["deletionTimestamp"]
    operator.settle()
    assert store.get("RayCluster", "serve-chaos", cluster) is None
    assert store.get("RayService", "serve-chaos", "serve-chaos") is None


def test_the_gcs_ft_finalizer_goes_when_the_cleanup_job_failed_too(kube):
    # IsJobFinished counts Failed as finished; the finalizer then goes (raycluster_controller.go).
    from tests.kuberay_fake import GCS_FT_FINALIZER

    old = kube.bring_up()
    kube.store.delete("RayCluster", "serve-chaos", old)
    while kube.store.get("Job", "serve-chaos", f"{old}-redis-cleanup") is None:
        kube.store.advance(5)
        kube.operator.kube.terminate()
        kube.operator.reconcile()
    kube.operator.kube.stopped.update(kube.operator.kube.nodes())  # its pod never succeeds
    kube.operator.reconcile()
    assert GCS_FT_FINALIZER in kube.store.get("RayCluster", "serve-chaos", old)["metadata"]["finalizers"]
    kube.store.get("Job", "serve-chaos", f"{old}-redis-cleanup")["status"] = {
        "failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}
    kube.store.advance(2)
    kube.operator.reconcile()
    assert kube.store.get("RayCluster", "serve-chaos", old) is None


def test_the_gcs_ft_finalizer_is_forced_off_after_300_s(kube):
    # forceRemoveGCSFTFinalizer: a cleanup that never finishes holds the deletion at most 300 s.
    old = kube.bring_up()
    kube.store.delete("RayCluster", "serve-chaos", old)
    deleted_at = kube.store.now()
    while kube.store.get("Job", "serve-chaos", f"{old}-redis-cleanup") is None:
        kube.store.advance(5)
        kube.operator.kube.terminate()
        kube.operator.reconcile()
    kube.operator.kube.stopped.update(kube.operator.kube.nodes())  # its pod never runs: the Job never finishes
    gone_after = None
    for _ in range(80):
        kube.store.advance(5)
        kube.operator.reconcile()
        if kube.store.get("RayCluster", "serve-chaos", old) is None:
            gone_after = kube.store.now() - deleted_at
            break
    assert gone_after is not None and 300 <= gone_after <= 310


def test_a_missing_head_stops_the_reconcile_before_the_status(kube):
    # reconcileServe cannot get the active cluster's head pod: no status is written meanwhile.
    active = kube.bring_up()
    rs = kube.store.get("RayService", "serve-chaos", "serve-chaos")
    head = kube.operator.head(active)
    kube.store.remove("Pod", "serve-chaos", head["metadata"]["name"])
    before = json.dumps(rs["status"], sort_keys=True)
    rs["metadata"]["generation"] += 1
    kube.operator.kube.stopped.update(kube.operator.kube.nodes())  # nothing restarts the head
    kube.operator.reconcile()
    assert json.dumps(rs["status"], sort_keys=True) == before


def test_on_nodes_without_role_labels_every_pod_runs_one_ray_pod_per_node():
    # Issue 23 (10.1): a node selector only kind's nodes match left every pod Pending elsewhere.
    world = Kube(role_labels=False)
    try:
        active = world.bring_up()
        pods = world.cluster.pods()
        assert {p.role for p in pods} == {"head", "worker", "redis"} and all(p.phase == "Running" for p in pods)
        ray_nodes = [p.node for p in pods if p.role in ("head", "worker")]
        assert len(ray_nodes) == len(set(ray_nodes)) == 3
        redis = next(p for p in pods if p.role == "redis")
        assert redis.node == next(p for p in pods if p.role == "head").node
        assert world.cluster.placement_problem() is None
        spec = world.store.get("RayCluster", "serve-chaos", active)["spec"]
        assert "nodeSelector" not in spec["headGroupSpec"]["template"]["spec"]
    finally:
        world.close()
