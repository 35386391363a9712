"""Gray faults on the kube target (issue 17): Chaos Mesh v2.8.3 objects aimed at exactly one pod,
leased, lifted with what Chaos Mesh recorded; and a process slowed by a bounded loop in its pod."""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path

import pytest

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.kuberay import chaosmesh, schema
from serve_chaos.runtime.kuberay.grayfaults import loop_outcome, slow_loop, stop_slow_loop
from serve_chaos.runtime.kuberay.lease import KubeLease
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig
from tests.kube_world import FakeWs, Kube

NS = "serve-chaos"
CHAOS_CRDS = Path(__file__).resolve().parents[2] / "shared" / "chaos-mesh"


def chaos_crd_dir() -> Path:
    """The Chaos Mesh v2.8.3 CRDs: a missing copy fails the test, it never skips it."""
    for name in ("chaos-mesh.org_stresschaos.yaml", "chaos-mesh.org_networkchaos.yaml"):
        assert (CHAOS_CRDS / name).exists(), f"Chaos Mesh v2.8.3 CRD {name} not found in {CHAOS_CRDS}"
    return CHAOS_CRDS


@pytest.fixture
def kube():
    k = Kube()
    k.chaos.install()
    k.bring_up()
    yield k
    k.close()


def worker(kube: Kube):
    return next(p for p in kube.cluster.pods() if p.role == "worker")


def chaos_objects(kube: Kube) -> list[dict]:
    return kube.store.list("StressChaos", NS) + kube.store.list("NetworkChaos", NS)


def test_cpu_starvation_is_a_stress_chaos_on_that_pods_ray_container(kube):
    victim = worker(kube)
    record = kube.cluster.starve_cpu(victim.name, 0.05, 30)
    (obj,) = chaos_objects(kube)
    assert obj["kind"] == "StressChaos" and obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "serve-chaos"
    spec = obj["spec"]
    assert spec["selector"] == {"namespaces": [NS], "pods": {NS: [victim.name]}} and spec["mode"] == "all"
    assert spec["containerNames"] == ["ray-worker"] and spec["duration"] == "30s"
    # Contention under the container's 1-core limit: 19 busy workers leave a busy process ~1/20.
    assert spec["stressors"] == {"cpu": {"workers": 19, "load": 100}}
    assert record.details["workers"] == 19 and record.details["limit_cores"] == 1.0
    assert kube.cluster.lease.fault("starve_cpu", victim.name)["data"]["objects"] == [
        {"kind": "StressChaos", "name": obj["metadata"]["name"]}]
    kube.chaos.step()
    lifted = kube.cluster.lift("starve_cpu", victim.name)
    assert lifted.details["injected"] is True
    (rec,) = lifted.details["records"]
    assert rec["target"] == f"{NS}/{victim.name}/ray-worker" and rec["phase"] == "Injected"
    kube.chaos.step()  # Chaos Mesh recovers the pod, then lets the object go
    assert chaos_objects(kube) == [] and kube.cluster.lease.faults() == []


def test_memory_pressure_grows_at_the_rate_asked(kube):
    victim = worker(kube)
    kube.cluster.press_memory(victim.name, 200 * 2**20, 10 * 2**20, 60)
    (obj,) = chaos_objects(kube)
    assert obj["spec"]["stressors"] == {"memory": {"workers": 1, "size": f"{200 * 2**20}B", "options": ["--time 20s"]}}


def test_packet_loss_is_the_pods_egress_and_its_peers_egress_to_it(kube):
    victim = worker(kube)
    peers = sorted(p.name for p in kube.cluster.pods() if p.name != victim.name)
    record = kube.cluster.lose_packets(victim.name, 20, 30)
    # Per-pod load through a port-forward enters on the pod's loopback: the verdict says so (10.9).
    assert "never crosses the interface this fault shapes" in record.details["per_pod_load"]
    by_name = {o["metadata"]["name"]: o for o in chaos_objects(kube)}
    prefix = chaosmesh.object_name("lose_packets", victim.name)
    out = next(o for n, o in by_name.items() if n.startswith(prefix + "-out-"))["spec"]
    into = next(o for n, o in by_name.items() if n.startswith(prefix + "-in-"))["spec"]
    assert out["selector"]["pods"] == {NS: [victim.name]} and out["direction"] == "to" and "target" not in out
    assert out["loss"] == {"loss": "20", "correlation": "0"} and out["action"] == "loss"
    assert into["selector"]["pods"] == {NS: peers} and into["target"]["selector"]["pods"] == {NS: [victim.name]}
    kube.chaos.step()
    lifted = kube.cluster.lift("lose_packets", victim.name)
    assert lifted.details["injected"] and {r["object"] for r in lifted.details["records"]} == set(by_name)


