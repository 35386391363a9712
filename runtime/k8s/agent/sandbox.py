"""A pod's sandbox on a node: its network namespace and address, and its cgroups.

The network is the local target's (``serve_chaos.runtime.local.netns``: a namespace with a veth on the
cluster bridge), plus a default route through the host so Service addresses work.  The
cgroups mirror the kubelet's hierarchy: ``<run>/<node>/<pod uid>/<container>`` in cgroup v2
(where ``cgroup.kill`` ends a container, a pod or a whole node at once) and in the v1 ``cpu``
and ``memory`` controllers, where each container's limits are set as runc sets them (CFS
quota from ``limits.cpu``, ``memory.limit_in_bytes`` from ``limits.memory``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from serve_chaos.runtime.local import cgroups, netns
from serve_chaos.runtime.local.commands import run

#: The CFS period runc uses (``cpu.cfs_period_us``), in microseconds.
CFS_PERIOD_US = 100_000


@dataclass
class Sandbox:
    uid: str
    net: netns.PodNet
    gateway: str
    #: cgroup v2 group of the pod, and the v1 groups by controller.
    cgroup: Path | None
    v1: dict[str, Path] = field(default_factory=dict)

    @property
    def ip(self) -> str:
        return self.net.ip

    def container_groups(self, name: str, resources: dict[str, Any]) -> list[Path]:
        """The container's groups (made now, limits set); their ``cgroup.procs`` files to join."""
        groups: list[Path] = []
        if self.cgroup is not None:
            groups.append(cgroups.create(self.cgroup / name))
        limits = resources.get("limits") or {}
        for controller, base in self.v1.items():
            group = cgroups.create(base / name)
            if controller == "cpu" and "cpu" in limits:
                quota = max(1000, math.ceil(float(parse_quantity(limits["cpu"])) * CFS_PERIOD_US))
                cgroups.write(group / "cpu.cfs_period_us", CFS_PERIOD_US)
                cgroups.write(group / "cpu.cfs_quota_us", quota)
            if controller == "memory" and "memory" in limits:
                cgroups.write(group / "memory.limit_in_bytes", int(parse_quantity(limits["memory"])))
            groups.append(group)
        return [g / "cgroup.procs" for g in groups]

    def memory_view(self) -> bool:
        return "memory" in self.v1

    def kill(self) -> None:
        """SIGKILL every process of the pod at once."""
        if self.cgroup is not None:
            cgroups.kill(self.cgroup)

    def members(self) -> list[int]:
        if self.cgroup is None:
            return []
        return [pid for sub in [self.cgroup, *sorted(p for p in self.cgroup.rglob("*") if p.is_dir())]
                for pid in cgroups.members(sub)]


def create(uid: str, net: netns.PodNet, bridge: str, gateway: str, node_group: Path | None,
           node_v1: dict[str, Path]) -> Sandbox:
    netns.create_pod_net(bridge, net)
    run(["ip", "-n", net.netns, "route", "add", "default", "via", gateway])
    group = cgroups.create(node_group / uid) if node_group is not None else None
    v1 = {c: cgroups.create(base / uid) for c, base in node_v1.items()}
    return Sandbox(uid, net, gateway, group, v1)


def destroy(box: Sandbox) -> bool:
    """Kill what is left, remove the cgroups and the network; True when all of it is gone."""
    box.kill()
    gone = True
    for group in ([box.cgroup] if box.cgroup is not None else []) + list(box.v1.values()):
        gone = cgroups.remove(group, timeout_s=5) and gone
    netns.delete_pod_net(box.net)
    return gone
