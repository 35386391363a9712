"""Judging faults: the metrics of each fault over its own window, and its checks.

``evaluate`` judges one fault on a history; ``evaluate_phases`` cuts a run with
follow-ups into one slice per fault and merges the results, a follow-up's
check names prefixed with its phase name.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Iterable, Protocol

import pandas as pd

from serve_chaos.harness.checks.churn import check_churn, churn
from serve_chaos.harness.checks.endpoints import endpoint_hit, endpoint_roles, in_scope, is_direct
from serve_chaos.harness.checks.extra import fault_effect
from serve_chaos.harness.checks.results import FAIL, UNKNOWN, CheckResult, Evaluation, ExtraCheck, ExtraMetric
from serve_chaos.harness.checks.slo import SLO, judge
from serve_chaos.harness.checks.steady import first_steady_state, snapshot_at_or_after, snapshot_before
from serve_chaos.harness.checks.routes import route_metrics
from serve_chaos.harness.checks.timeline import PhaseWindow, availability, by_worker, endpoint_metrics
from serve_chaos.harness.load.servedby import agreement
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.hostcpu import host_cpu


def phase_window(history: History, fault: FaultRecord, t_recovered: float | None,
                 deadline_s: float | None = None, after_end: float | None = None) -> PhaseWindow:
    """The window ``fault`` is judged over (see ``PhaseWindow``)."""
    reqs = history.requests
    start = history.t_load_start
    if start is None:
        start = float(reqs["t"].min()) if not reqs.empty else fault.t_inject
    if after_end is None:
        after_end = history.t_data_end if history.t_data_end is not None else (
            float(reqs["t"].max()) + 1e-6 if not reqs.empty else fault.t_inject)
    cutoff = after_end if deadline_s is None else min(after_end, fault.t_inject + deadline_s)
    end = t_recovered if t_recovered is not None else max(fault.t_inject, cutoff)
    return PhaseWindow(start=min(start, fault.t_inject), fault=fault.t_inject, end=end,
                       recovered=t_recovered is not None, after_end=max(after_end, end))


def _recovery(history: History, fault: FaultRecord, hold_s: float, t_recovered: float | None,
              recovery_from: float | None) -> tuple[float | None, str]:
    if t_recovered is not None:
        return t_recovered, ""
    t_search = recovery_from if recovery_from is not None else fault.t_inject
    # What healing does (a config put back, a node returned) is not the fault's recovery, and the
    # reason it did not recover must describe the cluster the fault left, not the heal's.
    end = history.t_data_end
    before_heal = history if end is None else replace(history, snapshots=[s for s in history.snapshots if s.t < end])
    return first_steady_state(before_heal, t_search, hold_s, fault.victims)


def _churn_snapshots(history: History, fault: FaultRecord, t_recovered: float | None) -> Any:
    before = snapshot_before(history, fault.t_inject)
    if t_recovered is not None:
        after = snapshot_at_or_after(history, t_recovered)
    else:
        # Not recovered: the last picture before healing began.
        end = history.t_data_end if history.t_data_end is not None else float("inf")
        late = [s for s in history.snapshots if s.ok and s.t < end]
        after = late[-1] if late else None
    if not (before and after):
        return None
    between = [s for s in history.snapshots if before.t < s.t < after.t]
    return churn(before, after, between)


def _run_extras(history: History, fault: FaultRecord, extra_checks: Iterable[ExtraCheck],
                extra_metrics: Iterable[ExtraMetric]) -> tuple[list[CheckResult], dict[str, Any]]:
    checks = []
    for extra in extra_checks:
        try:
            checks.append(extra(history, fault))
        except Exception as err:  # noqa: BLE001 - a crashed check is "unknown", not a crash
            checks.append(CheckResult(getattr(extra, "__name__", "extra"), UNKNOWN,
                                      detail=f"check crashed: {type(err).__name__}: {err}"))
    measured: dict[str, Any] = {}
    for fn in extra_metrics:
        try:
            measured.update(fn(history, fault))
        except Exception as err:  # noqa: BLE001 - a broken metric must not hide the verdict
            measured[getattr(fn, "__name__", "metric")] = f"failed: {type(err).__name__}: {err}"
    return checks, measured


def evaluate(
    history: History,
    slo: SLO,
    expected_churn: dict[str, str],
    hold_s: float = 5.0,
    t_recovered: float | None = None,
    extra_checks: Iterable[ExtraCheck] = (),
    recovery_from: float | None = None,
    extra_metrics: Iterable[ExtraMetric] = (),
    verify: ExtraCheck | None = None,
    deadline_s: float | None = None,
    after_end: float | None = None,
) -> Evaluation:
    """All metrics and checks of the first fault in ``history``, over its own window.

    ``recovery_from`` (epoch s): for a fault with a duration (a partition), when
    it ended; steady state is searched from then and the recovery SLO applies to
    the time after it.  ``deadline_s``: how long recovery was waited for.
    """
    if not history.faults:
        return Evaluation({}, [CheckResult("fault.took_effect", FAIL, detail="no fault was injected")], None)
    fault = history.faults[0]
    t_recovered, not_steady = _recovery(history, fault, hold_s, t_recovered, recovery_from)
    window = phase_window(history, fault, t_recovered, deadline_s, after_end)
    reqs = history.judged_requests()
    endpoints = sorted(reqs["endpoint"].unique()) if not reqs.empty else []
    per_endpoint = {ep: endpoint_metrics(reqs[reqs["endpoint"] == ep], window, slo.degraded_threshold)
                    for ep in endpoints}
    effect = (verify or fault_effect)(history, fault)
    metrics: dict[str, Any] = {
        "t_fault": fault.t_inject,
        "t_recovered": t_recovered,
        "recovery_s": None if t_recovered is None else t_recovered - fault.t_inject,
        "fault_duration_s": None if recovery_from is None else recovery_from - fault.t_inject,
        "not_recovered_reason": not_steady if t_recovered is None else "",
        "fault_effect_s": effect.value if effect.status == "pass" else None,
        "window": window.to_dict(),
        "requests": int(len(reqs)),
        "failed": int((~reqs["ok"]).sum()) if not reqs.empty else 0,
        "availability": availability(reqs, window.start, window.after_end),
        "endpoints": per_endpoint,
        "routes": route_metrics(reqs, window),
        "load_workers": by_worker(reqs),
        "served_by": agreement(reqs),
        "churn": _churn_snapshots(history, fault, t_recovered),
        "host_cpu": host_cpu(history.snapshots, window.fault, window.end),
        "victims": fault.victims,
        "degraded_threshold": slo.degraded_threshold,
    }
    if recovery_from is not None:
        metrics["recovery_after_fault_end_s"] = None if t_recovered is None else t_recovered - recovery_from
    roles = endpoint_roles(reqs)
    others = [ep for ep in endpoints if is_direct(ep) and not endpoint_hit(ep, roles.get(ep), fault, history)]
    scopes = {scope: [ep for ep in endpoints if in_scope(ep, roles.get(ep), scope)]
              for scope in slo.endpoint_availability}
    extra_results, metrics["extra"] = _run_extras(history, fault, extra_checks, extra_metrics)
    unloaded = {scope: unloaded_reason(history, scope) for scope, eps in scopes.items() if not eps}
    checks = [effect, *judge(slo, metrics, others, scopes, unloaded)]
    checks += [check_churn(role, expectation, metrics["churn"], fault.victims)
               for role, expectation in expected_churn.items()]
    checks += extra_results
    metrics["status_by_check"] = {c.name: c.status for c in checks}
    return Evaluation(metrics, checks, t_recovered)


def unloaded_reason(history: History, scope: str) -> str:
    """Why a scope of the SLO has no judged request: its slots stood vacant the whole run (no pod
    of the role ever passed its readiness check), or the load had no such endpoint at all."""
    unsent = history.unsent
    names = set(unsent["endpoint"].astype(str)) if not unsent.empty else set()
    if scope.startswith("pods:") and any(n.startswith(f"{scope}#") for n in names):
        role = scope.partition(":")[2]
        return (f"its slots stood vacant throughout: no {role} pod passed its readiness check (Serve runs a "
                "proxy only on nodes that host replicas)")
    if scope.startswith("pods:"):
        return f"no {scope.partition(':')[2]} pod when the load started"
    return "no such endpoint in the load"


def phase_slice(history: History, record: FaultRecord, t_start: float | None, t_next: float | None) -> History:
    """The part of the timeline one fault is judged on: from ``t_start`` (the previous fault's
    recovery; None: the load's start) to where the next fault begins -- requests sent within one
    request timeout before it belong to the next (epoch s)."""
    t_cut = t_next - history.load_timeout_s if t_next is not None else None

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        keep = pd.Series(True, index=frame.index)
        if t_start is not None:
            keep &= frame["t"] >= t_start
        if t_cut is not None:
            keep &= frame["t"] < t_cut
        return frame[keep]

    return replace(
        history,
        requests=cut(history.requests),
        unsent=cut(history.unsent),
        set_aside=cut(history.set_aside),
        snapshots=[s for s in history.snapshots if (t_start is None or s.t >= t_start) and (t_next is None or s.t < t_next)],
        faults=[record],
        t_load_start=history.t_load_start if t_start is None else t_start,
        t_load_stop=history.t_load_stop if t_next is None else None,
        t_heal_start=history.t_heal_start if t_next is None else None,
    )


class PhaseLike(Protocol):
    """What ``evaluate_phases`` needs of a scenario phase (``serve_chaos.harness.scenario.Phase``)."""

    name: str
    fault: Any
    expected_churn: dict[str, str]
    extra_checks: tuple[ExtraCheck, ...]
    extra_metrics: tuple[ExtraMetric, ...]
    deadline_s: float

    def slo_for(self, settings: dict[str, Any]) -> SLO: ...


def evaluate_phases(history: History, phases: list[PhaseLike], hold_s: float,
                    settings: dict[str, Any] | None = None, partial_ok: bool = False) -> Evaluation:
    """Evaluate each injected fault on its own slice of the timeline and merge the results.

    A fault's slice ends where the next fault begins (requests sent within one
    request timeout before it belong to the next); the first phase's checks keep
    their names, a follow-up's are prefixed with its name.  ``partial_ok``: phases
    not run are reported, not failed (a soak whose time ran out).
    """
    by_name = {p.name: p for p in phases}
    merged: Evaluation | None = None
    t_start: float | None = None  # the load's start for the first fault
    for i, record in enumerate(history.faults):
        phase = by_name[record.phase]
        t_next = history.faults[i + 1].t_inject if i + 1 < len(history.faults) else None
        t_cut = t_next - history.load_timeout_s if t_next is not None else None
        sliced = phase_slice(history, record, t_start, t_next)
        # A bound may follow from what the fault's plan found (a rollout's batches): ``settings['fault']``.
        slo = phase.slo_for({**(settings or {}), "fault": record.params})
        t_from = record.t_heal if getattr(phase.fault, "duration_s", None) else None
        ev = evaluate(sliced, slo, phase.expected_churn, hold_s, t_recovered=record.t_recovered_observed,
                      extra_checks=phase.extra_checks, recovery_from=t_from, extra_metrics=phase.extra_metrics,
                      verify=phase.fault.verify, deadline_s=phase.deadline_s, after_end=t_cut)
        ev.metrics["slo"] = asdict(slo)
        # What this fault left behind is its own: the next one is judged from this one's recovery.
        t_start = next((t for t in (ev.t_recovered, record.t_recovered_observed) if t is not None), t_cut)
        if merged is None:
            merged = ev
            merged.metrics["phase"] = phase.name
            continue
        prefix = f"{phase.name}."
        merged.checks += [replace(c, name=prefix + c.name) for c in ev.checks]
        merged.metrics.setdefault("followups", {})[phase.name] = ev.metrics
        merged.metrics["status_by_check"].update({prefix + k: v for k, v in ev.metrics["status_by_check"].items()})
    assert merged is not None, "evaluate_phases needs at least one injected fault"
    missing = [p.name for p in phases if p.name not in {f.phase for f in history.faults}]
    if missing and partial_ok:
        merged.metrics["phases_not_run"] = missing
    elif missing:
        merged.checks.append(CheckResult("phases.completed", FAIL, len(history.faults), f"== {len(phases)}", "",
                                         f"not run (an earlier phase did not recover): {', '.join(missing)}"))
    return merged
