"""Planned disruptions on the kube target (issue 16), against the model of KubeRay v1.7.0:
a Serve config changed under load, a node drained by Ray's drain API, a RayService upgrade."""

from __future__ import annotations

import copy

import pytest
import yaml

from serve_chaos.runtime.errors import ConfigError, ServeChaosError
from serve_chaos.runtime.kuberay.lease import KubeLease
from serve_chaos.runtime.kuberay.serveconfig import SERVE_CONFIG_MANAGER, rejection
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
    dead._update(lambda record: (None, faults))
    kube.cluster.apply_serve_config(changed(kube, num_replicas=2))
    records = kube.cluster.reclaim()
    assert [r.action for r in records] == ["reclaim_serve_config"]
    assert kube.cluster.serve_config() == original and kube.cluster.lease.faults() == []


def test_a_replacing_apply_deletes_the_apps_through_kuberay_first(kube):
    # Serve ignores a change of max_replicas_per_node alone (DeploymentState.deploy), so a
    # heavy change goes delete-then-deploy, as on the local target.
    new = changed(kube, max_replicas_per_node=3)
    dashboard = kube.operator.dashboard(kube.serving())
    before = len(dashboard.puts)
    with kube.operator.running():
        record = kube.cluster.apply_serve_config(new, replace=True)
        kube.cluster.wait_ready(timeout_s=20)
    assert record.details["replace"] is True
    assert [p["applications"] for p in dashboard.puts[before:before + 1]] == [[]]
    assert dashboard.puts[-1]["applications"] == new["applications"]
    assert kube.cluster.serve_config() == new and kube.cluster.lease.faults() == []


def test_between_delete_and_deploy_the_desired_config_is_leased_and_an_interrupt_still_deploys_it(
        kube, monkeypatch):
    new = changed(kube, max_replicas_per_node=3)
    set_config = kube.cluster._set_serve_config
    calls, leased = [], []

    def dies_after_the_delete(config):
        calls.append(config)
        set_config(config)
        if len(calls) == 1:
            # A SIGKILL here leaves this lease: the next command restores ``original``.
            leased.extend((f["kind"], f["data"]["original"]) for f in kube.cluster.lease.faults())
            raise KeyboardInterrupt

    monkeypatch.setattr(kube.cluster, "_set_serve_config", dies_after_the_delete)
    with pytest.raises(KeyboardInterrupt):
        kube.cluster.apply_serve_config(new, replace=True)
    assert leased == [("serve_config", new)]
    assert calls[0]["applications"] == [] and calls[-1] == new
    assert kube.cluster.serve_config() == new and kube.cluster.lease.faults() == []


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