def test_latency_is_a_network_delay_with_jitter(kube):
    victim = worker(kube)
    kube.cluster.delay_packets(victim.name, 200, 50, 30)
    (obj,) = chaos_objects(kube)
    assert obj["spec"]["action"] == "delay" and obj["spec"]["delay"] == {"latency": "200ms", "jitter": "50ms",
                                                                         "correlation": "0"}


def test_lift_says_when_chaos_mesh_did_not_inject(kube):
    victim = worker(kube)
    kube.chaos.failing[victim.name] = "failed to apply tc: Specified qdisc kind is unknown"
    kube.cluster.delay_packets(victim.name, 200, 50, 30)
    kube.chaos.step()
    lifted = kube.cluster.lift("delay_packets", victim.name)
    assert lifted.details["injected"] is False
    assert lifted.details["records"][0]["failures"] == ["failed to apply tc: Specified qdisc kind is unknown"]


def test_one_fault_of_a_kind_per_pod_and_lift_only_what_is_in_effect(kube):
    victim = worker(kube)
    kube.cluster.starve_cpu(victim.name, 0.05, 30)
    with pytest.raises(ServeChaosError, match="in effect on .* already"):
        kube.cluster.starve_cpu(victim.name, 0.1, 30)
    with pytest.raises(ServeChaosError, match="no delay_packets"):
        kube.cluster.lift("delay_packets", victim.name)


def test_the_next_command_deletes_a_dead_harness_chaos(kube):
    victim = worker(kube)
    kube.cluster.lose_packets(victim.name, 50, 300)
    faults = kube.cluster.lease.faults()
    for fault in faults:
        fault["pid"] = 999999
    kube.cluster.lease._update(lambda record: (None, faults))
    records = kube.cluster.reclaim()
    assert [r.action for r in records] == ["reclaim_lose_packets"]
    kube.chaos.step()
    assert chaos_objects(kube) == [] and kube.cluster.lease.faults() == []


def test_heal_deletes_our_chaos_and_reports_it(kube):
    victim = worker(kube)
    kube.cluster.starve_cpu(victim.name, 0.05, 30)
    kube.chaos.step()
    (record,) = kube.cluster.heal()
    assert record.action == "heal_starve_cpu" and record.details["injected"]


def test_without_chaos_mesh_the_gray_faults_are_skipped_with_the_reason():
    k = Kube()
    try:
        k.bring_up()
        caps = k.cluster.capabilities
        assert not caps.starve_cpu and not caps.lose_packets and caps.slow_process
        assert "Chaos Mesh 2.8.3 is not installed" in caps.why_not("starve_cpu")
        with pytest.raises(ServeChaosError, match="kind up` installs it"):
            k.cluster.starve_cpu(worker(k).name, 0.05, 30)
    finally:
        k.close()


@pytest.mark.parametrize("build", [
    lambda c: [chaosmesh.stress_cpu(c, "p", "ray-worker", 0.05, 1.0, 30)],
    lambda c: [chaosmesh.stress_memory(c, "p", "ray-worker", 2**30, 2**25, 60)],
    lambda c: chaosmesh.network_loss(c, "p", ["a", "b"], 50, 30),
    lambda c: [chaosmesh.network_delay(c, "p", 200, 50, 30)],
])
def test_every_chaos_object_is_valid_for_the_v2_8_3_crds(build):
    for obj in build(KubeRayConfig()):
        assert schema.errors(obj, chaos_crd_dir()) == [], obj["kind"]


