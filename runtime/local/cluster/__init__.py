"""``LocalCluster``: the Cluster protocol over the local supervisor's control API."""

from __future__ import annotations

from runtime.local.cluster.faults import LocalClusterFaults
from runtime.local.cluster.lifecycle import LocalClusterLifecycle
from runtime.local.cluster.readiness import LocalClusterReadiness
from runtime.local.cluster.preflight import (
    check_platform,
    load_config_file,
    port_free,
    preflight,
    resolve_isolation,
)

__all__ = [
    "LocalCluster",
    "check_platform",
    "load_config_file",
    "port_free",
    "preflight",
    "resolve_isolation",
]


class LocalCluster(LocalClusterLifecycle, LocalClusterFaults, LocalClusterReadiness):
    """The Cluster protocol over the local supervisor's control API: one class per concern (``base``,
    ``lifecycle``, ``faults``, ``readiness``)."""
