"""The operator model held against the real control plane and the real KubeRay operator.

``tests/fixtures/kuberay-<version>/contract.json`` was recorded from the k8s target (the real
kube-apiserver, controller manager, scheduler and KubeRay operator; ``tools/record_kube_contract.py``)
while a worker pod and a head pod were deleted, a worker node was lost and its Node deleted,
and the RayService was upgraded.  Each test drives the model (``tests/kuberay_fake.py``,
``tests/fake_kubernetes.py``) through the same, computes the same facts with the recorder's own
functions, and asserts they agree -- for every behaviour the model imitates.  What the model
does not imitate is listed in ``NOT_MODELLED`` with why no unit test needs it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.kube_world import Kube
from tools.record_kube_contract import first, pod, role_pods, static_facts

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("kuberay-*/contract.json"))
NS = "serve-chaos"
#: What the real operator or control plane does that the model leaves out, and why nothing needs it.
NOT_MODELLED = {
    "worker_init_containers": "the wait-gcs-ready init container: the model's pods start at once",
    "worker_readiness_probe": "probes: the model sets readiness directly",
    "head_readiness_probe": "probes: the model sets readiness directly",
    "raycluster_labels": "the RayCluster's labels: nothing reads them",
    "rayservice_status_keys": "status fields the harness does not read (lastUpdateTime, serviceStatus, ...)",
}


@pytest.fixture(params=FIXTURES, ids=lambda p: p.parent.name)
def recorded(request) -> dict[str, Any]:
    return json.loads(request.param.read_text())


@pytest.fixture
def kube():
    world = Kube()
    world.bring_up()
    yield world
    world.close()


def sample(kube: Kube) -> dict[str, Any]:
    """What the recorder samples, from the model's store (at the model's clock)."""
    store = kube.store
    with store.lock:  # copies: the store's objects change in place later
        return copy.deepcopy({"t": store.now(), "pods": store.list("Pod", NS), "services": store.list("Service", NS),
                              "endpointslices": store.list("EndpointSlice", NS), "jobs": store.list("Job", NS),
                              "nodes": store.list("Node"), "rayclusters": store.list("RayCluster", NS),
                              "rayservices": store.list("RayService", NS), "events": store.list("Event", NS)})


def drive(kube: Kube, until: Callable[[dict[str, Any]], bool], seconds: float, step_s: float = 0.5,
          serve: bool = True) -> list[dict[str, Any]]:
    """Step the model ``step_s`` of its clock at a time (one reconcile and one pass of every
    controller each) until ``until(sample)`` holds or ``seconds`` pass; every sample taken."""
    samples = []
    for _ in range(int(seconds / step_s)):
        kube.store.advance(step_s)
        kube.operator.reconcile()
        kube.operator.kube.start()
        for cluster in kube.operator.clusters():
            kube.operator.proxy_healthy(cluster["metadata"]["name"])
            if serve:
                kube.operator.dashboard(cluster["metadata"]["name"]).run()
        samples.append(sample(kube))
        if until(samples[-1]):
            break
    return samples


def test_the_objects_the_model_makes_match_the_real_operators(kube, recorded):
    real = recorded["static"]
    model = static_facts(sample(kube))
    for key in ("rayservice_finalizers", "raycluster_finalizers", "head_owner_kind", "head_serve_label",
                "worker_serve_label", "serve_service_type", "control_plane_taints", "rayservice_conditions"):
        assert model[key] == real[key], key
    assert model["serve_service_selector"].keys() == real["serve_service_selector"].keys()
    assert model["head_service_cluster_ip"] == real["head_service_cluster_ip"] == "None"
    assert model["head_service_publish_not_ready"] is real["head_service_publish_not_ready"] is True
    # The model gives pods only labels KubeRay gives them (the real ones have more: what no test reads).
    for role in ("head", "worker"):
        assert set(model[f"{role}_pod_labels"]) <= set(real[f"{role}_pod_labels"]), role
    # Names: <rayservice>-<5>, <cluster>-head-<5>, <cluster>-<group>-worker-<5>; kind's node names.
    assert len(model["raycluster_name_pattern"]) == len(real["raycluster_name_pattern"]) == 6
    for role, infix in (("head", "-head-"), ("worker", "-workers-worker-")):
        for name in (model[f"{role}_pod_name"], real[f"{role}_pod_name"]):
            assert infix in name and len(name.rsplit("-", 1)[1]) == 5
    assert [n.split("serve-chaos-", 1)[-1] for n in real["node_names"]] == \
        [n.split("kind-", 1)[-1] for n in model["node_names"]]


@pytest.mark.parametrize("role", ["worker", "head"])
def test_a_deleted_pods_replacement_waits_until_the_old_pod_is_gone(kube, recorded, role):
    # reconcilePods counts a Terminating pod: a replacement is created only once it left the API.
    real = recorded[f"{role}_pod_delete"]
    assert real["replacement_before_old_gone"] is False and real["victim_grace_s"] == 30
    before = sample(kube)
    victim = role_pods(before, role)[0]
    known = {p["metadata"]["uid"] for p in role_pods(before, role)}
    t0 = kube.store.now()
    kube.cluster.kill_pod(victim["metadata"]["name"], graceful=True)
    samples = drive(kube, lambda s: any(p["metadata"]["uid"] not in known for p in role_pods(s, role)), 120)
    gone = first(samples, t0, lambda s: pod(s, victim["metadata"]["name"]) is None)
    new = first(samples, t0, lambda s: any(p["metadata"]["uid"] not in known for p in role_pods(s, role)))
    assert gone is not None and new is not None and new >= gone


def test_podgc_and_endpoint_slices_after_a_nodes_deletion(kube, recorded):
    real = recorded["node_loss"]
    # Real: the lost pod left 50.5 s after its Node was deleted (PodGC: 40 s quarantine, checked every
    # 20 s), and its endpoints left the Serve Service's slices 39.9 s after -- not at once.
    assert 40.0 <= real["pod_gone_after_node_deleted_s"] <= 80.0
    assert 30.0 <= real["endpoints_of_deleted_node_dropped_s_after_node_deleted"] <= real[
        "pod_gone_after_node_deleted_s"]
    victim = role_pods(sample(kube), "worker")[0]
    node = victim["spec"]["nodeName"]
    kube.operator.kube.stop_node(node)
    kube.store.remove("Node", "", node)
    t0 = kube.store.now()
    samples = drive(kube, lambda s: pod(s, victim["metadata"]["name"]) is None, 120)
    gone = first(samples, t0, lambda s: pod(s, victim["metadata"]["name"]) is None)
    dropped = first(samples, t0, lambda s: not any(e.get("nodeName") == node for sl in s["endpointslices"]
                                                   for e in sl.get("endpoints") or []))
    assert gone is not None and 40.0 <= gone <= 80.0
    assert dropped is not None and abs(dropped - real["endpoints_of_deleted_node_dropped_s_after_node_deleted"]) <= \
        20.0 and dropped <= gone


def test_an_upgrade_switches_then_deletes_the_old_cluster_after_its_delay(kube, recorded):
    real = recorded["upgrade"]
    # Real: the old cluster's delete came 61 s after the switch (RayClusterDeletionDelayDuration 60 s),
    # its GCS-FT finalizer held it until the Redis cleanup Job, whose pod is labelled redis-cleanup, ran.
    assert 60.0 <= real["old_cluster_delete_issued_s_after_switch"] <= 66.0
    assert real["old_cluster_finalizers"] == ["ray.io/gcs-ft-redis-cleanup-finalizer"]
    assert real["redis_cleanup_job_labels"]["ray.io/node-type"] == "redis-cleanup"
    old = kube.serving()
    kube.cluster.upgrade_cluster({"env": {"SERVE_CHAOS_CONTRACT": "1"}})
    t0 = kube.store.now()

    def serve_selector(s: dict[str, Any]) -> str | None:
        svc = next((x for x in s["services"] if x["metadata"]["name"].endswith("-serve-svc")), None)
        return ((svc or {}).get("spec") or {}).get("selector", {}).get("ray.io/cluster")

    samples = drive(kube, lambda s: not any(c["metadata"]["name"] == old for c in s["rayclusters"]), 400)
    switched = first(samples, t0, lambda s: serve_selector(s) not in (None, old))
    deleting = first(samples, t0, lambda s: any(c["metadata"]["name"] == old and c["metadata"].get("deletionTimestamp")
                                               for c in s["rayclusters"]))
    assert switched is not None and deleting is not None
    assert abs((deleting - switched) - real["old_cluster_delete_issued_s_after_switch"]) <= 5.0
    old_seen = next(c for s in samples for c in s["rayclusters"] if c["metadata"]["name"] == old)
    assert old_seen["metadata"].get("finalizers") == real["old_cluster_finalizers"]
    labels = next(j["spec"]["template"]["metadata"]["labels"] for s in samples for j in s["jobs"]
                  if j["metadata"]["name"].startswith(old))
    assert labels["ray.io/node-type"] == real["redis_cleanup_job_labels"]["ray.io/node-type"]


def test_every_recorded_fact_is_either_held_or_said_to_be_left_out(recorded):
    held = {"rayservice_finalizers", "raycluster_finalizers", "head_owner_kind", "head_serve_label",
            "worker_serve_label", "serve_service_type", "control_plane_taints", "rayservice_conditions",
            "serve_service_selector", "head_service_cluster_ip", "head_service_publish_not_ready", "head_pod_labels",
            "worker_pod_labels", "raycluster_name_pattern", "head_pod_name", "worker_pod_name", "node_names"}
    assert set(recorded["static"]) == held | set(NOT_MODELLED)
