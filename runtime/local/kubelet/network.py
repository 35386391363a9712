"""A pod's network: its address, its namespace on the bridge, and partitions cut and restored."""

from __future__ import annotations

import time

from serve_chaos.runtime.cluster import ActionRecord
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local import netns
from serve_chaos.runtime.local.kubelet.base import KubeletBase
from serve_chaos.runtime.local.pods import Pod


class KubeletNetwork(KubeletBase):
    """A pod's network: its address, its namespace on the bridge, and partitions cut and restored."""

    def _allocate_ip(self, pod: Pod) -> str:
        """Head and Redis keep their address (a Service); a new worker pod gets a new one."""
        if pod.role in self.fixed_ips:
            return self.fixed_ips[pod.role]
        return self.free_ips.pop(0)

    def _release_ip(self, ip: str) -> None:
        if ip and ip not in self.fixed_ips.values() and ip not in self.free_ips:
            self.free_ips.append(ip)

    def _new_network(self, pod: Pod) -> None:
        pod.ip = self._allocate_ip(pod)
        if self.mode != "netns" or pod.net is not None:
            return
        # A stable-IP pod (head/redis) may be coming back while its old network
        # still sits silent on a lost node: free the address first.
        for node in self.nodes.values():
            for net in list(node.dead_nets):
                if net.ip == pod.ip:
                    netns.delete_pod_net(net)
                    node.dead_nets.remove(net)
        pod.net = netns.PodNet(netns=self.layout.netns(pod.name, pod.serial), host_if=self.layout.host_if(pod.serial),
                               ip=pod.ip, prefix=self.subnet.prefixlen)
        netns.create_pod_net(self.layout.bridge, pod.net)

    def _discard_net(self, pod: Pod) -> None:
        """Drop a deleted pod's network -- except for Redis and the head.

        Those are reached through Services (a stable address); while no pod
        backs a Service, connections to it are refused at once.  Keeping the
        namespace (nothing listening) gives that: peers get RST and retry, not
        silence, which would leave their SYNs backing off for a minute.
        """
        if pod.ip in self.fixed_ips.values():
            return
        if pod.net is not None:
            netns.delete_pod_net(pod.net)
            pod.net = None
        self._release_ip(pod.ip)

    def partition(self, name: str, reject: bool = False) -> ActionRecord:
        if self.mode != "netns":
            raise ServeChaosError("partitions need network namespaces (root)", hint="run as root")
        t0 = time.time()
        with self.lock:
            pod = self.pod(name)
            if pod.net is None or pod.phase != "Running":
                raise ServeChaosError(f"pod {name} is {pod.phase}; cannot partition it")
            netns.partition(pod.net.netns, reject)
            pod.partitioned = True
        self.event("pod_partitioned", pod=name, ip=pod.ip, reject=reject)
        return ActionRecord("partition_pod", name, t0, time.time(), {"ip": pod.ip, "uid": pod.uid, "reject": reject})

    def unpartition(self, name: str) -> ActionRecord:
        t0 = time.time()
        with self.lock:
            pod = self.pod(name)
            if pod.net is not None and pod.partitioned:
                netns.unpartition(pod.net.netns)
            pod.partitioned = False
        self.event("pod_unpartitioned", pod=name)
        return ActionRecord("unpartition_pod", name, t0, time.time(), {})

    def release(self, name: str) -> ActionRecord | None:
        """A pod held down on purpose (``down_for_s``) may come back now."""
        pod = self.pod(name)
        if pod.phase == "Pending" and pod.start_at is not None and pod.start_at > time.time():
            pod.start_at = time.time()
            return ActionRecord("release_pod", pod.name, time.time(), time.time(), {})
        return None
