"""What Kubernetes' own controllers and the kubelet do to the fake API's store (test doubles).

Each behaviour names the kubernetes v1.35 (or kind v0.31.0) file it comes from:

- Nodes are kind's: ``<cluster>-control-plane`` (tainted ``node-role.kubernetes.io/
  control-plane:NoSchedule``, the taint kind keeps on multi-node clusters:
  ``pkg/cluster/internal/create/actions/kubeadminit/init.go``), then ``<cluster>-worker``,
  ``-worker2``, ... in ``kind-config.yaml`` order (``pkg/cluster/internal/providers/common/
  namer.go``), labelled through the kubelet's ``--node-labels``
  (``pkg/cluster/internal/kubeadm/config.go``), so a restarted node re-registers with them.
- The scheduler binds a pod to a Ready node whose taints it tolerates, whose labels match
  its ``nodeSelector`` (``pkg/scheduler/framework/plugins/nodeaffinity``,
  ``.../tainttoleration``), and where no pod -- Terminating ones included, they are in the
  scheduler's cache until deleted -- matches a required anti-affinity term of the incoming
  pod, or has a term the incoming pod matches, in the same ``topologyKey`` domain, and where
  each required pod-affinity term of the incoming pod finds a matching pod in that domain
  (``.../interpodaffinity/filtering.go``).  Among feasible nodes it spreads (fewest pods).
  An infeasible pod stays Pending with ``PodScheduled=False`` (Unschedulable).
- The kubelet starts bound pods (``start``), keeps a pod Ready while its readiness probe
  passes, restarts a crashed container in place (same UID, ``restartCount`` + 1), and ends a
  Terminating pod when its grace period has run out (``pkg/kubelet/kubelet_pods.go``);
  a stopped node's kubelet does nothing at all.
- PodGC force-deletes pods bound to a Node that no longer exists, after a 40 s quarantine
  (``pkg/controller/podgc/gc_controller.go`` gcOrphaned, quarantineTime).
- The garbage collector deletes pods whose owner is gone (``pkg/controller/garbagecollector``).
- The EndpointSlice controller lists every selected pod with an IP that is not terminal;
  ``ready`` is the pod's Ready condition and false while Terminating
  (``staging/src/k8s.io/endpointslice/utils.go`` podToEndpoint).
- A Deployment's pods are ``<deployment>-<template hash>-<5 chars>`` with the template's
  labels plus ``pod-template-hash``; scaled to 0 they go (``pkg/controller/deployment``,
  ``pkg/controller/replicaset``).
- A Job runs one pod built from its template (``<job>-<5 chars>``, label ``job-name``) and is
  Complete once that pod Succeeded (``pkg/controller/job/job_controller.go``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import string
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from tests.fake_apiserver import Store, iso, selector_matches, selects

KIND_CONFIG = Path(__file__).resolve().parents[1] / "kind-config.yaml"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
#: ``pkg/controller/podgc/gc_controller.go`` quarantineTime.
PODGC_QUARANTINE_S = 40.0


def rand5(store: Store) -> str:
    return "".join(store.rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def kind_nodes(cluster: str = "kind", config: Path = KIND_CONFIG,
               role_labels: bool = True) -> list[tuple[str, dict[str, str], bool]]:
    """(name, labels, tainted) of each node kind creates from ``config``; ``role_labels`` False: nodes
    without kind-config.yaml's labels, as any other cluster's."""
    counter: dict[str, int] = {}
    out = []
    for node in yaml.safe_load(config.read_text())["nodes"]:
        role = node["role"]
        counter[role] = counter.get(role, 0) + 1
        name = f"{cluster}-{role}{counter[role] if counter[role] > 1 else ''}"
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  **((node.get("labels") or {}) if role_labels else {})}
        if role == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
        out.append((name, labels, role == "control-plane"))
    return out


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions") or [])


def set_condition(pod: dict[str, Any], kind: str, status: bool, reason: str = "", message: str = "") -> None:
    conditions = [c for c in pod["status"].get("conditions") or [] if c.get("type") != kind]
    conditions.append({"type": kind, "status": "True" if status else "False", "reason": reason, "message": message})
    pod["status"]["conditions"] = conditions


class FakeKubernetes:
    """Nodes, the scheduler, the kubelets, PodGC, the garbage collector and the workload controllers."""

    def __init__(self, store: Store, namespace: str = "serve-chaos", cluster: str = "kind",
                 config: Path = KIND_CONFIG, role_labels: bool = True) -> None:
        self.store = store
        self.ns = namespace
        self.stopped: set[str] = set()
        #: pods whose readiness probe fails (the Serve proxy's /-/healthz on a worker, say).
        self.probe_fails: set[str] = set()
        self.orphaned_since: dict[str, float] = {}
        self.node_specs = {name: (labels, tainted) for name, labels, tainted in
                           kind_nodes(cluster, config, role_labels)}
        for name in self.node_specs:
            self.register_node(name)

    # ------------------------------------------------------------------ nodes
    def register_node(self, name: str) -> None:
        labels, tainted = self.node_specs[name]
        self.store.put({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": name, "labels": dict(labels)},
                        "spec": {"taints": [dict(CONTROL_PLANE_TAINT)] if tainted else []},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})

    def nodes(self) -> dict[str, dict[str, Any]]:
        return {n["metadata"]["name"]: n for n in self.store.list("Node")}

    def stop_node(self, name: str) -> None:
        """``docker kill`` of a kind node: its kubelet is gone; the node goes NotReady."""
        self.stopped.add(name)
        node = self.store.get("Node", "", name)
        if node is not None:
            node["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]

    def start_node(self, name: str) -> None:
        """``docker start``: the kubelet registers its Node again (with its --node-labels)."""
        self.stopped.discard(name)
        if self.store.get("Node", "", name) is None:
            self.register_node(name)
        else:
            self.store.get("Node", "", name)["status"]["conditions"] = [{"type": "Ready", "status": "True"}]

    def _ready_nodes(self) -> dict[str, dict[str, Any]]:
        return {name: n for name, n in self.nodes().items() if name not in self.stopped
                and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])}

    # ------------------------------------------------------------------ the scheduler
    def pods(self) -> list[dict[str, Any]]:
        return self.store.list("Pod", self.ns)

    def _terms(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        anti = ((pod["spec"].get("affinity") or {}).get("podAntiAffinity") or {})
        return list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])

    def _conflicts(self, pod: dict[str, Any], node: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> bool:
        """A required anti-affinity term, of the incoming pod or of a pod already placed, forbids ``node``."""
        for other in self.pods():
            where = other["spec"].get("nodeName")
            if other is pod or not where or where not in nodes:
                continue
            pairs = [(t, other) for t in self._terms(pod)] + [(t, pod) for t in self._terms(other)]
            for term, subject in pairs:
                key = term["topologyKey"]
                if nodes[where]["metadata"]["labels"].get(key) == node["metadata"]["labels"].get(key) \
                        and selector_matches(term.get("labelSelector"), subject["metadata"].get("labels") or {}):
                    return True
        return False

    def _affinity_unmet(self, pod: dict[str, Any], node: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> bool:
        """A required pod-affinity term of the incoming pod finds no matching pod in ``node``'s domain
        (``.../interpodaffinity/filtering.go`` satisfyPodAffinity; the term of a pod matching itself
        when no pod matches anywhere is not modelled: nothing of ours needs it)."""
        affinity = ((pod["spec"].get("affinity") or {}).get("podAffinity") or {})
        for term in affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            key = term["topologyKey"]
            if not any(other is not pod and other["spec"].get("nodeName") in nodes
                       and not other["metadata"].get("deletionTimestamp")
                       and nodes[other["spec"]["nodeName"]]["metadata"]["labels"].get(key)
                       == node["metadata"]["labels"].get(key)
                       and selector_matches(term.get("labelSelector"), other["metadata"].get("labels") or {})
                       for other in self.pods()):
                return True
        return False

    def feasible(self, pod: dict[str, Any]) -> list[str]:
        nodes = self.nodes()
        ready = self._ready_nodes()
        tolerated = {t.get("key") for t in pod["spec"].get("tolerations") or []}
        out = []
        for name, node in ready.items():
            if any(t["key"] not in tolerated for t in node["spec"].get("taints") or []):
                continue
            if not all(node["metadata"]["labels"].get(k) == v for k, v in (pod["spec"].get("nodeSelector") or {}).items()):
                continue
            if self._conflicts(pod, node, nodes) or self._affinity_unmet(pod, node, nodes):
                continue
            out.append(name)
        return out

    def schedule(self) -> None:
        for pod in self.pods():
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            feasible = self.feasible(pod)
            if not feasible:
                set_condition(pod, "PodScheduled", False, "Unschedulable",
                              f"0/{len(self.nodes())} nodes are available")
                continue
            load = {n: sum(1 for p in self.pods() if p["spec"].get("nodeName") == n) for n in feasible}
            pod["spec"]["nodeName"] = min(feasible, key=lambda n: (load[n], n))
            set_condition(pod, "PodScheduled", True)

    # ------------------------------------------------------------------ kubelets
    def start(self, pods: list[dict[str, Any]] | None = None) -> None:
        """The kubelets of running nodes start these bound, Pending pods (default: all of them)."""
        for pod in pods if pods is not None else self.pods():
            node = pod["spec"].get("nodeName")
            if pod["status"].get("phase") != "Pending" or not node or node in self.stopped:
                continue
            pod["status"].update(phase="Running", podIP=f"10.244.{self.store.rng.randrange(1, 250)}."
                                                         f"{self.store.rng.randrange(2, 250)}",
                                 startTime=iso(self.store.now()))
            for status in pod["status"].get("containerStatuses") or []:
                status["ready"] = True
        self.probe()

    def probe(self) -> None:
        """Readiness: Running, on a live node, and not failing its probe."""
        for pod in self.pods():
            if pod["spec"].get("nodeName") in self.stopped:
                continue  # nobody updates the status of a dead node's pods
            ready = pod["status"].get("phase") == "Running" and pod["metadata"]["name"] not in self.probe_fails
            set_condition(pod, "Ready", ready)

    def restart_container(self, name: str) -> None:
        pod = self.store.get("Pod", self.ns, name)
        pod["status"]["containerStatuses"][0]["restartCount"] += 1

    def terminate(self, name: str | None = None) -> None:
        """Kubelets finish graceful deletions: ``name`` now, else those whose grace period ran out."""
        now = self.store.now()
        for pod in self.pods():
            meta = pod["metadata"]
            if not meta.get("deletionTimestamp") or pod["spec"].get("nodeName") in self.stopped:
                continue
            since = datetime.strptime(meta["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
            if meta["name"] == name or (name is None and now >= since + meta.get("deletionGracePeriodSeconds", 30)):
                self.store.remove("Pod", self.ns, meta["name"])

    # ------------------------------------------------------------------ controllers
    def podgc(self) -> None:
        nodes = self.nodes()
        for pod in self.pods():
            node = pod["spec"].get("nodeName")
            name = pod["metadata"]["name"]
            if not node or node in nodes:
                self.orphaned_since.pop(name, None)
                continue
            since = self.orphaned_since.setdefault(name, self.store.now())
            if self.store.now() - since >= PODGC_QUARANTINE_S:
                self.store.remove("Pod", self.ns, name)

    def garbage_collect(self) -> None:
        for pod in self.pods():
            for ref in pod["metadata"].get("ownerReferences") or []:
                if self.store.get(ref["kind"], self.ns, ref["name"]) is None:
                    self.store.remove("Pod", self.ns, pod["metadata"]["name"])
                    break

    def endpoint_slices(self) -> None:
        for svc in self.store.list("Service", self.ns):
            selector = svc["spec"].get("selector") or {}
            if not selector:
                continue
            endpoints = []
            for pod in self.pods():
                if not selects(selector, pod["metadata"].get("labels") or {}) or not pod["status"].get("podIP") \
                        or pod["status"].get("phase") in ("Succeeded", "Failed"):
                    continue
                terminating = bool(pod["metadata"].get("deletionTimestamp"))
                serving = is_ready(pod)
                endpoints.append({"addresses": [pod["status"]["podIP"]],
                                  "conditions": {"ready": serving and not terminating, "serving": serving,
                                                 "terminating": terminating},
                                  "nodeName": pod["spec"].get("nodeName"),
                                  "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"],
                                                "namespace": self.ns, "uid": pod["metadata"]["uid"]}})
            name = f"{svc['metadata']['name']}-{short_hash(svc['metadata']['name'])[:5]}"
            self.store.put({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                            "metadata": {"name": name, "namespace": self.ns,
                                         "labels": {"kubernetes.io/service-name": svc["metadata"]["name"],
                                                    "endpointslice.kubernetes.io/managed-by":
                                                        "endpointslice-controller.k8s.io"}},
                            "addressType": "IPv4", "endpoints": endpoints})

    def deployments(self) -> None:
        for deploy in self.store.list("Deployment", self.ns):
            template = deploy["spec"]["template"]
            tpl_hash = short_hash(template)
            labels = {**template["metadata"]["labels"], "pod-template-hash": tpl_hash}
            pods = [p for p in self.pods() if selects(deploy["spec"]["selector"]["matchLabels"],
                                                        p["metadata"]["labels"])]
            for pod in pods[deploy["spec"]["replicas"]:]:
                self.store.remove("Pod", self.ns, pod["metadata"]["name"])
            for _ in range(deploy["spec"]["replicas"] - len(pods)):
                self.store.put(self.new_pod(f"{deploy['metadata']['name']}-{tpl_hash}-{rand5(self.store)}",
                                            labels, template["spec"]))
        self.schedule()
        self.start([p for p in self.pods() if "pod-template-hash" in p["metadata"]["labels"]])

    def jobs(self) -> None:
        """Run each Job's pod; a started pod has Succeeded by the next pass."""
        self.schedule()
        self.start([p for p in self.pods() if "job-name" in p["metadata"]["labels"]])
        for job in self.store.list("Job", self.ns):
            name = job["metadata"]["name"]
            pods = [p for p in self.pods() if p["metadata"]["labels"].get("job-name") == name]
            if not pods and not job.get("status", {}).get("succeeded"):
                template = job["spec"]["template"]
                labels = {**(template["metadata"].get("labels") or {}), "job-name": name,
                          "batch.kubernetes.io/job-name": name}
                self.store.put(self.new_pod(f"{name}-{rand5(self.store)}", labels, template["spec"]))
            for pod in pods:
                if pod["status"].get("phase") == "Running":
                    pod["status"]["phase"] = "Succeeded"
                if pod["status"].get("phase") == "Succeeded":
                    job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}

    def new_pod(self, name: str, labels: dict[str, str], spec: dict[str, Any],
                owner: dict[str, Any] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        spec = copy.deepcopy(spec)
        spec.setdefault("restartPolicy", "Always")
        meta: dict[str, Any] = {"name": name, "namespace": self.ns, "labels": dict(labels),
                                "annotations": dict(annotations or {})}
        if owner is not None:
            meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                        "controller": True}]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
                           "containerStatuses": [{"name": spec["containers"][0]["name"], "image": "i",
                                                  "imageID": "", "ready": False, "restartCount": 0}]}}

    def step(self) -> None:
        """One pass of every controller and kubelet."""
        self.garbage_collect()
        self.podgc()
        self.terminate()
        self.deployments()
        self.jobs()
        self.schedule()
        self.probe()
        self.endpoint_slices()
