"""Record what the real control plane and the real KubeRay operator do, for the operator model's contract test.

The model the unit tests use (``tests/kuberay_fake.py``, ``tests/fake_kubernetes.py``) claims
behaviours of KubeRay and of Kubernetes' controllers; ``tests/test_kuberay_contract.py`` holds
each claim against what this tool recorded from a real run, as ``tools/record_ray_api.py`` does
for Ray's APIs.  With the k8s target's cluster up (``serve-chaos k8s up``), run::

    .venv/bin/python tools/record_kube_contract.py

It drives the RayService through what the scenarios do -- a worker pod deleted, a head pod
deleted, a worker node lost (and its Node deleted, as the guide does), a RayService upgrade --
while sampling the API objects every 0.5 s, and writes ``tests/fixtures/kuberay-<version>/``:
``contract.json`` (the facts the contract test reads, each derived from the trace here) and
``objects.json`` (one of each kind of object as the API served it).  It leaves the cluster
healed and serving.  Takes about 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve_chaos.runtime.k8s import target as k8s_target  # noqa: E402
from serve_chaos.runtime.k8s.cluster import K8sCluster  # noqa: E402
from serve_chaos.runtime.kuberay.cluster import KubeTargetConfig  # noqa: E402
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig  # noqa: E402

KINDS = ("pods", "rayclusters", "rayservices", "services", "endpointslices", "jobs", "nodes")


class Sampler(threading.Thread):
    """Every ``period_s`` the objects of our namespace (and the nodes), as the API serves them."""

    def __init__(self, cluster: K8sCluster, period_s: float = 0.5) -> None:
        super().__init__(daemon=True, name="sampler")
        self.cluster = cluster
        self.period_s = period_s
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def snapshot(self) -> dict[str, Any]:
        from kubernetes import client as k8s

        ns = self.cluster.ns
        core = k8s.CoreV1Api(self.cluster.api.new_client())
        custom = k8s.CustomObjectsApi(core.api_client)
        batch = k8s.BatchV1Api(core.api_client)
        disc = k8s.DiscoveryV1Api(core.api_client)

        def load(resp: Any) -> list[dict[str, Any]]:
            return json.loads(resp.data).get("items", [])

        try:
            return {
                "t": time.time(),
                "pods": load(core.list_namespaced_pod(ns, _preload_content=False)),
                "services": load(core.list_namespaced_service(ns, _preload_content=False)),
                "endpointslices": load(disc.list_namespaced_endpoint_slice(ns, _preload_content=False)),
                "jobs": load(batch.list_namespaced_job(ns, _preload_content=False)),
                "nodes": load(core.list_node(_preload_content=False)),
                "rayclusters": custom.list_namespaced_custom_object("ray.io", "v1", ns, "rayclusters")["items"],
                "rayservices": custom.list_namespaced_custom_object("ray.io", "v1", ns, "rayservices")["items"],
                "events": load(core.list_namespaced_event(ns, _preload_content=False)),
            }
        finally:
            core.api_client.close()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append(self.snapshot())
            except Exception as err:  # noqa: BLE001 - an API hiccup loses one sample, not the recording
                print(f"sample failed: {type(err).__name__}: {err}", file=sys.stderr)
            self.stop.wait(self.period_s)


def names(sample: dict[str, Any], kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in sample[kind]}


def first(samples: list[dict[str, Any]], t0: float, cond) -> float | None:
    """Seconds after ``t0`` of the first sample at or after it where ``cond(sample)`` holds."""
    for s in samples:
        if s["t"] >= t0 and cond(s):
            return round(s["t"] - t0, 1)
    return None


def pod(sample: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in sample["pods"] if p["metadata"]["name"] == name), None)


def role_pods(sample: dict[str, Any], role: str, cluster: str | None = None) -> list[dict[str, Any]]:
    return [p for p in sample["pods"] if p["metadata"]["labels"].get("ray.io/node-type") == role
            and (cluster is None or p["metadata"]["labels"].get("ray.io/cluster") == cluster)]


def wait_settled(cluster: K8sCluster, timeout_s: float = 900) -> None:
    cluster.wait_ready(timeout_s)


def record_pod_delete(cluster: K8sCluster, sampler: Sampler, role: str) -> dict[str, Any]:
    """A pod of ``role`` deleted gracefully: when it left the API, when its replacement was created
    (before or after), and whether the Terminating pod still counted."""
    victim = next(p for p in cluster.pods() if p.role == role)
    t0 = time.time()
    cluster.kill_pod(victim.name, graceful=True)
    wait_settled(cluster)
    time.sleep(2)
    samples = sampler.samples

    def others(s: dict[str, Any]) -> list[dict[str, Any]]:
        return [p for p in role_pods(s, role) if p["metadata"]["uid"] != victim.uid
                and p["metadata"]["name"] != victim.name]

    gone = first(samples, t0, lambda s: pod(s, victim.name) is None)
    before = [s for s in samples if s["t"] < t0][-1]
    known = {p["metadata"]["uid"] for p in role_pods(before, role)}
    new = first(samples, t0, lambda s: any(p["metadata"]["uid"] not in known for p in others(s)))
    terminating = [pod(s, victim.name) for s in samples if s["t"] >= t0 and pod(s, victim.name) is not None]
    return {"victim_grace_s": (terminating[-1]["metadata"].get("deletionGracePeriodSeconds") if terminating else None),
            "old_pod_gone_s": gone, "replacement_seen_s": new,
            # KubeRay counts a Terminating pod (reconcilePods): its replacement comes once it is gone.
            "replacement_before_old_gone": new is not None and gone is not None and new < gone}


def record_node_loss(cluster: K8sCluster, sampler: Sampler) -> dict[str, Any]:
    """A worker node lost (its agent and pods killed), its Node deleted 10 s later, as the scenarios do."""
    victim = next(p for p in cluster.pods() if p.role == "worker")
    node = victim.node
    t0 = time.time()
    cluster.kill_node(node, replacement_delay_s=10.0)
    deadline = time.time() + 300
    while time.time() < deadline and any(p["metadata"]["name"] == victim.name for p in sampler.samples[-1]["pods"]):
        time.sleep(1)
    t_gone = time.time()
    cluster.heal()
    wait_settled(cluster)
    samples = sampler.samples
    node_deleted = first(samples, t0, lambda s: node not in names(s, "nodes"))
    failed_before_gone = any((pod(s, victim.name) or {}).get("status", {}).get("phase") == "Failed"
                             for s in samples if s["t"] >= t0)
    in_slices_after_node_deleted = [
        [e for sl in s["endpointslices"] for e in sl.get("endpoints") or [] if e.get("nodeName") == node]
        for s in samples if node_deleted is not None and s["t"] >= t0 + node_deleted]
    slice_drop = first(samples, t0 + (node_deleted or 0), lambda s: not any(
        e.get("nodeName") == node for sl in s["endpointslices"] for e in sl.get("endpoints") or []))
    return {"node_deleted_s": node_deleted,
            "pod_gone_s": first(samples, t0, lambda s: pod(s, victim.name) is None),
            "pod_gone_after_node_deleted_s": (round(first(samples, t0, lambda s: pod(s, victim.name) is None)
                                                    - node_deleted, 1) if node_deleted is not None else None),
            "pod_phase_failed_before_gone": failed_before_gone,
            "endpoints_of_deleted_node_dropped_s_after_node_deleted": (round(slice_drop - node_deleted, 1)
                                                                      if slice_drop is not None and
                                                                      node_deleted is not None else None),
            "endpoint_samples_after_node_deleted": len([x for x in in_slices_after_node_deleted if x]),
            "waited_s": round(t_gone - t0, 1)}


def record_upgrade(cluster: K8sCluster, sampler: Sampler) -> dict[str, Any]:
    before = cluster.state().active
    t0 = time.time()
    cluster.upgrade_cluster({"env": {"SERVE_CHAOS_CONTRACT": str(int(t0))}})
    records = cluster.heal()  # waits until the old cluster is deleted
    wait_settled(cluster)
    samples = sampler.samples
    after = cluster.state().active

    def serve_selector(s: dict[str, Any]) -> str | None:
        svc = next((x for x in s["services"] if x["metadata"]["name"].endswith("-serve-svc")), None)
        return ((svc or {}).get("spec") or {}).get("selector", {}).get("ray.io/cluster")

    switched = first(samples, t0, lambda s: serve_selector(s) == after)
    deleting = first(samples, t0, lambda s: any(c["metadata"]["name"] == before and
                                               c["metadata"].get("deletionTimestamp") for c in s["rayclusters"]))
    gone = first(samples, t0, lambda s: before not in names(s, "rayclusters"))
    pending = first(samples, t0, lambda s: ((s["rayservices"][0].get("status") or {}).get("pendingServiceStatus") or
                                            {}).get("rayClusterName") == after)
    jobs = [j for s in samples if s["t"] >= t0 for j in s["jobs"]]
    cleanup = next((j for j in jobs if j["metadata"]["name"].startswith(before)), None)
    finalizers = next((c["metadata"].get("finalizers") for s in samples for c in s["rayclusters"]
                       if c["metadata"]["name"] == before), None)
    return {"from": before, "to": after, "pending_seen_s": pending, "serve_service_switched_s": switched,
            "old_cluster_delete_issued_s_after_switch": (round(deleting - switched, 1)
                                                        if deleting is not None and switched is not None else None),
            "old_cluster_gone_s_after_switch": (round(gone - switched, 1) if gone is not None and switched is not None
                                                else None),
            "old_cluster_finalizers": finalizers,
            "redis_cleanup_job_labels": (cleanup or {}).get("spec", {}).get("template", {}).get("metadata", {})
            .get("labels"),
            "redis_cleanup_job_status": (cleanup or {}).get("status"),
            "heal": [r.action for r in records]}


def static_facts(sample: dict[str, Any]) -> dict[str, Any]:
    rs = sample["rayservices"][0]
    rc = sample["rayclusters"][0]
    head = role_pods(sample, "head")[0]
    worker = role_pods(sample, "worker")[0]
    svcs = {s["metadata"]["name"]: s for s in sample["services"]}
    head_svc = svcs[f"{rs['metadata']['name']}-head-svc"]
    serve_svc = next(s for n, s in svcs.items() if n.endswith("-serve-svc"))
    nodes = {n["metadata"]["name"]: n for n in sample["nodes"]}
    return {
        "rayservice_finalizers": rs["metadata"].get("finalizers"),
        "raycluster_finalizers": rc["metadata"].get("finalizers"),
        "raycluster_labels": sorted(rc["metadata"].get("labels") or {}),
        "raycluster_name_pattern": rc["metadata"]["name"][len(rs["metadata"]["name"]):],
        "head_pod_labels": sorted(head["metadata"]["labels"]),
        "worker_pod_labels": sorted(worker["metadata"]["labels"]),
        "head_serve_label": head["metadata"]["labels"].get("ray.io/serve"),
        "worker_serve_label": worker["metadata"]["labels"].get("ray.io/serve"),
        "head_owner_kind": head["metadata"]["ownerReferences"][0]["kind"],
        "head_pod_name": head["metadata"]["name"],
        "worker_pod_name": worker["metadata"]["name"],
        "head_service_cluster_ip": head_svc["spec"].get("clusterIP"),
        "head_service_publish_not_ready": head_svc["spec"].get("publishNotReadyAddresses", False),
        "serve_service_selector": serve_svc["spec"].get("selector"),
        "serve_service_type": serve_svc["spec"].get("type"),
        "rayservice_conditions": sorted([c["type"], c["status"]] for c in (rs.get("status") or {})
                                        .get("conditions") or []),
        "rayservice_status_keys": sorted((rs.get("status") or {}).keys()),
        "node_names": sorted(nodes),
        "control_plane_taints": next((n["spec"].get("taints") for name, n in nodes.items()
                                      if name.endswith("control-plane")), None),
        "worker_init_containers": [c["name"] for c in worker["spec"].get("initContainers") or []],
        "worker_readiness_probe": worker["spec"]["containers"][0].get("readinessProbe"),
        "head_readiness_probe": head["spec"]["containers"][0].get("readinessProbe"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures"))
    args = parser.parse_args()
    running = k8s_target.find()
    if running is None:
        print("no k8s-target cluster is running: `serve-chaos k8s up` first", file=sys.stderr)
        return 1
    cluster = K8sCluster(running, KubeTargetConfig(ray=KubeRayConfig()))
    if not cluster.attach():
        print("the k8s-target cluster runs no RayService of ours: `serve-chaos k8s up` applies one", file=sys.stderr)
        return 1
    cluster.lock("record_kube_contract")
    sampler = Sampler(cluster)
    sampler.start()
    try:
        time.sleep(2)
        facts: dict[str, Any] = {"static": static_facts(sampler.samples[-1])}
        for role in ("worker", "head"):
            facts[f"{role}_pod_delete"] = record_pod_delete(cluster, sampler, role)
            print(f"{role} pod delete: {facts[f'{role}_pod_delete']}")
        facts["node_loss"] = record_node_loss(cluster, sampler)
        print(f"node loss: {facts['node_loss']}")
        facts["upgrade"] = record_upgrade(cluster, sampler)
        print(f"upgrade: {facts['upgrade']}")
    finally:
        sampler.stop.set()
        sampler.join(5)
        cluster.unlock()
    state = running.state
    version = state["binaries"]["kuberay_version"]
    out = Path(args.out) / f"kuberay-{version}"
    out.mkdir(parents=True, exist_ok=True)
    facts["source"] = {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "kuberay": version, "kubernetes": state["binaries"]["kubernetes_version"],
                       "how": "tools/record_kube_contract.py on the k8s target (real control plane, real operator)"}
    (out / "contract.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    last = sampler.samples[-1]
    examples = {kind: last[kind][0] for kind in ("pods", "services", "endpointslices", "rayclusters", "rayservices")
                if last[kind]}
    (out / "objects.json").write_text(json.dumps(examples, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