def test_the_chaos_schema_check_is_strict():
    obj = chaosmesh.network_delay(KubeRayConfig(), "p", 200, 50, 30)
    obj["spec"]["delay"]["latencyy"] = "1ms"
    assert any("latencyy" in e for e in schema.errors(obj, chaos_crd_dir()))


def test_cpu_share_maps_to_workers_under_the_limit():
    assert chaosmesh.cpu_workers(0.05, 1.0) == 19 and chaosmesh.cpu_workers(0.5, 1.0) == 1
    assert chaosmesh.cpu_workers(0.05, 2.0) == 39 and chaosmesh.cpu_cores("500m") == 0.5
    with pytest.raises(ServeChaosError):
        chaosmesh.cpu_workers(1.5, 1.0)


# ---------------------------------------------------------------------- slow_process
def test_a_slowed_process_is_one_bounded_loop_by_exec_leased_and_lifted(kube, monkeypatch):
    victim = worker(kube)
    seen = []

    def fake_stream(fn, name, namespace, **kwargs):
        seen.append((name, kwargs["command"], fn.__self__.api_client))
        if "kill -STOP" in kwargs["command"][-1]:
            return FakeWs(stdout="cycles=120 stopped_us=10812345 ended=lifted")
        return FakeWs()

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    record = kube.cluster.slow_process(victim.name, 101, 90, 100, 30)
    assert record.details == {"pid": 101, "stopped_ms": 90, "period_ms": 100, "duration_s": 30}
    loop = seen[0][1][-1]
    assert seen[0][0] == victim.name and "kill -STOP 101" in loop and "sleep 0.090" in loop and "sleep 0.010" in loop
    assert "SECONDS + 30" in loop and seen[0][2] is not kube.cluster.api.rest
    assert kube.cluster.lease.fault("slow_process", victim.name)["data"]["pid"] == 101
    lifted = kube.cluster.lift("slow_process", victim.name)
    assert "kill -TERM" in seen[-1][1][-1] and "kill -CONT 101" in seen[-1][1][-1]
    assert lifted.details["cycles"] == 120 and lifted.details["ended"] == "lifted"
    assert lifted.details["stopped_s"] == 10.81  # what the fault's took_effect reads
    assert kube.cluster.lease.faults() == []


def test_slowing_a_process_that_is_not_there_is_one_line(kube, monkeypatch):
    monkeypatch.setattr("kubernetes.stream.stream", lambda *a, **k: FakeWs(stdout="no process 4242\n", returncode=3))
    with pytest.raises(ServeChaosError, match="slowing PID 4242 in pod .* failed: no process 4242"):
        kube.cluster.slow_process(worker(kube).name, 4242, 90, 100, 30)
    assert kube.cluster.lease.faults() == []


def proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_the_slow_loop_really_stops_and_continues_and_leaves_the_process_running():
    """The loop's script run by bash here, on a real process: what the exec runs in the pod."""
    victim = subprocess.Popen(["sleep", "60"])
    try:
        loop = subprocess.Popen(slow_loop(victim.pid, 90, 100, 20), stdout=subprocess.PIPE, text=True)
        states = []
        deadline = time.time() + 1.5
        while time.time() < deadline:
            states.append(proc_state(victim.pid))
            time.sleep(0.013)
        stopped = states.count("T") / len(states)
        assert 0.6 < stopped < 1.0, f"stopped {stopped:.0%} of the samples"
        subprocess.run(stop_slow_loop(victim.pid), check=True, timeout=10)
        out, _ = loop.communicate(timeout=10)
        assert proc_state(victim.pid) != "T"
        outcome = loop_outcome(out)
        assert outcome["ended"] == "lifted" and math.isclose(outcome["cycles"], 15, abs_tol=8)
        # Measured, not assumed: about 90 ms of every cycle (the replica_slow check reads it).
        assert math.isclose(outcome["stopped_s"], outcome["cycles"] * 0.09, abs_tol=0.3), outcome
        assert not os.path.exists(f"/tmp/serve-chaos-slow-{victim.pid}.pid")
    finally:
        os.kill(victim.pid, 18)
        victim.kill()
        victim.wait()


