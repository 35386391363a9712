"""The experiment engine: gate -> load -> warm-up -> inject -> observe -> stop -> heal -> check -> store.

It knows the cluster only through the Cluster protocol.  Healing runs in
``finally`` -- after a failed check, an exception, a timeout or Ctrl-C -- and
the artifacts are written even then.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from harness import report
from harness.checks import FAIL, CheckResult, Evaluation, availability, evaluate, first_steady_state
from harness.faults import FaultPlan
from harness.history import REQUESTS_FILE, SNAPSHOTS_FILE, FaultRecord, History, JsonlTail, read_jsonl, requests_frame
from harness.interrupts import DeferredInterrupt
from harness.load import LoadGenerator, resolve_endpoints
from harness.observe import Prober, Snapshot
from harness.scenario import Phase, Scenario, scenario_rng
from runtime.app.serve_config import desired_replicas, health_check_settings
from runtime.cluster import Cluster
from runtime.errors import InfrastructureError, ServeChaosError
from runtime.local.procs import ROLE_ENV, RUN_ENV

Observer = Callable[[str, dict[str, Any]], None]


class GateError(InfrastructureError):
    """The cluster was not at steady state before the fault: an error, not an SLO failure."""


class ScenarioSkipped(ServeChaosError):
    """The target cannot perform this scenario's fault (capability missing)."""


class SLOViolation(AssertionError):
    """A promise the scenario states was not kept (one line per violated check)."""


class PromiseBroken(AssertionError):
    """A promise real Ray is known not to keep was broken again (drives a strict xfail)."""


@dataclass(frozen=True)
class AbortPolicy:
    """Halt a run when front-door availability stays below ``min_availability``
    (ratio) over the last ``window_s`` seconds."""

    min_availability: float = 0.0
    window_s: float = 30.0


@dataclass
class RunResult:
    scenario: Scenario
    run_id: str
    run_dir: Path
    status: str
    evaluation: Evaluation | None
    history: History
    fault: FaultRecord | None
    verdict: dict[str, Any]
    error: str = ""
    cluster_healthy: bool = True

    def violation_lines(self, names: set[str] | None = None, exclude: set[str] | None = None) -> list[str]:
        if self.evaluation is None:
            return [f"no evaluation: {self.error}"]
        lines = []
        for check in self.evaluation.violations():
            if names is not None and check.name not in names:
                continue
            if exclude is not None and check.name in exclude:
                continue
            lines.append(f"{check.line()} [{check.status}]")
        return lines

    def assert_promises(self) -> None:
        """Fail on every violated SLO; then raise PromiseBroken for the known-broken ones.

        Checks listed in ``scenario.known_broken`` are judged last and raise
        PromiseBroken (a strict xfail); any other violation raises SLOViolation
        first, so a known Ray bug can never hide an unexpected failure.
        """
        known = set(self.scenario.known_broken)
        evidence = f"(evidence: {self.run_dir / 'verdict.json'})"
        other = self.violation_lines(exclude=known)
        if other:
            raise SLOViolation("\n".join(other + [evidence]))
        broken = self.violation_lines(names=known)
        if broken:
            reasons = [f"{name}: {why}" for name, why in self.scenario.known_broken.items()]
            raise PromiseBroken("\n".join(broken + reasons + [evidence]))


def _strip_health(config: dict[str, Any]) -> dict[str, Any]:
    """A Serve config without the per-deployment health-check settings."""
    out = json.loads(json.dumps(config))
    for app in out.get("applications", []):
        for dep in app.get("deployments", []):
            dep.pop("health_check_period_s", None)
            dep.pop("health_check_timeout_s", None)
    return out


def _now_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


