"""Checks: pure functions of a History.  No I/O, no clock, no cluster.

- ``timeline``: availability, outages, brownouts and latency over a window; a fault's window.
- ``identity``: lives of actors and pods, victims.
- ``steady``: steady state and recovery.
- ``churn``: what was replaced, against what a scenario expects.
- ``slo``: the SLO fields and the one rule table that judges them.
- ``extra``: did the fault happen; scenario-specific checks and measurements.
- ``evaluate``: one fault's metrics and checks; a run's phases merged.
"""

from serve_chaos.harness.checks.churn import CHURN_KINDS, NONE_OUTSIDE, check_churn, churn, valid_churn_kind
from serve_chaos.harness.checks.endpoints import endpoint_hit, endpoint_roles, in_scope, is_direct
from serve_chaos.harness.checks.evaluate import evaluate, evaluate_phases, phase_window
from serve_chaos.harness.checks.extra import (capacity_floor, dashboard_downtime, failures_after_fault, fault_effect, front_door_drop, partition_effect,
                                  proxy_restarted_by_ray, ray_node_death, recreated_pods, replica_spread,
                                  replicas_by_pod, serve_when_ready, strict_spread)
from serve_chaos.harness.checks.identity import (ROLES, actor_key, pod_lives, pod_roles, replica_keys, role_keys, victim_key,
                                     victim_present, victims_observable)
from serve_chaos.harness.checks.routes import route_metrics, route_problem
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult, Evaluation, ExtraCheck, ExtraMetric, combine
from serve_chaos.harness.checks.slo import RULES, SLO, Rule, judge
from serve_chaos.harness.checks.steady import (SteadyState, first_steady_state, proxy_reach_problems, snapshot_at_or_after,
                                   snapshot_before, steady_state_over)
from serve_chaos.harness.checks.timeline import (PhaseWindow, Window, availability, brownout, degraded_spans, endpoint_metrics,
                                     error_buckets, error_classes, failure_span, first_success_after, latency_percentiles,
                                     longest_outage, outage_windows, rolling_error_ratio, service_restored_after)

__all__ = [
    "CHURN_KINDS",
    "CheckResult",
    "Evaluation",
    "ExtraCheck",
    "ExtraMetric",
    "FAIL",
    "NONE_OUTSIDE",
    "PASS",
    "PhaseWindow",
    "ROLES",
    "RULES",
    "Rule",
    "SLO",
    "SteadyState",
    "UNKNOWN",
    "Window",
    "actor_key",
    "availability",
    "brownout",
    "capacity_floor",
    "check_churn",
    "churn",
    "combine",
    "dashboard_downtime",
    "degraded_spans",
    "endpoint_hit",
    "endpoint_metrics",
    "endpoint_roles",
    "error_buckets",
    "error_classes",
    "evaluate",
    "evaluate_phases",
    "failure_span",
    "failures_after_fault",
    "fault_effect",
    "first_steady_state",
    "first_success_after",
    "front_door_drop",
    "in_scope",
    "is_direct",
    "judge",
    "latency_percentiles",
    "longest_outage",
    "outage_windows",
    "partition_effect",
    "phase_window",
    "pod_lives",
    "pod_roles",
    "proxy_reach_problems",
    "proxy_restarted_by_ray",
    "ray_node_death",
    "recreated_pods",
    "replica_keys",
    "replica_spread",
    "replicas_by_pod",
    "role_keys",
    "rolling_error_ratio",
    "route_metrics",
    "route_problem",
    "serve_when_ready",
    "service_restored_after",
    "snapshot_at_or_after",
    "snapshot_before",
    "steady_state_over",
    "strict_spread",
    "valid_churn_kind",
    "victim_key",
    "victim_present",
    "victims_observable",
]
