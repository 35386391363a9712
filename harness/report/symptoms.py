"""What a failed check looked like, as the history shows it.

A check's own detail says why its *test* failed -- for a recovery check, the
reason the last candidate steady-state window did not hold, which can be
incidental ("dashboard not answering" while the heal restarted the controller).
The symptom says what the requests in that check's phase did: "every request
through front timed out after the follow-up fault (...)".  Pure functions of a
verdict's metrics; a check whose phase failed no request keeps its own detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: How each error class reads after "every request ..." and after "N requests ...".
ERROR_VERBS = {
    "timeout": ("timed out", "timed out"),
    "refused": ("was refused", "were refused"),
    "reset": ("was reset", "were reset"),
    "unreachable": ("found its host unreachable", "found their host unreachable"),
    "5xx": ("answered 5xx", "answered 5xx"),
    "4xx": ("answered 4xx", "answered 4xx"),
    "unexpected_status": ("answered an unexpected status", "answered an unexpected status"),
    "client_overload": ("could not be sent (the load generator was saturated)",
                        "could not be sent (the load generator was saturated)"),
    "bad_body": ("answered a wrong body", "answered a wrong body"),
    "user_failure": ("was failed by your locustfile", "were failed by your locustfile"),
}
FAILED = ("failed", "failed")


@dataclass(frozen=True)
class CheckRef:
    """Where a check name points: its phase (``main`` or a follow-up), the endpoint
    or scope it judges (None: the phase as a whole) and the metric."""

    phase: str
    endpoint: str | None
    metric: str


def parse_check(name: str, followups: set[str], endpoints: set[str]) -> CheckRef:
    """``replicas_after_recovery.recovery_s`` -> (replicas_after_recovery, None, recovery_s);
    ``front.longest_outage_s`` -> (main, front, longest_outage_s)."""
    phase = "main"
    head, _, rest = name.partition(".")
    if rest and head in followups:
        phase, name = head, rest
    scope, dot, metric = name.rpartition(".")
    if not dot:
        return CheckRef(phase, None, name)
    if scope in endpoints or scope == "other_pods" or scope.startswith(("pods:", "pod:", "role:")):
        return CheckRef(phase, scope, metric)
    return CheckRef(phase, None, name)


def phase_metrics(metrics: dict[str, Any], phase: str) -> dict[str, Any]:
    if phase == "main":
        return metrics
    return ((metrics.get("followups") or {}).get(phase)) or {}


def phase_text(verdict: dict[str, Any], phase: str) -> str:
    """``the fault (ray.kill ...)`` or ``the follow-up replicas_after_recovery (ray.kill ...)``."""
    spec = verdict.get("scenario_spec") or {}
    if phase == "main":
        summary = ((spec.get("fault") or {}).get("summary")) or ""
        return f"the fault ({summary})" if summary else "the fault"
    summary = next((f.get("fault", "") for f in spec.get("followups") or [] if f.get("name") == phase), "")
    return f"the follow-up {phase} ({summary})" if summary else f"the follow-up {phase}"


def _classes_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(errors.items(), key=lambda kv: -kv[1]))


def _endpoint_for(ref: CheckRef, endpoints: dict[str, Any], detail: str) -> str | None:
    """The endpoint whose requests show the check's symptom."""
    if ref.endpoint in endpoints:
        return ref.endpoint
    if ref.endpoint == "other_pods" or (ref.endpoint or "").startswith("pods:"):
        # The rule table names the worst endpoint: "lowest on pod:worker-2 of 2".
        named = [ep for ep in endpoints if f" on {ep} of " in detail]
        if named:
            return named[0]
    failing = [(m.get("failed_during_fault") or 0, ep) for ep, m in endpoints.items()]
    worst = max(failing, default=(0, None))
    return worst[1] if worst[0] else None


