"""SLO bounds derived from the timings of the target a scenario runs on.

Each returns ``{SLO field: seconds}`` for ``Phase.bounds``; ``settings`` is what
``Cluster.settings()`` recorded (Ray's node health-check settings, and on
Kubernetes the PodGC timings).
"""

from __future__ import annotations

from typing import Any

from runtime.ray_settings import silent_node_death_bound_s

#: One probe period plus its timeout (s): when a snapshot can first show a change.
PROBE_SLACK_S = 3.0
#: A replacement Ray pod starting and joining the cluster (s): `ray start` on a
#: fresh pod, image already on the node.
POD_JOIN_S = 15.0
#: SleepyPid's constructor (10 s) and the controller noticing the replica (s).
REPLICA_START_S = 25.0


def pods_gone_after_node_loss_s(settings: dict[str, Any], replacement_delay_s: float) -> float:
    """Latest time (s) after a node loss at which its pods are gone and recreated elsewhere.

    Locally the supervisor recreates them after the replacement delay.  On
    Kubernetes the Node object is deleted after that delay, and PodGC collects
    the pods bound to it only after its quarantine, checked once per period: at
    worst quarantine + 2 periods later (kubernetes ``pkg/controller/podgc/gc_controller.go``:
    quarantineTime 40 s, gcCheckPeriod 20 s).
    """
    quarantine = settings.get("podgc_quarantine_s")
    if quarantine is None:
        return replacement_delay_s
    return replacement_delay_s + float(quarantine) + 2 * float(settings.get("podgc_period_s", 20.0))


def node_loss_bounds(settings: dict[str, Any], replacement_delay_s: float,
                     needs_replacement_pod: bool) -> dict[str, float]:
    """Fault effect and recovery bounds (s) of a lost node.

    The fault has taken effect once Ray declared the silent node dead and its pods
    are gone; recovery then needs replacement replicas -- on the replacement pod
    when nothing else may host them (strict spreading).
    """
    silent = silent_node_death_bound_s(_health(settings)) + PROBE_SLACK_S
    pods_gone = pods_gone_after_node_loss_s(settings, replacement_delay_s)
    placed = pods_gone + POD_JOIN_S if needs_replacement_pod else 0.0
    local_pods_gone = 0.0 if settings.get("podgc_quarantine_s") is None else pods_gone
    return {"max_fault_effect_s": max(silent, local_pods_gone),
            "max_recovery_s": max(silent, local_pods_gone, placed) + REPLICA_START_S}


def _health(settings: dict[str, Any]) -> dict[str, int] | None:
    keys = ("health_check_period_ms", "health_check_timeout_ms", "health_check_failure_threshold")
    return {k: int(settings[k]) for k in keys} if all(k in settings for k in keys) else None


def front_door_lag_s(settings: dict[str, Any]) -> float:
    """How long (s) the front door may still route to a pod that stopped serving.

    Each target says it in ``front_door_lag_s`` (locally from the supervisor's
    readiness timing; on Kubernetes from KubeRay's readiness probe and its
    head-serve-label reconcile); 8 s, the local default, when it is absent."""
    return float(settings.get("front_door_lag_s", 8.0))


def lagging_front_door_bounds(settings: dict[str, Any]) -> dict[str, float]:
    """A pod that stopped serving costs the front door at most its lag: failures span no
    longer than that, and the rolling 1 s error ratio stays raised one second more."""
    lag = front_door_lag_s(settings)
    return {"max_failure_span_s": lag, "max_longest_degraded_s": lag + 1.0}
