"""Pods and nodes of one local cluster (``lock`` guards every pod and node): the topology, the shared
temp dir, lookups, teardown."""

from __future__ import annotations

import ipaddress
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local import cgroups, netns, procs
from serve_chaos.runtime.local.config import LocalClusterConfig
from serve_chaos.runtime.local.kubelet.spec import Event, PodSpec
from serve_chaos.runtime.local.layout import RunLayout
from serve_chaos.runtime.local.pods import Node, Pod


class KubeletBase:
    """Pods and nodes of one local cluster (``lock`` guards every pod and node): the topology, the
    shared temp dir, lookups, teardown."""

    def __init__(self, config: LocalClusterConfig, layout: RunLayout, mode: str, event: Event,
                 lock: threading.RLock) -> None:
        self.config = config
        self.layout = layout
        self.mode = mode  # netns | loopback
        self.event = event
        self.lock = lock
        self.pods: dict[str, Pod] = {}
        self.nodes: dict[str, Node] = {}
        self.children: dict[int, subprocess.Popen] = {}
        self.exit_status: dict[int, int] = {}
        self.cgroup_base: Path | None = None
        #: cgroup v1 bases by controller (``cpu``, ``memory``): a pod's CPU quota and memory limit.
        self.v1_bases: dict[str, Path] = {}
        self.pending_cgroup_removal: list[Path] = []
        self.serial = 0
        self.subnet: ipaddress.IPv4Network | None = None
        self.gateway = ""
        self.fixed_ips: dict[str, str] = {}
        self.free_ips: list[str] = []
        self.pod_spec: PodSpec | None = None
        #: Called with each pod once it started (the operator's head-restart rule hooks in here).
        self.on_started: Callable[[Pod], None] = lambda pod: None
        #: Called to put a pod into / take it out of the front door's rotation.
        self.endpoint_up: Callable[[Pod], None] = lambda pod: None
        self.endpoint_down: Callable[[Pod], None] = lambda pod: None

    @property
    def shared_temp_dir(self) -> Path:
        """The temp dir path every Ray pod is given; in each pod's own mount namespace it is that
        pod incarnation's own directory (``mounts.pod_view``)."""
        return self.layout.root / "ray"

    def setup(self) -> None:
        if self.mode == "netns":
            self.subnet = netns.pick_subnet()
            hosts = list(self.subnet.hosts())
            self.gateway = str(hosts[0])
            netns.create_bridge(self.layout.bridge, self.gateway, self.subnet.prefixlen)
            root = cgroups.cgroup2_root()
            if root is not None and cgroups.supports_kill(root):
                self.cgroup_base = cgroups.create(root / self.layout.cgroup_name)
                for controller in cgroups.V1_CONTROLLERS:
                    v1 = cgroups.v1_root(controller)
                    if v1 is not None:
                        self.v1_bases[controller] = cgroups.create(v1 / self.layout.cgroup_name)
        else:
            octet = 20 + int(self.layout.label, 16) % 200
            self.subnet = ipaddress.ip_network(f"127.0.{octet}.0/24")
            self.gateway = "127.0.0.1"
        self.shared_temp_dir.mkdir(parents=True, exist_ok=True)
        hosts = [str(h) for h in self.subnet.hosts()]
        self.fixed_ips = {"redis": hosts[1], "head": hosts[9]}
        self.free_ips = hosts[19:250]
        self._define_topology()

    def _define_topology(self) -> None:
        cfg = self.config
        self.nodes["node-redis"] = Node("node-redis", labels={"serve-chaos/role": "redis"})
        self.nodes["node-head"] = Node("node-head", labels={"serve-chaos/role": "head"})
        self.pods["redis"] = Pod("redis", "redis", "node-redis", "node-redis", serve_port=0)
        self.pods["head"] = Pod("head", "head", "node-head", "node-head", serve_port=cfg.serve_port)
        for i in range(1, cfg.workers + 1):
            node = f"node-w{i}"
            self.nodes[node] = Node(node, labels={"serve-chaos/role": "worker"})
            port = cfg.serve_port if self.mode == "netns" else cfg.serve_port + i
            self.pods[f"worker-{i}"] = Pod(f"worker-{i}", "worker", node, node, serve_port=port, slot_index=i)
        for i in range(1, cfg.spare_nodes + 1):
            node = f"node-spare-{i}"
            self.nodes[node] = Node(node, labels={"serve-chaos/role": "spare"})

    def node(self, name: str) -> Node:
        if name not in self.nodes:
            raise ServeChaosError(f"no node named {name!r}", hint=f"nodes are: {', '.join(sorted(self.nodes))}")
        return self.nodes[name]

    def pod(self, name: str) -> Pod:
        if name not in self.pods:
            raise ServeChaosError(f"no pod named {name!r}", hint=f"pods are: {', '.join(sorted(self.pods))}")
        return self.pods[name]

    def members(self, pod: Pod) -> list[int]:
        """The PIDs of every process of the pod's current incarnation."""
        if pod.cgroup is not None:
            return cgroups.members(pod.cgroup)
        tag = f"{pod.name}.{pod.serial}"
        return [pid for pid, env in procs.marked_processes(self.layout.label).items()
                if env.get(procs.POD_ENV) == tag]

    def node_states(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"name": n.name, "state": n.state,
                     "pods": [p.name for p in self.pods.values() if p.node == n.name and p.phase != "Lost"],
                     "labels": n.labels} for n in self.nodes.values()]

    def teardown(self, others: list[int]) -> None:
        """Kill every pod, ``others`` (PIDs) and every child; remove cgroups and networks."""
        with self.lock:
            for pod in self.pods.values():
                pod.start_at = None
                if pod.pid is not None or pod.cgroup is not None:
                    self.kill_processes(pod)
        procs.kill_and_wait(others + list(self.children), timeout_s=10)
        self.reap()
        if self.cgroup_base is not None:
            cgroups.remove(self.cgroup_base, timeout_s=5)
        for base in self.v1_bases.values():
            cgroups.remove(base, timeout_s=5)
        if self.mode == "netns":
            for name in netns.list_netns(f"sc-{self.layout.label}-"):
                netns.delete_netns(name)
            for link in netns.list_links(f"s{self.layout.label}"):
                netns.delete_link(link)
            netns.delete_link(self.layout.bridge)