def request_symptom(endpoint: str, figures: dict[str, Any], window: dict[str, Any], during: str) -> str | None:
    """What the requests through one endpoint did during a fault's window; None when none failed."""
    failed = int(figures.get("failed_during_fault") or 0)
    if not failed:
        return None
    avail = figures.get("availability_during_fault")
    total = failed if avail is None or avail >= 1 else max(failed, round(failed / (1.0 - avail)))
    errors = figures.get("errors") or {}
    span = ""
    if window.get("end") is not None and window.get("fault") is not None:
        until = "recovery" if window.get("recovered") else "the phase's deadline"
        span = f" in the {window['end'] - window['fault']:.0f} s until {until}"
    only = next(iter(errors)) if len(errors) == 1 else None
    if failed == total:
        what = f"every request through {endpoint} {ERROR_VERBS.get(only, FAILED)[0]}" if only else \
            f"every request through {endpoint} failed ({_classes_text(errors)})"
        return f"{what} after {during}: {failed} of {total}{span}{_served_text(figures)}"
    outage = figures.get("longest_outage_s")
    longest = f"; longest outage {outage:.1f} s" if outage else ""
    how = ERROR_VERBS.get(only, FAILED)[1] if only else f"failed ({_classes_text(errors)})"
    return (f"{failed} of {total} requests through {endpoint} {how} after {during}{span}{longest}"
            f"{_when_text(figures)}{_served_text(figures)}")


def _when_text(figures: dict[str, Any]) -> str:
    """When the failed requests were sent, relative to the fault or follow-up they followed (s)."""
    failures = figures.get("failures") or {}
    if failures.get("from_s") is None:
        return ""
    if failures["from_s"] == failures["to_s"]:
        return f"; sent {failures['from_s']:.1f} s after it"
    per = failures.get("per_10s")
    shape = f" ({', '.join(map(str, per))} per 10 s)" if per else ""
    return f"; sent {failures['from_s']:.1f}-{failures['to_s']:.1f} s after it{shape}"


def _served_text(figures: dict[str, Any]) -> str:
    served = int(figures.get("failed_but_served_during_fault") or 0)
    if not served:
        return ""
    pods = (figures.get("failures") or {}).get("served_by_pods") or {}
    where = f" (on {', '.join(f'{pod} {n}' for pod, n in pods.items())})" if pods else ""
    return (f"; {served} of them a replica served by Serve's own logs{where}: the answer was lost after the "
            "replica (its proxy, or the path back to the client)")


#: Checks whose own detail is only why the *last* steady-state window tried did not hold:
#: what the requests did is their symptom.
RECOVERY_METRICS = ("recovery_s", "recovery_after_fault_end_s")


def symptom(verdict: dict[str, Any], check: dict[str, Any]) -> str:
    """The behaviour a failed check stands for.

    A check about an endpoint's requests, or a recovery check: what the requests of its
    phase did (its own detail when none failed).  Any other check (a scenario's own, with
    a detail written to name the behaviour): its detail, then what the requests did."""
    metrics = verdict.get("metrics") or {}
    followups = set((metrics.get("followups") or {}).keys())
    ref = parse_check(check["name"], followups, set((metrics.get("endpoints") or {}).keys()))
    phase = phase_metrics(metrics, ref.phase)
    endpoints = phase.get("endpoints") or {}
    detail = check.get("detail") or value_line(check)
    endpoint = _endpoint_for(ref, endpoints, check.get("detail") or "")
    seen = None
    if endpoint is not None:
        seen = request_symptom(endpoint, endpoints[endpoint], phase.get("window") or {},
                               phase_text(verdict, ref.phase))
    if seen is None:
        return detail
    seen += host_text(phase.get("host_cpu") or {})
    if ref.endpoint is not None or ref.metric in RECOVERY_METRICS:
        return seen
    return f"{detail}; meanwhile {seen}"


def host_text(figures: dict[str, Any]) -> str:
    """A note when the harness's host had no CPU to spare while requests failed: they may have
    failed for want of CPU (the load generator, a proxy, a port-forward), not for Ray."""
    saturated = figures.get("saturated_s") or 0.0
    if saturated < 1.0:
        return ""
    return (f"; the harness's host was CPU-saturated (>= 95 % busy) for {saturated:.0f} s of the window "
            f"(mean {figures.get('busy_mean', 0.0):.0%} busy)")


def beyond(said: str, seen: str) -> str:
    """What ``seen`` (a symptom) adds to ``said`` (a line that already holds the check's detail)."""
    if not seen or seen in said:
        return ""
    head, sep, rest = seen.partition("; meanwhile ")
    return f"meanwhile {rest}" if sep and head in said else seen


def value_line(check: dict[str, Any]) -> str:
    """``name = value (bound ...)``, as the check line reads without its detail."""
    from serve_chaos.harness.checks.results import CheckResult

    return CheckResult(check["name"], str(check.get("status")), check.get("value"), check.get("bound"),
                       check.get("unit") or "").line()
