"""The pods and nodes of the local cluster as the kubelet and the operator see them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serve_chaos.runtime.local import netns


@dataclass
class Node:
    name: str
    state: str = "Ready"  # Ready | Lost
    labels: dict[str, str] = field(default_factory=dict)
    #: Networks of pods that died with this node; kept (silent) until the node heals.
    dead_nets: list[netns.PodNet] = field(default_factory=list)


@dataclass
class Pod:
    """Mutable state of one pod name across its incarnations."""

    name: str
    role: str  # head | worker | redis
    node: str
    home_node: str
    uid: str = ""
    restarts: int = 0
    serial: int = 0
    phase: str = "Pending"  # Pending | Running | Terminating | CrashLoopBackOff | Lost
    ip: str = ""
    net: netns.PodNet | None = None
    cgroup: Path | None = None
    #: cgroup v1 groups of this incarnation by controller (``cpu``, ``memory``), when mounted.
    v1_groups: dict[str, Path] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    pid: int | None = None
    started_at: float | None = None
    ready: bool = False
    partitioned: bool = False
    #: Set while we delete the pod on purpose: its exit means "recreate", not "crash".
    terminating: bool = False
    #: Set when its node was lost: recreate on another node.
    displaced: bool = False
    start_at: float | None = 0.0
    backoff_s: float = 0.0
    serve_port: int = 8000
    slot_index: int = 0
    memory_limit: int | None = None
    #: Whether the incarnation runs in a mount namespace of its own (``mounts.pod_view``).
    private_mounts: bool = False
    #: The temp dir Ray is told to use (the same path in every pod with private mounts).
    temp_dir: Path | None = None

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "node": self.node,
            "ip": self.ip,
            "phase": self.phase,
            "ready": self.ready,
            "uid": self.uid,
            "restarts": self.restarts,
            "pid": self.pid,
            "started_at": self.started_at,
            "partitioned": self.partitioned,
            "serve_port": self.serve_port,
            "memory_limit": self.memory_limit,
        }