def test_a_dead_harness_slow_loop_is_ended_by_the_next_command(kube, monkeypatch):
    commands = []
    monkeypatch.setattr("kubernetes.stream.stream",
                        lambda fn, name, ns, **kw: commands.append(kw["command"][-1]) or FakeWs())
    victim = worker(kube)
    dead = KubeLease(kube.cluster.api, kube.cluster.ray, alive=lambda pid: False)
    dead.add_fault("slow_process", victim.name, pid=77, stopped_ms=90, period_ms=100)
    faults = dead.faults()
    faults[0]["pid"] = 999999
    dead._update(lambda record: (None, faults))
    (record,) = kube.cluster.reclaim()
    assert record.action == "reclaim_slow_process" and "kill -CONT 77" in commands[-1]


# ---------------------------------------------------------------------- kind up / down / manifests --faults
def test_kind_manifests_faults_prints_every_gray_fault_object_valid_for_the_crds():
    import subprocess as sp
    import sys

    import yaml

    proc = sp.run([sys.executable, "-m", "serve_chaos.harness.cli", "kind", "manifests", "--faults"], capture_output=True,
                  text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = sorted({(d["kind"], d["spec"].get("action") or next(iter(d["spec"]["stressors"]))) for d in docs})
    assert kinds == [("NetworkChaos", "delay"), ("NetworkChaos", "loss"), ("StressChaos", "cpu"),
                     ("StressChaos", "memory")]
    for doc in docs:
        assert schema.errors(doc, chaos_crd_dir()) == [], doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "serve-chaos"
        assert all(p.startswith("PLACEHOLDER") for p in doc["spec"]["selector"]["pods"]["serve-chaos"])
    assert "PLACEHOLDER stand for the pods KubeRay names" in proc.stdout


def test_chaos_mesh_is_installed_for_kind_from_its_chart(monkeypatch):
    from serve_chaos.runtime.kuberay import kind

    commands = []
    monkeypatch.setattr(kind, "run", lambda cmd, timeout_s=600.0, check=True: commands.append(cmd))
    kind.install_chaos_mesh("kind-sc", {"serve-chaos/role": "head"})
    helm = next(c for c in commands if "upgrade" in c)
    assert helm[helm.index("upgrade") + 2:helm.index("upgrade") + 3] == ["chaos-mesh"]  # release
    assert "chaos-mesh/chaos-mesh" in helm and helm[helm.index("--version") + 1] == "2.8.3"
    assert helm[helm.index("--namespace") + 1] == "chaos-mesh"
    sets = [helm[i + 1] for i, a in enumerate(helm) if a in ("--set", "--set-string")]
    assert "chaosDaemon.runtime=containerd" in sets
    assert "chaosDaemon.socketPath=/run/containerd/containerd.sock" in sets
    assert "controllerManager.nodeSelector.serve-chaos/role=head" in sets


def test_kind_down_removes_only_what_serve_chaos_installed(monkeypatch):
    from kubernetes import client

    from serve_chaos.runtime.kuberay import kind
    from tests.fake_apiserver import FakeApiClient, Store

    store = Store()
    core = client.CoreV1Api(FakeApiClient(store))
    assert kind.installed_releases(core) == []
    kind.record_installed(core, "chaos-mesh")
    kind.record_installed(core, "kuberay-operator")
    assert kind.installed_releases(core) == ["chaos-mesh", "kuberay-operator"]
    store.get("ConfigMap", "kube-system", kind.INSTALLED_MARKER)["metadata"]["labels"] = {}  # not ours
    assert kind.installed_releases(core) == []
    commands = []
    monkeypatch.setattr(kind, "run", lambda cmd, timeout_s=600.0, check=True: commands.append(cmd))
    kind.uninstall("kind-sc", "chaos-mesh")
    assert commands[-1][:4] == ["helm", "uninstall", "chaos-mesh", "--namespace"] and "chaos-mesh" in commands[-1]


def test_a_second_injection_on_the_same_pod_makes_new_objects(kube):
    # An object of the first injection may still be finalizing or have run out its duration:
    # applying onto its name would patch an object Chaos Mesh no longer acts on.
    victim = worker(kube)
    first = kube.cluster.starve_cpu(victim.name, 0.05, 30).details["objects"]
    kube.cluster.lift("starve_cpu", victim.name)
    second = kube.cluster.starve_cpu(victim.name, 0.05, 30).details["objects"]
    assert set(first).isdisjoint(second)
    assert [o["metadata"]["name"] for o in chaos_objects(kube)] == second


def test_installed_means_the_workloads_run_not_that_crds_remain():
    # Helm never deletes CRDs: after `kind down` on a reused cluster they stay, and judging by them
    # made the next `kind up` skip installing KubeRay and Chaos Mesh (issue 23, 10.3).
    from serve_chaos.runtime.kuberay import kind
    from tests.fake_apiserver import FakeApiClient, Store

    store = Store()
    api_client = FakeApiClient(store)
    for crd in ("rayservices.ray.io", *chaosmesh.CRDS):
        store.put({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": crd}})
    assert not kind.kuberay_installed(api_client) and not kind.chaos_mesh_installed(api_client)

    spec = {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}

    def deployment(name, ns, labels, available):
        store.put({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns,
                                                                            "labels": labels},
                   "spec": spec, "status": {"availableReplicas": available}})

    deployment("kuberay-operator", "kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"}, 0)
    assert not kind.kuberay_installed(api_client)
    deployment("kuberay-operator", "kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"}, 1)
    assert kind.kuberay_installed(api_client)
    deployment("chaos-controller-manager", "chaos-mesh", {"app.kubernetes.io/component": "controller-manager"}, 1)
    assert not kind.chaos_mesh_installed(api_client)  # no daemon yet
    store.put({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "chaos-daemon", "namespace": "chaos-mesh",
                            "labels": {"app.kubernetes.io/component": "chaos-daemon"}},
               "spec": spec, "status": {"numberReady": 4, "desiredNumberScheduled": 4, "currentNumberScheduled": 4,
                                        "numberMisscheduled": 0}})
    assert kind.chaos_mesh_installed(api_client)


