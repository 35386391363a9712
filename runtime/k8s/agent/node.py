"""The Node object and its heartbeat, as the kubelet keeps them (``pkg/kubelet/kubelet_node_status.go``,
``pkg/kubelet/nodelease``).

The node registers itself (its labels, taints, addresses, capacity as the host has it --
kind's nodes report the host's CPUs and memory too -- and its kubelet endpoint), renews its
Lease in ``kube-node-lease`` every 10 s (a quarter of the 40 s lease, ``renewInterval``),
and reports its status, with a Ready condition, at start and then every minute.  The
node-lifecycle controller of kube-controller-manager reads the Lease: when the agent stops,
the node goes NotReady after its grace period, is tainted, and its pods are evicted, as
with any kubelet that went silent.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from kubernetes.client.rest import ApiException

from serve_chaos.runtime.k8s.layout import KUBELET_PORT, NodeSpec

LEASE_S = 40
RENEW_S = 10.0
STATUS_S = 60.0


def now_rfc3339(micro: bool = False) -> str:
    t = time.time()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{base}.{int((t % 1) * 1e6):06d}Z" if micro else base + "Z"


def capacity() -> dict[str, str]:
    memory_kib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_kib}Ki", "pods": "110",
            "ephemeral-storage": "100Gi"}


#: Labels a node may not give itself (NodeRestriction; the kubelet refuses them in ``--node-labels``):
#: kubeadm sets the control-plane role with the admin's credentials after registration.
RESTRICTED_PREFIX = "node-role.kubernetes.io/"


def node_object(spec: NodeSpec, ip: str, version: str) -> dict[str, Any]:
    own = {k: v for k, v in spec.labels.items() if not k.startswith(RESTRICTED_PREFIX)}
    labels = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", **own}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {"taints": list(spec.taints)} if spec.taints else {},
            "status": node_status(ip, version)}


def node_status(ip: str, version: str) -> dict[str, Any]:
    stamp = now_rfc3339()
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "serve-chaos node agent is posting ready status"),
    ]
    uname = platform.uname()
    return {
        "capacity": capacity(), "allocatable": capacity(),
        "conditions": [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": stamp,
                        "lastTransitionTime": stamp} for t, s, r, m in conditions],
        "addresses": [{"type": "InternalIP", "address": ip}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": uname.release,
                     "osImage": "serve-chaos node agent (host filesystem)", "containerRuntimeVersion":
                     "serve-chaos://0.1", "kubeletVersion": version, "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": "amd64"},
    }


class Registration:
    def __init__(self, api: Any, spec: NodeSpec, ip: str, version: str) -> None:
        self.api = api
        self.spec = spec
        self.ip = ip
        self.version = version
        self.last_status = 0.0

    def register(self) -> None:
        body = node_object(self.spec, self.ip, self.version)
        try:
            self.api.core.create_node(body)
        except ApiException as err:
            if err.status != 409:
                raise
            self.api.core.patch_node_status(self.spec.name, {"status": body["status"]})
        self.last_status = time.monotonic()

    def renew(self) -> None:
        """Renew the Lease (create it the first time); report status every minute."""
        name = self.spec.name
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_S,
                         "renewTime": now_rfc3339(micro=True)}}
        try:
            self.api.coordination.patch_namespaced_lease(name, "kube-node-lease", {"spec": body["spec"]})
        except ApiException as err:
            if err.status != 404:
                raise
            self.api.coordination.create_namespaced_lease("kube-node-lease", body)
        if time.monotonic() - self.last_status >= STATUS_S:
            self.api.core.patch_node_status(name, {"status": node_status(self.ip, self.version)})
            self.last_status = time.monotonic()
