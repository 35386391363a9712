"""Planned disruptions on the kube target (issue 16), against the model of KubeRay v1.7.0:
a Serve config changed under load, a node drained by Ray's drain API, a RayService upgrade."""

from __future__ import annotations

import copy

import pytest
import yaml

from runtime.errors import ConfigError, ServeChaosError
from runtime.kuberay.lease import KubeLease
from runtime.kuberay.serveconfig import SERVE_CONFIG_MANAGER, rejection
from tests.kube_world import FakeWs, Kube, ray_node_id

NS = "serve-chaos"


@pytest.fixture
def kube():
    k = Kube()
    k.bring_up()
    assert k.cluster.readiness_problem() is None
    yield k
    k.close()


def rayservice(kube: Kube) -> dict:
    return kube.store.get("RayService", NS, "serve-chaos")


def changed(kube: Kube, **options) -> dict:
    return kube.cluster.ray.app.with_options(**options).to_serve_config()


# ---------------------------------------------------------------------- update_serve_config
def test_a_config_change_is_submitted_by_kuberay_and_leased_with_the_original(kube):
    original = kube.cluster.serve_config()
    cluster_before = copy.deepcopy(rayservice(kube)["spec"]["rayClusterConfig"])
    new = changed(kube, user_config={"step": 2})
    with kube.operator.running():
        record = kube.cluster.update_serve_config(new, "user_config step 2")
    assert record.action == "update_serve_config" and record.details["change"] == "user_config step 2"
    assert record.t_start <= record.details["t_accepted"] <= record.t_end
    rs = rayservice(kube)
    assert yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"] == new["applications"]
    assert kube.cluster.serve_config() == new
    # Only serveConfigV2 and the annotation were written, under a manager of their own: the
    # cluster spec (owned by `serve-chaos`) is untouched, so no upgrade started.
    assert rs["spec"]["rayClusterConfig"] == cluster_before and kube.cluster.state().pending is None
    patch = [c for c in kube.store.calls if c["method"] == "PATCH" and "rayservices" in c["path"]][-1]
    assert patch["query"]["fieldManager"] == [SERVE_CONFIG_MANAGER] and set(patch["body"]["spec"]) == {"serveConfigV2"}
    (lease,) = [f for f in kube.cluster.lease.faults() if f["kind"] == "serve_config"]
    assert lease["data"]["original"] == original
    # A second change keeps the first original.
    with kube.operator.running():
        kube.cluster.update_serve_config(changed(kube, user_config={"step": 3}), "user_config step 3")
    assert kube.cluster.lease.fault("serve_config", "serve-chaos")["data"]["original"] == original


def test_heal_restores_the_config_desired_before_the_first_change(kube):
    original = kube.cluster.serve_config()
    with kube.operator.running():
        kube.cluster.update_serve_config(changed(kube, num_replicas=2), "scale 6 -> 2")
        records = kube.cluster.heal()
        kube.cluster.wait_ready(timeout_s=20)  # waits until the deployed config is the original again
    assert [r.action for r in records] == ["restore_serve_config"]
    assert kube.cluster.serve_config() == original and kube.cluster.lease.faults() == []


def test_a_config_serve_refuses_is_one_line_and_changes_nothing(kube):
    original = kube.cluster.serve_config()
    active = kube.serving()
    kube.operator.dashboard(active).reject = ("Invalid Serve config: 1 validation error for ServeDeploySchema\n"
                                              "applications.0.deployments.0.num_replicas\n  must be > 0")
    with kube.operator.running(), pytest.raises(ServeChaosError) as err:
        kube.cluster.update_serve_config(changed(kube, num_replicas=-1), "num_replicas -1")
    text = str(err.value)
    assert "Serve refused the config change (num_replicas -1)" in text and "must be > 0" in text
    assert "\n" not in text and "previous config is restored" in text
    assert kube.cluster.serve_config() == original
    assert yaml.safe_load(rayservice(kube)["spec"]["serveConfigV2"])["applications"] == original["applications"]
    assert kube.cluster.lease.faults() == []


