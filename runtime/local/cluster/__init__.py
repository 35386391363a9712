"""``LocalCluster``: the Cluster protocol over the local supervisor's control API."""

from __future__ import annotations

from serve_chaos.runtime.local.cluster.faults import LocalClusterFaults
from serve_chaos.runtime.local.cluster.lifecycle import LocalClusterLifecycle
from serve_chaos.runtime.local.cluster.readiness import LocalClusterReadiness
from serve_chaos.runtime.local.cluster.preflight import load_config_file, preflight, resolve_isolation

__all__ = ["LocalCluster", "load_config_file", "preflight", "resolve_isolation"]


class LocalCluster(LocalClusterLifecycle, LocalClusterFaults, LocalClusterReadiness):
    """A real multi-node Ray cluster on this machine, run by a background supervisor: one class per
    concern (``base``, ``lifecycle``, ``faults``, ``readiness``).

    ``owner_pid``: the supervisor tears the cluster down when that process dies
    (pytest passes its own PID unless --keep-cluster).  ``None`` keeps it up
    until ``down()`` (``serve-chaos up``).
    """
