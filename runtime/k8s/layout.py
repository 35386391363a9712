"""Names, addresses and paths of one k8s-target cluster, all derived from its run label.

The labels, the bridge, network-namespace, veth and cgroup names follow the local target's
conventions (``serve_chaos.runtime.local.layout``), so what a killed run left is found and removed by the
same reaper, by label, never by process name.  The cluster lives in one /24 of the local
target's 198.18.0.0/15 range on a bridge of its own: ``.1`` is the host (the API server
listens there), ``.2``-``.15`` are the nodes' addresses (each node's kubelet endpoint), and
each node hands out its own block of pod addresses, as a per-node pod CIDR would.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from serve_chaos.runtime.local.layout import RunLayout

DEFAULT_HOME = Path(os.environ.get("SERVE_CHAOS_K8S_HOME", "/tmp/serve-chaos-k8s"))
#: kind's defaults (kind v0.31 ``pkg/apis/config/v1alpha4/default.go``): services in 10.96.0.0/16,
#: the API server's Service at .1.
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
API_SERVICE_IP = "10.96.0.1"
API_PORT = 6443
KUBELET_PORT = 10250
CLUSTER_DOMAIN = "cluster.local"
#: The kubeconfig context of the k8s target (the kube target acts only on contexts it is allowed).
CONTEXT = "serve-chaos-k8s"
FIRST_NODE_HOST = 2
MAX_NODES = 13
POD_BLOCK = 16
FIRST_POD_HOST = 32


@dataclass(frozen=True)
class NodeSpec:
    """One node: its name, index (its address and pod block), labels and taints."""

    name: str
    index: int
    labels: dict[str, str]
    taints: tuple[dict[str, str], ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "index": self.index, "labels": self.labels, "taints": list(self.taints)}

    @classmethod
    def from_dict(cls, data: dict) -> "NodeSpec":
        return cls(data["name"], int(data["index"]), dict(data.get("labels") or {}), tuple(data.get("taints") or ()))


@dataclass(frozen=True)
class K8sLayout:
    home: Path
    label: str
    subnet: str = ""
    #: The API server's port (6443 as kubeadm's; tests that start an API server alone pick a free one).
    api_port: int = API_PORT

    @property
    def run(self) -> RunLayout:
        """The local target's names for the same label (bridge, netns, veths, cgroups)."""
        return RunLayout(self.home, self.label)

    @property
    def root(self) -> Path:
        return self.home / self.label

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_dir(self) -> Path:
        return self.root / "etcd"

    @property
    def control_file(self) -> Path:
        return self.root / "control.json"

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    def kubeconfig(self, user: str) -> Path:
        return self.root / f"{user}.kubeconfig"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    # ------------------------------------------------------------------ addresses
    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.subnet)

    def host(self, n: int) -> str:
        return str(self.network.network_address + n)

    @property
    def gateway(self) -> str:
        return self.host(1)

    def node_ip(self, index: int) -> str:
        return self.host(FIRST_NODE_HOST + index)

    def pod_ips(self, index: int) -> list[str]:
        start = FIRST_POD_HOST + POD_BLOCK * index
        return [self.host(n) for n in range(start, min(start + POD_BLOCK, 255))]

    @property
    def api_url(self) -> str:
        return f"https://{self.gateway}:{self.api_port}"

    def read_control(self) -> dict | None:
        try:
            return json.loads(self.control_file.read_text())
        except (OSError, ValueError):
            return None