def test_a_config_serve_cannot_deploy_is_undone_too(kube):
    original = kube.cluster.serve_config()
    kube.operator.dashboard(kube.serving()).fail_next = ("sleepy", "Traceback ...\nModuleNotFoundError: No module "
                                                                   "named 'sleepy_pidd'")
    bad = copy.deepcopy(original)
    bad["applications"][0]["import_path"] = "sleepy_pidd:app"
    with kube.operator.running():
        with pytest.raises(ConfigError) as err:
            kube.cluster.update_serve_config(bad, "import path")
        kube.cluster.wait_ready(timeout_s=20)  # the original is deployed and running again
    assert "No module named 'sleepy_pidd'" in str(err.value) and kube.cluster.serve_config() == original


def test_the_next_command_restores_what_a_dead_harness_changed(kube):
    original = kube.cluster.serve_config()
    dead = KubeLease(kube.cluster.api, kube.cluster.ray, alive=lambda pid: False)
    dead.add_fault("serve_config", "serve-chaos", original=original, change="scale")
    faults = dead.faults()
    faults[0]["pid"] = 999999
    dead._write(None, faults)
    kube.cluster.apply_serve_config(changed(kube, num_replicas=2))
    records = kube.cluster.reclaim()
    assert [r.action for r in records] == ["reclaim_serve_config"]
    assert kube.cluster.serve_config() == original and kube.cluster.lease.faults() == []


def test_rejection_takes_serves_answer_from_kuberays_event_note():
    note = ("Failed to update serve applications to the RayCluster ns/c: fail to create / update Serve applications. "
            "If you observe ... err: UpdateDeployments fail: 400 Bad Request {\"error\": \"bad\n  config\"}")
    assert rejection(note) == '400 Bad Request {"error": "bad config"}'


# ---------------------------------------------------------------------- drain_node
def test_a_drain_is_ray_drain_node_in_the_head_for_the_pods_ray_node(kube, monkeypatch):
    seen = []

    def fake_stream(fn, name, namespace, **kwargs):
        seen.append((name, kwargs["container"], kwargs["command"], fn.__self__.api_client))
        return FakeWs()

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    head = next(p for p in kube.cluster.pods() if p.role == "head")
    record = kube.cluster.drain_node(worker.name, "DRAIN_NODE_REASON_PREEMPTION", 60, "spot preemption")
    ((pod, container, command, client),) = seen
    assert (pod, container) == (head.name, "ray-head") and client is not kube.cluster.api.rest
    assert command == ["ray", "drain-node", "--address", f"{head.ip}:6379", "--node-id", ray_node_id(worker.name),
                       "--reason", "DRAIN_NODE_REASON_PREEMPTION", "--reason-message", "spot preemption",
                       "--deadline-remaining-seconds", "60"]
    assert record.details["node_id"] == ray_node_id(worker.name)
    assert record.t_start + 60 == pytest.approx(record.details["t_deadline"], abs=1)
    assert kube.cluster.lease.fault("drain", worker.name)["data"]["node_id"] == ray_node_id(worker.name)
    # A drain cannot be undone: heal replaces the drained pod (a force delete; KubeRay recreates it).
    records = kube.cluster.heal()
    assert [r.action for r in records] == ["replace_drained_pod"]
    delete = [c for c in kube.store.calls if c["method"] == "DELETE"][-1]
    assert delete["path"].endswith(f"/pods/{worker.name}") and delete["query"]["gracePeriodSeconds"] == ["0"]
    assert kube.cluster.lease.faults() == []


def test_a_drain_ray_refuses_carries_rays_reason(kube, monkeypatch):
    monkeypatch.setattr("kubernetes.stream.stream", lambda *a, **k: FakeWs(
        stderr="Usage: ray drain-node ...\nError: The drain request is not accepted: Node is already being drained.",
        returncode=1))
    worker = next(p for p in kube.cluster.pods() if p.role == "worker")
    with pytest.raises(ServeChaosError) as err:
        kube.cluster.drain_node(worker.name, "DRAIN_NODE_REASON_PREEMPTION", 60, "spot")
    assert str(err.value).endswith("The drain request is not accepted: Node is already being drained")
    assert kube.cluster.lease.faults() == []
    with pytest.raises(ConfigError):
        kube.cluster.drain_node(worker.name, "DRAIN_NODE_REASON_UNSPECIFIED", 60, "spot")
