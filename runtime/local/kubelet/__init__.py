"""The kubelet of the local cluster: pods as processes in their own network namespace and cgroup.

It starts a pod's next incarnation from the spec the operator gives it, notices
its exit, restarts a crashed pod with CrashLoopBackOff, deletes pods gracefully
(preStop, SIGTERM, grace period, SIGKILL) or at once, loses nodes, cuts and
restores pod networks, runs commands inside a pod (``kubectl exec``), and tears
it all down.  Every process is ended by PID (or by its pod's cgroup).
"""

from __future__ import annotations

from serve_chaos.runtime.local.kubelet.lifecycle import KubeletPods
from serve_chaos.runtime.local.kubelet.network import KubeletNetwork
from serve_chaos.runtime.local.kubelet.nodes import KubeletNodes
from serve_chaos.runtime.local.kubelet.processes import KubeletProcesses
from serve_chaos.runtime.local.kubelet.spec import (
    Event,
    PodSpec,
    session_dir,
)

__all__ = [
    "Kubelet",
    "Event",
    "PodSpec",
    "session_dir",
]


class Kubelet(KubeletProcesses, KubeletNetwork, KubeletPods, KubeletNodes):
    """Pods and nodes of one local cluster: one class per concern (``base``, ``processes``,
    ``network``, ``lifecycle``, ``nodes``). ``lock`` guards every pod and node."""