# ---------------------------------------------------------------------- upgrade_cluster
def template_env(rs: dict) -> list[list[dict]]:
    cluster = rs["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    return [t["spec"]["containers"][0].get("env", []) for t in templates]


def test_an_upgrade_rolls_a_new_cluster_under_the_same_serve_service_and_heal_waits_for_the_old_to_go(kube):
    old = kube.serving()
    old_pods = {p.name for p in kube.cluster.pods() if p.role in ("head", "worker")}
    record = kube.cluster.upgrade_cluster({"env": {"SERVE_CHAOS_UPGRADE": "1"}})
    assert record.details["from_cluster"] == old and record.details["change"] == {"env": {"SERVE_CHAOS_UPGRADE": "1"}}
    rs = rayservice(kube)
    assert all({"name": "SERVE_CHAOS_UPGRADE", "value": "1"} in env for env in template_env(rs))
    kube.operator.settle()
    new = kube.cluster.state().pending
    assert new and new != old
    # While the new cluster starts, the old one serves and is the cluster under test.
    assert {p.name for p in kube.cluster.pods() if p.role != "redis"} == old_pods
    # A later command adopts the change instead of rolling it back.
    from tests.test_kuberay import attach_to, writes

    before = len(writes(kube))
    other = attach_to(kube)
    other.attach()
    other.adopt()
    assert other.ray.cluster_change == kube.cluster.ray.cluster_change and writes(kube)[before:] == []
    kube.finish_pending()
    serve = kube.store.get("Service", NS, "serve-chaos-serve-svc")
    assert serve["spec"]["selector"]["ray.io/cluster"] == new and kube.cluster.state().active == new
    new_pods = {p.name for p in kube.cluster.pods() if p.role in ("head", "worker")}
    assert new_pods and not new_pods & old_pods
    dashboard = kube.store.get("Service", NS, "serve-chaos-dashboard-nodeport")
    assert dashboard["spec"]["selector"]["ray.io/cluster"] == new  # followed by pods(), not only by readiness
    with kube.operator.running(advance_s=5.0):
        (settled,) = kube.cluster.heal()
    assert settled.action == "upgrade_settled"
    assert settled.details["from_cluster"] == old and settled.details["to_cluster"] == new
    assert settled.details["old_cluster_deleted"] and kube.store.get("RayCluster", NS, old) is None
    assert kube.cluster.lease.faults() == []


def test_an_upgrade_refuses_what_it_cannot_change_and_a_second_one_meanwhile(kube):
    with pytest.raises(ConfigError):
        kube.cluster.upgrade_cluster({"replicas": 3})
    kube.cluster.upgrade_cluster({"labels": {"serve-chaos/upgrade": "a"}})
    kube.operator.settle()
    with pytest.raises(ServeChaosError, match="under way already"):
        kube.cluster.upgrade_cluster({"labels": {"serve-chaos/upgrade": "b"}})


# ---------------------------------------------------------------------- the rayservice_upgrade fault
def test_the_upgrade_fault_plans_every_ray_pod_and_actor_and_judges_the_old_cluster_gone(kube):
    import random

    from serve_chaos.harness.faults.upgrade import RayServiceUpgrade, old_cluster_deleted
    from serve_chaos.harness.observe.history import FaultRecord
    from serve_chaos.scenarios.test_rayservice_upgrade import RAYSERVICE_UPGRADE
    from tests.test_kuberay import kube_snapshot

    assert RAYSERVICE_UPGRADE.requires == ("upgrade_cluster",) and kube.cluster.capabilities.upgrade_cluster
    pods = kube.cluster.pods()
    snap = kube_snapshot(kube)
    plan = RayServiceUpgrade().plan(snap, pods, random.Random(1))
    ray_pods = {p.name for p in pods if p.role in ("head", "worker")}
    assert {v["name"] for v in plan.victims if v["role"] == "pod"} == ray_pods
    assert sum(v["role"] == "replica" for v in plan.victims) == snap.replicas_running
    assert {v["role"] for v in plan.victims} == {"pod", "replica", "proxy", "controller"}
    fault = RayServiceUpgrade().inject(kube.cluster, plan)
    assert fault.action["details"]["from_cluster"] == kube.serving()
    kube.operator.settle()
    kube.finish_pending()
    with kube.operator.running(advance_s=5.0):
        fault.heal_actions = [a.to_dict() for a in RayServiceUpgrade().heal(kube.cluster, fault)]
    assert old_cluster_deleted(None, fault).status == "pass"
    stale = FaultRecord(**{**fault.__dict__, "heal_actions": []})
    assert old_cluster_deleted(None, stale).status == "unknown"
    still = FaultRecord(**{**fault.__dict__, "heal_actions": [{"action": "upgrade_settled", "details": {
        "from_cluster": "other", "old_cluster_deleted": True}}]})
    assert old_cluster_deleted(None, still).status == "fail"


def test_locally_the_upgrade_scenario_is_skipped_by_capability():
    from serve_chaos.runtime.cluster import Capabilities

    assert Capabilities().upgrade_cluster is False


def test_readiness_says_why_the_operator_never_catches_up_with_a_refused_config(kube):
    kube.operator.dashboard(kube.serving()).reject = "Invalid Serve config: bad"
    rs = rayservice(kube)
    rs["spec"]["serveConfigV2"] = rs["spec"]["serveConfigV2"].replace("num_replicas: 6", "num_replicas: 7")
    rs["metadata"]["generation"] += 1
    kube.operator.settle()
    problem = kube.cluster.readiness_problem()
    assert "not reconciled the latest spec" in problem and "refused: 400 Bad Request Invalid Serve config: bad" in problem
