"""Nodes lost and healed, and the faults in effect on them."""

from __future__ import annotations

import time

from serve_chaos.runtime.cluster import ActionRecord
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local import netns
from serve_chaos.runtime.local.kubelet.base import KubeletBase
from serve_chaos.runtime.local.pods import Node


class KubeletNodes(KubeletBase):
    """Nodes lost and healed, and the faults in effect on them."""

    def lose_node(self, node_name: str, replacement_delay_s: float | None) -> ActionRecord:
        """The node goes silent, then its pods die; they come back elsewhere after the delay."""
        if self.mode != "netns":
            raise ServeChaosError("node loss needs network namespaces (root)", hint="run as root")
        t0 = time.time()
        delay = self.config.timing.node_replacement_delay_s if replacement_delay_s is None else replacement_delay_s
        with self.lock:
            node = self.node(node_name)
            if node.state != "Ready":
                raise ServeChaosError(f"node {node_name} is {node.state}, not Ready")
            victims = [p for p in self.pods.values() if p.node == node_name and p.phase != "Pending"]
            node.state = "Lost"
            # Cut the network first so peers see silence, not refused connections.
            for pod in victims:
                if pod.net is not None:
                    netns.partition(pod.net.netns)
                    pod.partitioned = True
            t_cut = time.time()
            before = [{"pod": p.name, "uid": p.uid, "pid": p.pid, "ip": p.ip} for p in victims]
            for pod in victims:
                pod.displaced = True
                pod.start_at = time.time() + delay
                if pod.net is not None:
                    node.dead_nets.append(pod.net)
                    pod.net = None
                # The front door keeps the dead endpoint until its readiness probe
                # fails, as a Service does; nothing to tell it here.
                self.kill_processes(pod)
        self.event("node_lost", node=node_name, pods=[p["pod"] for p in before], delay_s=delay)
        return ActionRecord("kill_node", node_name, t0, time.time(),
                            {"pods": before, "t_network_cut": t_cut, "replacement_delay_s": delay})

    def heal_node(self, node: Node) -> ActionRecord:
        t0 = time.time()
        for net in node.dead_nets:
            netns.delete_pod_net(net)
            self._release_ip(net.ip)
        node.dead_nets.clear()
        node.state = "Ready"
        self.event("node_healed", node=node.name)
        return ActionRecord("heal_node", node.name, t0, time.time(), {})

    def heal(self, pods: set[str] | None = None, nodes: set[str] | None = None) -> list[ActionRecord]:
        """Undo partitions, holds and lost nodes -- all of them, or those named."""
        records: list[ActionRecord] = []
        with self.lock:
            for pod in self.pods.values():
                if pods is not None and pod.name not in pods:
                    continue
                if pod.partitioned and not pod.displaced and pod.net is not None:
                    records.append(self.unpartition(pod.name))
                released = self.release(pod.name)
                if released is not None:
                    records.append(released)
                thawed = self.thaw(pod) if pod.pid is not None else None
                if thawed is not None:
                    records.append(thawed)
            for node in self.nodes.values():
                if node.state == "Lost" and (nodes is None or node.name in nodes):
                    records.append(self.heal_node(node))
        return records

    def faults_in_effect(self) -> list[str]:
        """What is broken on purpose right now, whoever did it."""
        with self.lock:
            found = [f"pod {p.name} is partitioned" for p in self.pods.values() if p.partitioned and not p.displaced]
            found += [f"node {n.name} is lost" for n in self.nodes.values() if n.state == "Lost"]
            found += [f"pod {p.name} is held down" for p in self.pods.values()
                      if p.phase == "Pending" and p.start_at is not None and p.start_at > time.time() + 1.0]
            found += [f"pod {p.name} is frozen (SIGSTOP)" for p in self.pods.values() if self.frozen(p)]
        return found
