"""Self-tests of the k8s target's pure parts: Service rules and DNS, a container's root and
environment, volumes, restart back-off, node objects, the chart's objects, placement, and the
steady-state rule that a lost Ray pod must be back.  What these imitate runs for real in
``scenarios/`` with ``--target k8s``; the upstream file each behaviour comes from is cited in
the module under test."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import tests.synthetic as syn
from serve_chaos.harness.checks.steady import first_steady_state
from serve_chaos.harness.observe.history import FaultRecord
from serve_chaos.runtime.cluster import PodInfo
from serve_chaos.runtime.k8s import dns, kuberay, network, proxy
from serve_chaos.runtime.k8s.agent import envs, rootfs
from serve_chaos.runtime.k8s.agent.containers import ContainerRun, Terminated
from serve_chaos.runtime.k8s.agent.images import Image, ImageUnavailable, resolve
from serve_chaos.runtime.k8s.agent.node import node_object
from serve_chaos.runtime.k8s.agent.volumes import VolumeMaker, VolumeNotReady
from serve_chaos.runtime.k8s.build import Binaries
from serve_chaos.runtime.k8s.layout import K8sLayout, NodeSpec
from serve_chaos.runtime.k8s.target import CONTROL_PLANE_TAINT, ROLE_LABEL, node_specs
from serve_chaos.runtime.kuberay import manifests
from serve_chaos.runtime.kuberay.placement import placement_problem


def svc(name: str, ns: str, ip: str | None, ports: list[dict], publish: bool = False) -> dict:
    spec = {"clusterIP": ip or "None", "ports": ports}
    if publish:
        spec["publishNotReadyAddresses"] = True
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint_slice(name: str, ns: str, endpoints: list[tuple[str, bool]], ports: list[dict]) -> dict:
    return {"metadata": {"name": f"{name}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [a], "conditions": {"ready": r, "serving": r}} for a, r in endpoints]}


SERVE = svc("serve-svc", "ns", "10.96.0.20", [{"name": "serve", "port": 8000, "protocol": "TCP", "nodePort": 30800}])
SERVE_SLICE = endpoint_slice("serve-svc", "ns", [("198.18.0.40", True), ("198.18.0.41", False)],
                             [{"name": "serve", "port": 8000}])
HEAD = svc("head-svc", "ns", None, [{"name": "gcs", "port": 6379, "protocol": "TCP"}], publish=True)
HEAD_SLICE = endpoint_slice("head-svc", "ns", [("198.18.0.50", False)], [{"name": "gcs", "port": 6379}])


# ---------------------------------------------------------------------- Services, rules, DNS
def test_a_service_takes_only_ready_endpoints_and_dns_follows_a_headless_service():
    found = {s.name: s for s in proxy.services([SERVE, HEAD], [SERVE_SLICE, HEAD_SLICE])}
    assert found["serve-svc"].ports[0].endpoints == (("198.18.0.40", 8000),)
    assert found["serve-svc"].addresses() == ("10.96.0.20",)
    # KubeRay's head Service is headless with publishNotReadyAddresses (common/service.go).
    assert found["head-svc"].cluster_ip is None
    assert found["head-svc"].addresses() == ("198.18.0.50",)


def test_serving_endpoints_carry_traffic_only_when_none_is_ready():
    terminating = endpoint_slice("serve-svc", "ns", [("198.18.0.41", False)], [{"name": "serve", "port": 8000}])
    terminating["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    found = proxy.services([SERVE], [terminating])
    assert found[0].ports[0].endpoints == (("198.18.0.41", 8000),)


def test_rules_dnat_cluster_ip_and_node_port_and_replace_the_table_atomically():
    layout = K8sLayout(Path("/tmp/x"), "abcdef", "198.18.9.0/24")
    rules = proxy.render_rules("t", network.base_rules(layout), proxy.services([SERVE], [SERVE_SLICE]),
                               ["198.18.9.2"])
    assert rules.startswith("add table ip t\ndelete table ip t\n")
    assert "ip daddr 10.96.0.20 tcp dport 8000 jump svc_" in rules
    assert "ip daddr { 198.18.9.2 } tcp dport 30800 jump svc_" in rules
    assert "meta l4proto tcp dnat ip to 198.18.0.40:8000" in rules
    assert "198.18.0.41" not in rules
    if os.geteuid() == 0 and shutil.which("nft"):
        check = subprocess.run(["nft", "-c", "-f", "-"], input=rules, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_cluster_dns_answers_services_and_pods_and_nothing_else():
    records = [s.to_dict() for s in proxy.services([SERVE, HEAD], [SERVE_SLICE, HEAD_SLICE])]
    assert dns.lookup("serve-svc.ns.svc.cluster.local.", records) == ["10.96.0.20"]
    assert dns.lookup("head-svc.ns.svc.cluster.local", records) == ["198.18.0.50"]
    assert dns.lookup("198-18-0-7.ns.pod.cluster.local", records) == ["198.18.0.7"]
    assert dns.lookup("nope.ns.svc.cluster.local", records) is None
    assert dns.lookup("example.com", records) is None


def test_a_cached_answer_outlives_a_change_as_coredns_cache_does(monkeypatch):
    records = [{"name": "head-svc", "namespace": "ns", "addresses": ["198.18.0.50"]}]
    resolver = dns.ClusterResolver(lambda: records)
    clock = [100.0]
    monkeypatch.setattr(dns.time, "monotonic", lambda: clock[0])
    assert resolver._cached("head-svc.ns.svc.cluster.local.") == ["198.18.0.50"]
    records[0]["addresses"] = ["198.18.0.51"]
    clock[0] += dns.CACHE_S - 1
    assert resolver._cached("head-svc.ns.svc.cluster.local.") == ["198.18.0.50"]
    clock[0] += 2
    assert resolver._cached("head-svc.ns.svc.cluster.local.") == ["198.18.0.51"]


def test_service_variables_for_the_pods_namespace_and_the_api_server_always():
    records = [{"name": "kubernetes", "namespace": "default", "cluster_ip": "10.96.0.1",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
               {"name": "serve-chaos-redis", "namespace": "ns", "cluster_ip": "10.96.0.9",
                "ports": [{"name": "redis", "port": 6379, "protocol": "TCP"}]},
               {"name": "other", "namespace": "elsewhere", "cluster_ip": "10.96.0.8",
                "ports": [{"name": "", "port": 80, "protocol": "TCP"}]}]
    env = proxy.service_env(records, "ns", links=True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["SERVE_CHAOS_REDIS_PORT_6379_TCP_ADDR"] == "10.96.0.9"
    assert not any(k.startswith("OTHER_") for k in env)
    assert set(proxy.service_env(records, "ns", links=False)) == {k for k in env if k.startswith("KUBERNETES_")}


# ---------------------------------------------------------------------- a container's root and environment
def test_mount_paths_resolve_links_inside_the_container_root():
    # /var/run is a link to /run on Debian: a mount there must land in the container's /run,
    # never follow the link out to the host's.
    if os.path.islink("/var/run"):
        assert rootfs.in_root("/var/run/secrets/kubernetes.io/serviceaccount") == \
            "/run/secrets/kubernetes.io/serviceaccount"
    assert rootfs.in_root("/home/ray/../ray/serve-chaos") == "/home/ray/serve-chaos"


def test_the_setup_script_mounts_everything_below_the_new_root_then_execs():
    image = Image("x", links={"/usr/local/bin/ray": "/venv/bin/ray"}, scripts={"/usr/local/bin/python": "#!/bin/sh\n"},
                  dirs=("/home/ray",))
    script = rootfs.setup_script(Path("/s/c"), image, [rootfs.Mount("/dev/shm", "1024", kind="tmpfs"),
                                                       rootfs.Mount("/etc/hosts", "/s/hosts")], "pod-a", True)
    lines = script.splitlines()
    assert lines[1].startswith("mount -t tmpfs") and "lowerdir=/," in lines[3]
    assert "mount -t proc proc /s/c/root/proc" in script
    assert "mount -t cgroup -o memory serve-chaos-memory /s/c/root/sys/fs/cgroup/memory" in script
    assert "mount -t tmpfs -o size=1024 serve-chaos-tmpfs /s/c/root/dev/shm" in script
    assert "hostname pod-a" in script and lines[-1].startswith("exec chroot /s/c/root ")
    argv = rootfs.launch_argv("/run/netns/n", script, "/home/ray", ["ray", "start"])
    assert argv[argv.index("unshare"):argv.index("unshare") + 7] == [
        "unshare", "--mount", "--uts", "--cgroup", "--pid", "--fork", "--kill-child"]
    assert argv[-3:] == ["/home/ray", "ray", "start"]


class FakeNodeApi:
    """The reads a node makes, answered from dicts (as the API serialises objects)."""

    def __init__(self) -> None:
        self.configmaps = {("ns", "app"): {"data": {"a.py": "A = 1\n", "b.py": "B = 2\n"}},
                           ("ns", "kube-root-ca.crt"): {"data": {"ca.crt": "CA"}}}
        self.secrets = {("ns", "pw"): {"data": {"password": base64.b64encode(b"s3cret").decode()}}}
        self.claims = {("ns", "data"): {"spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}}
        self.volumes = {"pv-1": {"spec": {"hostPath": {"path": ""}}}}
        self.tokens: list[tuple] = []

    def read_configmap(self, ns, name):
        return self.configmaps.get((ns, name))

    def read_secret(self, ns, name):
        return self.secrets.get((ns, name))

    def read_pvc(self, ns, name):
        return self.claims.get((ns, name))

    def read_pv(self, name):
        return self.volumes.get(name)

    def token(self, ns, sa, pod, uid, audience, seconds):
        self.tokens.append((ns, sa, pod, uid, seconds))
        return "TOKEN"


def pod_with(volumes: list[dict], mounts: list[dict] | None = None, env: list[dict] | None = None) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"ray.io/group": "workers"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "default", "volumes": volumes,
                     "containers": [{"name": "c", "volumeMounts": mounts or [], "env": env or [],
                                     "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}


def test_volumes_are_made_as_the_kubelets_plugins_make_them(tmp_path):
    api = FakeNodeApi()
    api.volumes["pv-1"]["spec"]["hostPath"]["path"] = str(tmp_path / "pv")
    pod = pod_with([
        {"name": "code", "configMap": {"name": "app", "items": [{"key": "a.py", "path": "pkg/a.py"}]}},
        {"name": "pw", "secret": {"secretName": "pw"}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}},
                                                    {"configMap": {"name": "kube-root-ca.crt",
                                                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                                                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                                                        "fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    ], mounts=[{"name": "code", "mountPath": "/code"}, {"name": "shm", "mountPath": "/dev/shm"},
               {"name": "data", "mountPath": "/data"}, {"name": "code", "mountPath": "/etc/a.py", "subPath": "pkg/a.py"}])
    made = VolumeMaker(api, pod, tmp_path / "vols", "198.18.0.40", "198.18.0.3").make()
    assert (made.paths["code"][0] / "pkg" / "a.py").read_text() == "A = 1\n"
    assert not (made.paths["code"][0] / "b.py").exists()  # only the listed items
    assert (made.paths["pw"][0] / "password").read_bytes() == b"s3cret"
    token_dir = made.paths["token"][0]
    assert [(token_dir / f).read_text() for f in ("token", "ca.crt", "namespace")] == ["TOKEN", "CA", "ns"]
    assert api.tokens == [("ns", "default", "p", "u-1", 3607)]
    assert made.paths["shm"][1] == 2 * 1024 ** 3
    mounts = {m.path: m for m in made.mounts(pod["spec"]["containers"][0])}
    assert mounts["/dev/shm"].kind == "tmpfs" and mounts["/dev/shm"].source == str(2 * 1024 ** 3)
    assert mounts["/data"].source == str(tmp_path / "pv") and Path(mounts["/data"].source).is_dir()
    assert mounts["/etc/a.py"].source.endswith("pkg/a.py")


def test_an_unbound_claim_keeps_the_pod_waiting(tmp_path):
    api = FakeNodeApi()
    api.claims[("ns", "data")] = {"spec": {}, "status": {"phase": "Pending"}}
    pod = pod_with([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    with pytest.raises(VolumeNotReady, match="not bound yet"):
        VolumeMaker(api, pod, tmp_path, "198.18.0.40", "198.18.0.3").make()


def test_environment_expands_references_and_reads_fields_secrets_and_limits():
    api = FakeNodeApi()
    env = [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "GROUP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['ray.io/group']"}}},
           {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}},
           {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
           {"name": "ADDR", "value": "$(IP):6379 $$(IP) $(NOPE)"}]
    pod = pod_with([], env=env)
    pod["status"] = {"podIP": "198.18.0.40"}
    got = envs.container_env(api, pod, pod["spec"]["containers"][0], {"PATH": "/bin"}, 2, 8 << 30)
    assert got["IP"] == "198.18.0.40" and got["GROUP"] == "workers" and got["PW"] == "s3cret"
    assert got["MEM"] == "2048" and got["ADDR"] == "198.18.0.40:6379 $(IP) $(NOPE)" and got["PATH"] == "/bin"
    assert envs.command_line({"command": ["sh", "-c"], "args": ["echo $(IP)"]}, [], got) == \
        ["sh", "-c", "echo 198.18.0.40"]


def test_images_the_node_cannot_run_fail_as_a_pull_does():
    with pytest.raises(ImageUnavailable, match="no container runtime"):
        resolve("my-registry/my-app:1", {})
    with pytest.raises(ImageUnavailable, match="no KubeRay operator v9.9.9"):
        resolve("quay.io/kuberay/operator:v9.9.9", {"v1.6.2": "/bin/x"})
    assert resolve("quay.io/kuberay/operator:v1.6.2", {"v1.6.2": "/bin/x"}).links == {"/manager": "/bin/x"}


# ---------------------------------------------------------------------- restarts, nodes, the chart
def ended(run: ContainerRun, started: float, finished: float, code: int = 1) -> None:
    run.terminated = Terminated(code, "Error", started, finished, "id")


def test_restarts_back_off_as_the_kubelet_does():
    run = ContainerRun({"name": "c"}, init=False)
    ended(run, 0.0, 5.0)
    run.schedule_restart(5.0)
    assert run.next_start == 5.0 and run.restarts == 1  # the first restart is at once
    ended(run, 5.0, 7.0)
    run.schedule_restart(7.0)
    assert run.next_start == 15.0 and run.waiting[0] == "CrashLoopBackOff"  # 10 s after the last start
    ended(run, 15.0, 16.0)
    run.schedule_restart(16.0)
    assert run.next_start == 35.0  # 20 s
    ended(run, 35.0, 35.0 + 700.0)  # ran 10 minutes: forgotten
    run.schedule_restart(735.0)
    assert run.next_start == 735.0
    assert run.should_restart("OnFailure") and not run.should_restart("Never")


def test_a_node_never_gives_itself_the_control_plane_role():
    spec = node_specs(2)[0]
    body = node_object(spec, "198.18.0.2", "v1.35.4")
    assert "node-role.kubernetes.io/control-plane" not in body["metadata"]["labels"]  # NodeRestriction
    assert body["spec"]["taints"] == [CONTROL_PLANE_TAINT]
    assert body["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250


def test_nodes_as_kind_config_makes_them_and_without_labels():
    names = [(n.name, n.labels.get(ROLE_LABEL)) for n in node_specs(2)]
    assert names == [("serve-chaos-control-plane", None), ("serve-chaos-worker", "head"),
                     ("serve-chaos-worker2", "worker"), ("serve-chaos-worker3", "worker"),
                     ("serve-chaos-worker4", "worker")]
    assert not any(ROLE_LABEL in n.labels for n in node_specs(2, labelled=False))


def test_the_chart_objects_use_the_modules_rules_and_the_charts_arguments(tmp_path):
    rbac = tmp_path / "config" / "rbac"
    rbac.mkdir(parents=True)
    (rbac / "role.yaml").write_text("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
                                    "metadata: {name: manager-role}\nrules: [{apiGroups: [ray.io], "
                                    "resources: [rayclusters], verbs: [get]}]\n")
    (rbac / "leader_election_role.yaml").write_text("kind: Role\nrules: [{apiGroups: [''], resources: "
                                                    "[configmaps], verbs: [get]}]\n")
    binaries = Binaries(dir=tmp_path, kubernetes_version="v1.35.4", etcd_version="v3.6.5", kuberay_version="v1.6.2",
                        kuberay_operator=tmp_path / "op", kuberay_source=tmp_path)
    objects = {o["kind"]: o for o in kuberay.chart_objects(binaries, {ROLE_LABEL: "head"})}
    assert objects["ClusterRole"]["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayclusters"],
                                                "verbs": ["get"]}]
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "quay.io/kuberay/operator:v1.6.2" and container["command"] == ["/manager"]
    assert "--enable-leader-election=true" in container["args"]
    assert container["args"][-1].startswith("--feature-gates=RayClusterStatusConditions=true")
    assert pod["nodeSelector"] == {ROLE_LABEL: "head"} and pod["serviceAccountName"] == "kuberay-operator"


# ---------------------------------------------------------------------- placement on any cluster
def pod(name: str, role: str, node: str) -> PodInfo:
    return PodInfo(name=name, role=role, node=node, ip="", phase="Running", ready=True, uid=name, restarts=0)


def test_unlabelled_nodes_are_judged_one_ray_pod_each_and_redis_away_from_workers():
    roles = {"a": "", "b": "", "c": ""}
    ok = [pod("h", "head", "a"), pod("r", "redis", "a"), pod("w1", "worker", "b"), pod("w2", "worker", "c")]
    assert placement_problem(ok, roles, by_role=False) is None
    assert "not on a head node" in placement_problem(ok, roles, by_role=True)
    stacked = [pod("h", "head", "a"), pod("w1", "worker", "a"), pod("w2", "worker", "c")]
    assert "share node a" in placement_problem(stacked, roles, by_role=False)
    redis_with_worker = [pod("h", "head", "a"), pod("r", "redis", "b"), pod("w1", "worker", "b")]
    assert "Redis pod r shares node b" in placement_problem(redis_with_worker, roles, by_role=False)


def test_without_role_labels_no_selector_is_rendered_and_redis_follows_the_head():
    config = manifests.KubeRayConfig(node_selectors=False)
    objects = {o["kind"]: o for o in manifests.render(config, "pw")}
    cluster = objects["RayService"]["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        assert "nodeSelector" not in group["template"]["spec"]
    redis = objects["Deployment"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in redis and redis["affinity"] == manifests.with_the_head(config)


def test_anti_affinity_scopes_to_one_cluster_spec_without_match_label_keys():
    before = manifests.rayservice(manifests.KubeRayConfig())
    after = manifests.rayservice(manifests.KubeRayConfig(cluster_change='{"env": {"X": "1"}}'))

    def term_and_label(rs: dict) -> tuple[dict, str]:
        tmpl = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]
        term = tmpl["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        return term, tmpl["metadata"]["labels"][manifests.SPEC_LABEL]

    (t1, d1), (t2, d2) = term_and_label(before), term_and_label(after)
    assert "matchLabelKeys" not in t1 and d1 != d2
    assert t1["labelSelector"]["matchLabels"] == {"ray.io/is-ray-node": "yes", manifests.SPEC_LABEL: d1}
    head = before["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    assert head["metadata"]["labels"][manifests.SPEC_LABEL] == d1 and head["spec"]["affinity"] == \
        before["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["affinity"]


# ---------------------------------------------------------------------- steady state needs the lost pod back
def test_steady_state_waits_for_a_lost_pod_to_run_again():
    fault_t = 20.0
    survivors = [r for r in syn.BASE_REPLICAS if r["pod"] != "worker-2"]
    moved = survivors + [dict(syn.replica(107, "head"), pod="worker-1"), dict(syn.replica(108, "head"))]
    two_pods = [p for p in syn.pods() if p["name"] != "worker-2"]

    def snap(t: float):
        if t < fault_t:
            return syn.snapshot(t, syn.BASE_REPLICAS + syn.BASE_SYSTEM)
        system = [a for a in syn.BASE_SYSTEM if a.get("pod") != "worker-2"]
        return syn.snapshot(t, moved + system, pod_list=two_pods if t < 45 else None)

    snaps = [snap(t + 0.5) for t in range(70)]
    reqs = syn.requests(0, 70, 10, pid_of=lambda i, t: 101)
    hist = syn.history(reqs, snaps, [FaultRecord("node_loss", fault_t, fault_t + 0.1, victims=[])])
    t, reason = first_steady_state(hist, fault_t, hold_s=5.0, victims=[])
    # The replicas ran elsewhere from t=20, but the pod was back only at t=45.
    assert t == pytest.approx(45.5), reason
    early, why = first_steady_state(syn.history(reqs, snaps[:44], hist.faults), fault_t, hold_s=5.0, victims=[])
    assert early is None and "2/3 Ray pods Running" in why