class Engine:
    """Runs scenarios against one cluster.

    ``confirm(plan)`` (game day ``--step``) is asked before injecting and may
    return False to skip the fault.  ``observer(event, data)`` receives progress
    (phase changes and a live tick about once a second) and must not raise.
    """

    def __init__(
        self,
        cluster: Cluster,
        report_dir: Path,
        seed: int | None = None,
        observer: Observer | None = None,
        confirm: Callable[[FaultPlan], bool] | None = None,
        abort: AbortPolicy | None = None,
        run_label: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.report_dir = Path(report_dir)
        self.seed = seed
        self.observer = observer
        self.confirm = confirm
        self.abort = abort
        self.run_label = run_label
        self._tail: JsonlTail | None = None

    # ------------------------------------------------------------------ helpers
    def _emit(self, event: str, **data: Any) -> None:
        if self.observer is None:
            return
        try:
            self.observer(event, data)
        except Exception:  # noqa: BLE001 - observers never abort a run
            pass

    def _history(self, run_dir: Path, prober: Prober | None, t_load_start: float | None,
                 t_load_stop: float | None, scenario: Scenario, faults: list[FaultRecord],
                 events: list[dict[str, Any]] | None = None) -> History:
        path = run_dir / REQUESTS_FILE
        if t_load_stop is not None:
            records = read_jsonl(path)  # final: everything, read afresh
        else:
            if self._tail is None or self._tail.path != path:
                self._tail = JsonlTail(path)
            records = self._tail.read()
        return History.build(
            records,
            snapshots=prober.copy() if prober else [],
            faults=faults,
            events=events or [],
            t_load_start=t_load_start,
            t_load_stop=t_load_stop,
            load_timeout_s=scenario.load.timeout_s,
            desired_replicas=desired_replicas(scenario.app.to_serve_config()),
        )

    def prepare(self, scenario: Scenario) -> None:
        """Bring the cluster to the scenario's settings (GCS FT, Serve config) and wait for it."""
        missing = [c for c in scenario.requires if not getattr(self.cluster.capabilities, c, False)]
        if missing:
            raise ScenarioSkipped(
                f"{scenario.name} needs {', '.join(missing)}: "
                + "; ".join(self.cluster.capabilities.why_not(c) for c in missing)
            )
        self._emit("phase", name="prepare")
        desired = scenario.app.to_serve_config()
        if bool(self.cluster.settings().get("gcs_ft")) != scenario.gcs_ft:
            self.cluster.set_gcs_ft(scenario.gcs_ft, serve_config=desired)
            time.sleep(2.0)
        elif self.cluster.serve_config() != desired:
            current = self.cluster.serve_config()
            # Health-check settings are reconfigured in place; anything else would roll
            # every replica one batch at a time, so redeploy afresh instead.
            self.cluster.apply_serve_config(desired, replace=_strip_health(current) != _strip_health(desired))
            time.sleep(2.0)
        try:
            self.cluster.wait_ready(timeout_s=max(self.cluster.capabilities.ready_timeout_s, scenario.gate_timeout_s))
        except ServeChaosError as err:
            raise GateError(f"cluster not ready before {scenario.name}: {err.what}",
                            evidence=err.evidence, hint=err.hint) from None

    # ------------------------------------------------------------------ run
    def run(self, scenario: Scenario) -> RunResult:
        seed = self.seed if self.seed is not None else random.SystemRandom().randrange(2**31)
        rng = scenario_rng(seed, scenario.name)
        run_id = f"{_now_id()}-{scenario.name}-{secrets.token_hex(2)}"
        run_dir = self.report_dir / run_id
        started = time.time()
        self.prepare(scenario)
        run_dir.mkdir(parents=True, exist_ok=True)
        settings = dict(self.cluster.settings())
        settings.update(health_check_settings(scenario.app.to_serve_config()))
        settings["ray_version"] = report.ray_version()

        endpoints = self.cluster.endpoints()
        pods = self.cluster.pods()
        roles = {p.name: p.role for p in pods}
        targets = resolve_endpoints(scenario.load, endpoints, roles, {p.name for p in pods if p.ready})
        markers = {ROLE_ENV: "load"}
        if self.run_label:
            markers[RUN_ENV] = self.run_label
        phases = scenario.phases()
        max_load_s = scenario.gate_timeout_s + scenario.warmup_s + sum(p.deadline_s for p in phases) + 300
        load = LoadGenerator(scenario.load, targets, run_dir / REQUESTS_FILE, max_load_s, markers)
        prober = Prober(endpoints.dashboard, lambda: [p.to_dict() for p in self.cluster.pods()],
                        out_path=run_dir / SNAPSHOTS_FILE)
        faults: list[FaultRecord] = []
        t_load_start: float | None = None
        t_load_stop: float | None = None
        t_gate: float | None = None
        error = ""
        status_override = ""
        cluster_healthy = True
        plans: list[FaultPlan] = []
        recovered_live: list[float | None] = []
        events_since = time.time()
        result: RunResult | None = None
        try:
            prober.start()
            load.start()
            t_load_start = time.time()
            self._emit("phase", name="warmup", seconds=scenario.warmup_s)
            time.sleep(scenario.warmup_s)
            t_gate = self._gate(scenario, run_dir, prober, t_load_start)
            for phase in phases:
                if faults and scenario.stop_after_s is not None and \
                        time.time() - faults[0].t_inject >= scenario.stop_after_s:
                    break  # a soak's time is up: the remaining phases are simply not run
                if phase.delay_s:
                    self._emit("phase", name="wait", seconds=phase.delay_s)
                    self._wait(phase.delay_s, scenario, run_dir, prober, t_load_start, faults)
                plan = phase.fault.plan(self._latest_ok(prober), self.cluster.pods(), rng)
                plans.append(plan)
                self._emit("plan", plan=plan, phase=phase.name)
                if self.confirm is not None and not self.confirm(plan):
                    status_override = status_override or "skipped"
                    error = error or f"fault {phase.name} declined at the --step prompt"
                    break
                self._emit("phase", name="inject", fault=plan.description)
                record = phase.fault.inject(self.cluster, plan)
                record.phase = phase.name
                faults.append(record)
                self._emit("injected", record=record)
                t_rec, aborted = self._observe(scenario, phase, run_dir, prober, t_load_start, faults)
                record.t_recovered_observed = t_rec
                recovered_live.append(t_rec)
                if aborted:
                    status_override, error = "aborted", aborted
                    break
                if t_rec is None:
                    break  # a follow-up only means something after a recovery
        except KeyboardInterrupt:
            status_override = "interrupted"
            error = "interrupted (Ctrl-C or SIGTERM); the cluster was healed"
            raise
        except ServeChaosError as err:
            error = err.one_line()
            raise
        finally:
            self._emit("phase", name="heal")
            with DeferredInterrupt() as deferred:
                load.stop()
                t_load_stop = time.time()
                all_recovered = bool(faults) and len(recovered_live) == len(faults) and \
                    all(t is not None for t in recovered_live)
                error, healed = self._heal(phases, faults, error, all_recovered)
                try:
                    self.cluster.wait_ready(timeout_s=max(180.0, self.cluster.capabilities.ready_timeout_s))
                    if healed or not all_recovered:
                        # Something was undone or never recovered: wait for steady state
                        # so the next scenario starts clean.
                        self._settle(scenario, run_dir, prober)
                except ServeChaosError as err:
                    cluster_healthy = False
                    error = error or f"cluster did not return to steady state after healing: {err.what}"
            if deferred.interrupted and not status_override:
                status_override = "interrupted"
                error = error or "interrupted (Ctrl-C or SIGTERM) while healing; healing completed"
            prober.stop()
            events = self._events(events_since)
            history = self._history(run_dir, prober, t_load_start, t_load_stop, scenario, faults, events)
            evaluation = evaluate_phases(history, scenario, phases, settings) if faults else None
            status = status_override or (evaluation.status if evaluation else "error")
            verdict = report.verdict(
                scenario=scenario, run_id=run_id, status=status, seed=seed, settings=settings,
                started=started, finished=time.time(), evaluation=evaluation, history=history,
                plans=plans, t_gate=t_gate, error=error, cluster_healthy=cluster_healthy,
                t_recovered_live=recovered_live, target=self.cluster.name,
            )
            report.write_run(run_dir, history, verdict)
            result = RunResult(scenario, run_id, run_dir, status, evaluation, history,
                               faults[0] if faults else None, verdict, error, cluster_healthy)
            self.last_result = result
            self._emit("done", result=result)
        if deferred.interrupted:
            raise KeyboardInterrupt
        return result

    def _abort_reason(self, history: History, fault: FaultRecord) -> str:
        """Availability over the last ``window_s`` of *judged* requests (hung requests are
        judged only when they time out) below the floor, for a full window after the fault."""
        assert self.abort is not None
        reqs = history.judged_requests()
        if reqs.empty:
            return ""
        end = min(history.judged_until(), float(reqs["t"].max()))
        if end - fault.t_inject < self.abort.window_s:
            return ""
        recent = availability(reqs, end - self.abort.window_s)
        if recent is not None and recent < self.abort.min_availability:
            return (f"aborted: availability {recent:.3f} below {self.abort.min_availability} "
                    f"for {self.abort.window_s:.0f} s")
        return ""

    def _wait(self, seconds: float, scenario: Scenario, run_dir: Path, prober: Prober, t_load_start: float,
              faults: list[FaultRecord]) -> None:
        """Let load run between faults, still ticking the live view once a second."""
        end = time.time() + seconds
        while time.time() < end:
            history = self._history(run_dir, prober, t_load_start, None, scenario, faults)
            self._emit("tick", phase="wait", history=history, t_fault=faults[-1].t_inject if faults else None,
                       t_recovered=None, reason=f"next fault in {end - time.time():.0f} s")
            time.sleep(min(1.0, max(0.0, end - time.time())))

    def _heal(self, phases: list[Phase], faults: list[FaultRecord], error: str,
              all_recovered: bool) -> tuple[str, bool]:
        """Heal every injected fault (latest first), then whatever the cluster still has in effect.

        A fault Ray fully recovered from is healed only if its heal still has work
        to do (``heal_after_recovery``).  Returns the error text and whether
        anything was healed.
        """
        by_name = {p.name: p for p in phases}
        healed = False
        for record in reversed(faults):
            fault = by_name[record.phase].fault
            if all_recovered and not fault.heal_after_recovery:
                continue
            try:
                actions = fault.heal(self.cluster, record)
                record.heal_actions += [a.to_dict() for a in actions]
                record.t_heal = record.t_heal or time.time()
                healed = healed or bool(actions)
            except ServeChaosError as err:
                error = error or f"heal of {record.fault} failed: {err.one_line()}"
        try:
            healed = bool(self.cluster.heal()) or healed
        except ServeChaosError as err:
            error = error or f"heal failed: {err.one_line()}"
        return error, healed

    def _settle(self, scenario: Scenario, run_dir: Path, prober: Prober, timeout_s: float = 180.0) -> None:
        """Wait until the probes (no load) show steady state: the next scenario starts clean."""
        t0 = time.time()
        deadline = t0 + timeout_s
        reason = ""
        while time.time() < deadline:
            history = History(requests=requests_frame([]), snapshots=prober.copy(),
                              desired_replicas=desired_replicas(scenario.app.to_serve_config()))
            t_ok, reason = first_steady_state(history, t0, 3.0)
            if t_ok is not None:
                return
            time.sleep(1.0)
        raise InfrastructureError(f"no steady state within {timeout_s:.0f} s after healing: {reason}")

    def _events(self, since: float) -> list[dict[str, Any]]:
        fetch = getattr(self.cluster, "events", None)
        if fetch is None:
            return []
        try:
            return list(fetch(since))
        except ServeChaosError:
            return []

    @staticmethod
    def _latest_ok(prober: Prober) -> Snapshot:
        for snap in reversed(prober.copy()):
            if snap.ok:
                return snap
        raise GateError("no successful probe of the dashboard")

    def _gate(self, scenario: Scenario, run_dir: Path, prober: Prober, t_load_start: float) -> float:
        """Wait until steady state holds with load flowing; else GateError."""
        self._emit("phase", name="gate", timeout_s=scenario.gate_timeout_s)
        deadline = time.time() + scenario.gate_timeout_s
        reason = ""
        while time.time() < deadline:
            now = time.time()
            history = self._history(run_dir, prober, t_load_start, None, scenario, [])
            # Judge only a recent window: the cluster must be steady now, not earlier.
            t_from = max(t_load_start + 0.5, now - 2 * scenario.hold_s - 2.0)
            t_steady, reason = first_steady_state(history, t_from, scenario.hold_s)
            if t_steady is not None:
                return t_steady
            self._emit("tick", phase="gate", history=history, reason=reason)
            time.sleep(1.0)
        raise GateError(
            f"steady state did not hold before the fault within {scenario.gate_timeout_s:.0f} s: {reason}",
            evidence=str(run_dir),
            hint="the cluster was unhealthy before the fault; check `serve-chaos status`",
        )

    def _observe(self, scenario: Scenario, phase: Phase, run_dir: Path, prober: Prober, t_load_start: float,
                 faults: list[FaultRecord]) -> tuple[float | None, str]:
        """Observe one phase until recovered (plus margins) or its deadline.

        A fault with ``duration_s`` is ended (healed) that long after it began;
        recovery is then judged from the end of the fault.  Returns
        ``(t_recovered, abort reason)``.
        """
        fault = faults[-1]
        duration = getattr(phase.fault, "duration_s", None)
        self._emit("phase", name="observe", deadline_s=phase.deadline_s, fault_duration_s=duration)
        t_recovered: float | None = None
        while True:
            now = time.time()
            if duration is not None and fault.t_heal is None and now >= fault.t_inject + duration:
                actions = phase.fault.end(self.cluster, fault)
                fault.heal_actions += [a.to_dict() for a in actions]
                fault.t_heal = time.time()
                self._emit("phase", name="fault ended", fault=fault.fault)
            history = self._history(run_dir, prober, t_load_start, None, scenario, faults)
            t_from = fault.t_heal if duration is not None else fault.t_inject
            if t_recovered is None and t_from is not None:
                t_recovered, reason = first_steady_state(history, t_from, scenario.hold_s, fault.victims)
            else:
                reason = "fault still in effect" if t_from is None else ""
            self._emit("tick", phase="observe", history=history, t_fault=fault.t_inject,
                       t_recovered=t_recovered, reason=reason)
            if self.abort is not None:
                aborted = self._abort_reason(history, fault)
                if aborted:
                    return t_recovered, aborted
            done_at = fault.t_inject + phase.min_observe_s
            if t_recovered is not None:
                done_at = max(done_at, t_recovered + scenario.hold_s + scenario.after_recovery_s)
                if now >= done_at:
                    return t_recovered, ""
            if now > fault.t_inject + phase.deadline_s:
                return t_recovered, ""
            time.sleep(1.0)



def evaluate_phases(history: History, scenario: Scenario, phases: list[Phase],
                    settings: dict[str, Any] | None = None) -> Evaluation:
    """Evaluate each injected fault on its own slice of the timeline and merge the results.

    Phase *i* sees everything before the next fault; the first phase's checks
    keep their names, a follow-up's are prefixed with its name.
    """
    by_name = {p.name: p for p in phases}
    merged: Evaluation | None = None
    for i, record in enumerate(history.faults):
        phase = by_name[record.phase]
        t_next = history.faults[i + 1].t_inject if i + 1 < len(history.faults) else float("inf")
        # Requests still in flight when the next fault hit belong to that fault.
        t_cut = t_next - history.load_timeout_s
        sliced = History(
            requests=history.requests[history.requests["t"] < t_cut] if not history.requests.empty else history.requests,
            snapshots=[s for s in history.snapshots if s.t < t_next],
            faults=[record],
            events=history.events,
            t_load_start=history.t_load_start,
            t_load_stop=history.t_load_stop if t_next == float("inf") else None,
            load_timeout_s=history.load_timeout_s,
            desired_replicas=history.desired_replicas,
        )
        t_from = record.t_heal if getattr(phase.fault, "duration_s", None) else None
        slo = phase.slo_for(settings or {})
        ev = evaluate(sliced, slo, phase.expected_churn, scenario.hold_s,
                      t_recovered=record.t_recovered_observed,
                      extra_checks=phase.extra_checks, recovery_from=t_from, extra_metrics=phase.extra_metrics,
                      verify=phase.fault.verify)
        ev.metrics["slo"] = asdict(slo)
        if merged is None:
            merged = ev
            merged.metrics["phase"] = phase.name
            continue
        prefix = f"{phase.name}."
        merged.checks += [replace(c, name=prefix + c.name) for c in ev.checks]
        merged.metrics.setdefault("followups", {})[phase.name] = ev.metrics
        merged.metrics["status_by_check"].update({prefix + k: v for k, v in ev.metrics["status_by_check"].items()})
    assert merged is not None
    missing = [p.name for p in phases if p.name not in {f.phase for f in history.faults}]
    if missing and scenario.stop_after_s is not None and history.faults:
        merged.metrics["phases_not_run"] = missing
        missing = []
    if missing:
        merged.checks.append(CheckResult("phases.completed", FAIL, len(history.faults), f"== {len(phases)}", "",
                                         f"not run (an earlier phase did not recover): {', '.join(missing)}"))
    return merged