def test_down_lets_chaos_mesh_finalize_our_objects_before_the_namespace_goes(kube):
    # A chaos object left behind (its lift failed) keeps Chaos Mesh's finalizer: deleting the
    # namespace and then Chaos Mesh (`kind down`) left the namespace Terminating for good (10.8).
    victim = worker(kube)
    kube.cluster.starve_cpu(victim.name, 0.05, 30)
    kube.chaos.step()  # Chaos Mesh took it: its finalizer is on
    kube.cluster.lease.drop_faults()  # as if its lift had failed: heal does not know it
    assert chaos_objects(kube)[0]["metadata"].get("finalizers")
    with kube.operator.running():
        kube.cluster.down(timeout_s=20)
    kube.operator.others.remove(kube.chaos.step)  # `kind down` uninstalls Chaos Mesh next
    assert chaos_objects(kube) == []
    assert kube.store.get("Namespace", "", NS) is None


def test_kind_down_refuses_while_a_live_run_holds_the_lock(kube, monkeypatch):
    # `kind down` on a cluster serve-chaos created deleted it under a running session (10.7).
    from serve_chaos.harness.cli import kind as kind_cli
    from serve_chaos.runtime.kuberay import kind
    from serve_chaos.runtime.kuberay.lease import KubeLease

    other = KubeLease(kube.cluster.api, kube.cluster.ray, host="ci-runner-7", alive=lambda pid: True)
    other.take("pytest scenarios/ --target kind")
    deleted = []
    monkeypatch.setattr(kind, "require", lambda tool: tool)
    monkeypatch.setattr(kind, "clusters", lambda: ["serve-chaos"])
    monkeypatch.setattr(kind, "created_by_us", lambda core: True)
    monkeypatch.setattr(kind, "delete", lambda name: deleted.append(name))
    monkeypatch.setattr("kubernetes.config.new_client_from_config", lambda context=None: None)
    monkeypatch.setattr("serve_chaos.runtime.kuberay.cluster.KubeRayCluster", lambda target: kube.cluster)
    with pytest.raises(ServeChaosError, match="in use by PID .* on ci-runner-7"):
        kind_cli.kind_down(name="serve-chaos", namespace=NS, force=False)
    assert deleted == []
    kind_cli.kind_down(name="serve-chaos", namespace=NS, force=True)
    assert deleted == ["serve-chaos"]
    other._stop.set()
