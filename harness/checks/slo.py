"""SLOs as one rule table: each SLO field is judged by exactly one row.

A row names the SLO field holding the bound, the metric it bounds, where that
metric is read (``primary``: the scenario's primary endpoint; ``phase``: the
fault as a whole; ``other_pods``: every direct endpoint the fault did not hit,
judged by the worst of them; ``scopes``: each endpoint or ``pods:<role>`` scope
the field maps to a bound), whether the bound is a floor or a ceiling, and what
a missing value means (``unknown``: nothing to judge; ``fail``: the event never
happened, e.g. no recovery).  A new SLO is one field and one row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.checks.timeline import DEFAULT_DEGRADED_THRESHOLD

PRIMARY, PHASE, OTHER_PODS, SCOPES = "primary", "phase", "other_pods", "scopes"
MIN, MAX = "min", "max"


@dataclass(frozen=True)
class SLO:
    """What a scenario promises about one fault.  ``None`` means "not judged".

    Availabilities are ratios in [0, 1]; durations seconds; latency ms.  Every
    figure is taken over the fault's window (fault to recovery, or to the
    deadline), except ``min_availability`` (the whole slice of this fault, before
    and after included) and ``min_availability_after_recovery``.
    ``endpoint_availability`` maps an endpoint (``front``, ``role:head``) or a
    scope (``pods:worker``: every direct endpoint of a worker pod) to the floor of
    the availability during the fault on each matching endpoint.
    ``degraded_threshold`` is the rolling (1 s) error ratio above which an endpoint
    counts as degraded.
    """

    min_availability: float | None = None
    min_availability_during_fault: float | None = None
    min_availability_after_recovery: float | None = None
    max_outage_s: float | None = None
    max_first_success_s: float | None = None
    max_recovery_s: float | None = None
    max_p99_ms: float | None = None
    endpoint_availability: dict[str, float] = field(default_factory=dict)
    #: First to last failed request during the fault on the primary endpoint (s).
    max_failure_span_s: float | None = None
    #: Failed requests during the fault on the primary endpoint (a count).
    max_failed_during_fault: int | None = None
    #: Time the primary endpoint was degraded during the fault (s).
    max_degraded_s: float | None = None
    #: Longest stretch the primary endpoint was degraded during the fault (s).
    max_longest_degraded_s: float | None = None
    #: From the fault until every victim is gone (s), e.g. an unhealthy replica killed.
    max_fault_effect_s: float | None = None
    #: From the fault until the front door stops routing to the pod it cut off (s).
    max_front_door_drop_s: float | None = None
    #: Floor of the availability during the fault through each pod's own endpoint the
    #: fault did not hit (the guide's "other proxies keep accepting").
    other_pods_min_availability_during_fault: float | None = None
    #: Longest outage (s) through each pod's own endpoint the fault did not hit.
    other_pods_max_outage_s: float | None = None
    #: Longest degraded stretch (s) through each pod's own endpoint the fault did not hit.
    other_pods_max_longest_degraded_s: float | None = None
    #: The endpoint the headline figures are about.
    primary_endpoint: str = "front"
    degraded_threshold: float = DEFAULT_DEGRADED_THRESHOLD

    def __post_init__(self) -> None:
        for rule in RULES:
            value = getattr(self, rule.field)
            values = value.items() if isinstance(value, dict) else [(rule.field, value)]
            for key, bound in values:
                if bound is None:
                    continue
                if not isinstance(bound, (int, float)) or not math.isfinite(bound):
                    raise ValueError(f"{key} must be a finite number, got {bound!r}")
                if rule.unit == "ratio" and not 0.0 <= bound <= 1.0:
                    raise ValueError(f"{key} must be a ratio in [0, 1], got {bound}")
                if bound < 0:
                    raise ValueError(f"{key} must be >= 0, got {bound}")
        if not 0.0 <= self.degraded_threshold < 1.0:
            raise ValueError(f"degraded_threshold must be a ratio in [0, 1), got {self.degraded_threshold}")


@dataclass(frozen=True)
class Rule:
    """One SLO field: which metric it bounds, where, how, and what a missing value means."""

    field: str
    metric: str | tuple[str, ...]
    scope: str
    limit: str
    missing: str
    unit: str
    why_missing: str = "not measurable"
    #: A ceiling on an outage also fails while that outage is still open.
    open_fails: bool = False


RULES: tuple[Rule, ...] = (
    Rule("min_availability", "availability", PRIMARY, MIN, UNKNOWN, "ratio", "no requests in the window"),
    Rule("min_availability_during_fault", "availability_during_fault", PRIMARY, MIN, UNKNOWN, "ratio",
         "no requests in the window"),
    Rule("min_availability_after_recovery", "availability_after_recovery", PRIMARY, MIN, UNKNOWN, "ratio",
         "no requests after recovery"),
    Rule("max_outage_s", "longest_outage_s", PRIMARY, MAX, UNKNOWN, "s", open_fails=True),
    Rule("max_first_success_s", "first_success_s", PRIMARY, MAX, FAIL, "s", "the outage never ended"),
    Rule("max_failure_span_s", "failure_span_s", PRIMARY, MAX, UNKNOWN, "s"),
    Rule("max_failed_during_fault", "failed_during_fault", PRIMARY, MAX, UNKNOWN, "requests",
         "no requests in the window"),
    Rule("max_degraded_s", "degraded_s", PRIMARY, MAX, UNKNOWN, "s"),
    Rule("max_longest_degraded_s", "longest_degraded_s", PRIMARY, MAX, UNKNOWN, "s"),
    Rule("max_p99_ms", "p99_ms", PRIMARY, MAX, UNKNOWN, "ms"),
    Rule("max_recovery_s", ("recovery_after_fault_end_s", "recovery_s"), PHASE, MAX, FAIL, "s",
         "no steady state before the deadline"),
    Rule("max_fault_effect_s", "fault_effect_s", PHASE, MAX, FAIL, "s", "the fault did not take effect"),
    Rule("max_front_door_drop_s", "front_door_drop_s", PHASE, MAX, FAIL, "s",
         "the front door never dropped the pod while the fault lasted"),
    Rule("endpoint_availability", "availability_during_fault", SCOPES, MIN, UNKNOWN, "ratio",
         "no such endpoint in the load"),
    Rule("other_pods_min_availability_during_fault", "availability_during_fault", OTHER_PODS, MIN, UNKNOWN, "ratio",
         "no direct pod endpoint besides the victim's in the load"),
    Rule("other_pods_max_outage_s", "longest_outage_s", OTHER_PODS, MAX, UNKNOWN, "s",
         "no direct pod endpoint besides the victim's in the load", open_fails=True),
    Rule("other_pods_max_longest_degraded_s", "longest_degraded_s", OTHER_PODS, MAX, UNKNOWN, "s",
         "no direct pod endpoint besides the victim's in the load"),
)
assert {r.field for r in RULES} == {f.name for f in fields(SLO)} - {"primary_endpoint", "degraded_threshold"}


def _bound_text(limit: str, bound: float, unit: str) -> str:
    return f">= {bound}" if limit == MIN else f"<= {bound} {unit}".rstrip()


def _judge_one(name: str, rule: Rule, bound: float, value: Any, still_open: list[str], detail: str = "",
               why_missing: str = "") -> CheckResult:
    text = _bound_text(rule.limit, bound, rule.unit)
    if value is None:
        return CheckResult(name, rule.missing, None, text, rule.unit, why_missing or rule.why_missing)
    if rule.open_fails and still_open:
        return CheckResult(name, FAIL, value, text, rule.unit, f"outage still open when load stopped on "
                                                                f"{', '.join(still_open)}")
    ok = value >= bound if rule.limit == MIN else value <= bound
    return CheckResult(name, PASS if ok else FAIL, value, text, rule.unit, detail)


def _worst(rule: Rule, metric: str, endpoints: list[str], per_endpoint: dict[str, Any]) -> tuple[Any, str]:
    values = [(per_endpoint[ep][metric], ep) for ep in endpoints if per_endpoint[ep].get(metric) is not None]
    if not values:
        return None, ""
    value, worst = min(values) if rule.limit == MIN else max(values)
    return value, f"{'lowest' if rule.limit == MIN else 'highest'} on {worst} of {len(values)}"


def judge(slo: SLO, metrics: dict[str, Any], other_pods: list[str], scopes: dict[str, list[str]],
          unloaded: dict[str, str] | None = None) -> list[CheckResult]:
    """Every SLO bound set in ``slo`` against the metrics of one fault, in rule-table order.
    ``unloaded``: why a scope without endpoints had none (its slots stood vacant, ...)."""
    per_endpoint = metrics.get("endpoints") or {}
    primary = per_endpoint.get(slo.primary_endpoint)
    out: list[CheckResult] = []
    for rule in RULES:
        bound = getattr(slo, rule.field)
        if bound is None or bound == {}:
            continue
        metric = rule.metric if isinstance(rule.metric, str) else next(
            (m for m in rule.metric if m in metrics), rule.metric[-1])
        if rule.scope == PRIMARY:
            still_open = [slo.primary_endpoint] if primary and not primary.get("longest_outage_closed", True) else []
            out.append(_judge_one(f"{slo.primary_endpoint}.{metric}", rule, bound,
                                  (primary or {}).get(metric), still_open))
        elif rule.scope == PHASE:
            reason = metrics.get("not_recovered_reason") or ""
            value = metrics.get(metric, (metrics.get("extra") or {}).get(metric))
            out.append(_judge_one(metric, rule, bound, value, [],
                                  why_missing=f"{rule.why_missing} ({reason})" if reason else ""))
        elif rule.scope == OTHER_PODS:
            value, detail = _worst(rule, metric, other_pods, per_endpoint)
            still_open = [ep for ep in other_pods if not per_endpoint[ep].get("longest_outage_closed", True)]
            why = "no requests in the window" if other_pods else rule.why_missing
            out.append(_judge_one(f"other_pods.{metric}", rule, bound, value, still_open, detail, why))
        else:
            for scope, floor in bound.items():
                value, detail = _worst(rule, metric, scopes.get(scope, []), per_endpoint)
                why = "no requests in the window" if scopes.get(scope) else (unloaded or {}).get(
                    scope, rule.why_missing)
                out.append(_judge_one(f"{scope}.{metric}", rule, floor, value, [], detail, why))
    return out
