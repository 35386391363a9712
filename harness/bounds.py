"""SLO bounds derived from the timings of the target a scenario runs on.

Each returns ``{SLO field: seconds}`` for ``Phase.bounds``; ``settings`` is what
``Cluster.settings()`` recorded (Ray's node health-check settings, and on
Kubernetes the PodGC timings) plus what the engine learnt of the app: its
deployments' health-check period and timeout and graceful shutdown timeout
(``AppSpec.recovery_settings``) and the slowest replica start the Serve
controller logged (``replica_start_s``, ``serve_chaos.harness.observe.startup``).
"""

from __future__ import annotations

import math
from typing import Any

from serve_chaos.runtime.ray_settings import (SERVE_PROXY_HEALTH_CHECK_PERIOD_S, SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S,
                                  SERVE_PROXY_READY_TIMEOUT_S,
                                  SERVE_PROXY_UNHEALTHY_THRESHOLD, SERVE_REPLICA_UNHEALTHY_THRESHOLD,
                                  silent_node_death_bound_s)

#: One probe period plus its timeout (s): when a snapshot can first show a change.
PROBE_SLACK_S = 3.0
#: A replacement Ray pod starting and joining the cluster (s): `ray start` on a
#: fresh pod, image already on the node.
POD_JOIN_S = 15.0
#: A replica start (s) when the controller's log could not be read: stated, not measured.
FALLBACK_REPLICA_START_S = 30.0
#: From a replica's death to its replacement starting (the controller's loop noticing it),
#: and from RUNNING to steady state (proxies routing to it, the probes seeing it) (s).
REPLACE_SLACK_S = 15.0


def replica_start_s(settings: dict[str, Any]) -> float:
    """The app's slowest replica start (s) as Serve measured it, else the stated fallback."""
    measured = settings.get("replica_start_s")
    return float(measured) if measured else FALLBACK_REPLICA_START_S


def replica_replaced_bounds(settings: dict[str, Any]) -> dict[str, float]:
    """A dead replica (s): noticed, replaced, started (the app's own start), routed to."""
    return {"max_recovery_s": replica_start_s(settings) + REPLACE_SLACK_S}


def unhealthy_kill_bound_s(settings: dict[str, Any], mode: str) -> float:
    """Latest time (s) after a replica's check_health starts failing (``raise``) or never
    returns (``hang``: a frozen replica too) by which Serve has stopped it.

    Serve marks a replica unhealthy after SERVE_REPLICA_UNHEALTHY_THRESHOLD failed checks
    in a row; each check starts ``health_check_period_s`` (+-10 %) after the previous one
    started, or at once after a hung one timed out; the replica then gets up to
    ``graceful_shutdown_timeout_s`` to stop.
    """
    period = float(settings.get("health_check_period_s", 10.0))
    timeout = float(settings.get("health_check_timeout_s", 30.0))
    if mode == "raise":
        detect = SERVE_REPLICA_UNHEALTHY_THRESHOLD * 1.1 * period
    else:
        detect = 1.1 * period + SERVE_REPLICA_UNHEALTHY_THRESHOLD * max(timeout, 1.1 * period)
    return detect + float(settings.get("graceful_shutdown_timeout_s", 20.0)) + PROBE_SLACK_S


def unhealthy_replica_bounds(mode: str) -> Any:
    """Bounds of a replica Serve must find unhealthy and replace (``raise`` / ``hang``)."""

    def bounds(settings: dict[str, Any]) -> dict[str, float]:
        kill = unhealthy_kill_bound_s(settings, mode)
        return {"max_fault_effect_s": kill, "max_recovery_s": kill + replica_start_s(settings) + REPLACE_SLACK_S}

    return bounds


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
            "max_recovery_s": max(silent, local_pods_gone, placed) + replica_start_s(settings) + REPLACE_SLACK_S}


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


def crashed_pod_failures(rate: float, settings: dict[str, Any]) -> int:
    """Most requests (a count) the front door can fail for one Ray pod that crashed: the
    pod's share of the front's ``rate`` (requests/s; the front door round-robins over the
    head and ``workers`` pods) for as long as the front door may lag (s), plus one second
    for the requests already in flight on it when it crashed."""
    pods = int(settings.get("workers", 2)) + 1
    return math.ceil(rate * (front_door_lag_s(settings) + 1.0) / pods)


def dead_proxy_replaced_s(settings: dict[str, Any], checks_time_out: bool = False) -> float:
    """From a proxy's death to its pod serving through the front door again (s): the controller's
    failed health checks (Ray does not restart a ProxyActor), the new proxy's ready check, the
    front door's lag, one probe.  proxy_failure measured 30-32 s from kill to the new proxy.
    ``checks_time_out``: the death is not known at once, so each failed check first waits out its
    timeout before the next period starts (measured after Ray's memory monitor killed a proxy:
    back 66 s after the kill, 3 x (10 + 10) + 5)."""
    per_check = SERVE_PROXY_HEALTH_CHECK_PERIOD_S + (SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S if checks_time_out else 0.0)
    checks = per_check * SERVE_PROXY_UNHEALTHY_THRESHOLD
    return checks + SERVE_PROXY_READY_TIMEOUT_S + front_door_lag_s(settings) + PROBE_SLACK_S
