"""The experiment engine: gate -> load -> warm-up -> inject -> observe -> heal -> stop load -> check -> store.

It knows the cluster only through the Cluster protocol, and the load and the
probes through the factories it is given (Locust and the dashboard prober by
default; tests give it doubles).  Healing runs in ``finally`` -- after a failed
check, an exception, an abort, a declined ``--step`` or Ctrl-C -- *before* the
load is drained, so a fault never outlives the run by a drain; the artifacts are
written even then.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from harness.report import artifacts as report
from harness.app.selection import AppUnderTest, ScenarioSkipped
from harness.bounds import PROBE_SLACK_S, front_door_lag_s
from harness.checks import availability, evaluate_phases, first_steady_state, route_problem
from harness.faults import DoesNotApply, FaultPlan
from harness.observe.history import (REQUESTS_FILE, SERVED_BY_FILE, SNAPSHOTS_FILE, FaultRecord, History, JsonlTail,
                             read_jsonl, requests_frame)
from harness.interrupts import DeferredInterrupt
from harness.load.generator import LoadGenerator
from harness.load.spec import LoadSpec, Traffic
from harness.observe.probe import Prober, Snapshot
from harness.outcome import PromiseBroken, RunResult, SLOViolation
from harness.scenario import Phase, Scenario, scenario_rng
from harness.load.servedby import ServedByReader
from harness.load.slots import SLOTS_PREFIX, SlotTable
from harness.observe.startup import measured_start_s
from runtime.app.serve_config import restarts_replicas
from runtime.app.spec import AppSpec
from runtime.cluster import Cluster, Endpoints, PodInfo
from runtime.errors import ClusterLost, InfrastructureError, ServeChaosError
from runtime.local.procs import OWNER_ENV, ROLE_ENV, RUN_ENV
from runtime.waiting import NotYet, wait_until

__all__ = ["AbortPolicy", "Engine", "GateError", "PromiseBroken", "RunResult", "SLOViolation", "ScenarioSkipped"]

Observer = Callable[[str, dict[str, Any]], None]


class GateError(InfrastructureError):
    """The cluster was not at steady state before the fault: an error, not an SLO failure."""


class LoadLike(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def retarget(self, targets: list[dict[str, Any]]) -> None:
        """New addresses for the same endpoints, in the same order (``harness.load.slots``)."""


class ProberLike(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def copy(self) -> list[Snapshot]: ...


class ServedByLike(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def copy(self) -> list[dict[str, Any]]: ...


#: ``(spec, targets, requests_file, max_duration_s, env_markers, traffic) -> load``
LoadFactory = Callable[[LoadSpec, list[dict[str, str]], Path, float, dict[str, str], Traffic], LoadLike]
#: ``(dashboard_url, pods_fn, snapshots_file) -> prober``
ProberFactory = Callable[[str, Callable[[], list[dict[str, Any]]], Path], ProberLike]
#: ``(dashboard_url, replicas_fn, served_by_file, request_id_prefix) -> reader of Serve's request logs``
ServedByFactory = Callable[[str, Callable[[], list[dict[str, Any]]], Path, str], ServedByLike]


def _locust(spec: LoadSpec, targets: list[dict[str, str]], out: Path, max_s: float,
            markers: dict[str, str], traffic: Traffic) -> LoadLike:
    return LoadGenerator(spec, targets, out, max_s, markers, traffic)


def _dashboard_prober(dashboard: str, pods_fn: Callable[[], list[dict[str, Any]]], out: Path) -> ProberLike:
    return Prober(dashboard, pods_fn, out_path=out)


def _log_reader(dashboard: str, replicas_fn: Callable[[], list[dict[str, Any]]], out: Path,
                prefix: str) -> ServedByLike:
    return ServedByReader(dashboard, replicas_fn, out_path=out, prefix=prefix)


def recent_replicas(prober: ProberLike, last: int = 10) -> list[dict[str, Any]]:
    """Replicas of the last ``last`` good probes (about as many seconds): a replica that
    just died still has its log read once more."""
    out: dict[str, dict[str, Any]] = {}
    for snap in [s for s in prober.copy()[-last:] if s.ok]:
        for actor in snap.actors:
            if actor["role"] == "replica" and actor.get("replica_id"):
                out[actor["replica_id"]] = actor
    return list(out.values())


@dataclass(frozen=True)
class AbortPolicy:
    """Halt a run when front-door availability stays below ``min_availability``
    (ratio) over the last ``window_s`` seconds."""

    min_availability: float = 0.0
    window_s: float = 30.0


@dataclass
class _Run:
    """The state of one scenario run while it happens (times epoch s)."""

    scenario: Scenario
    app: AppSpec
    seed: int
    rng: random.Random
    run_id: str
    run_dir: Path
    started: float
    settings: dict[str, Any]
    phases: list[Phase]
    load: LoadLike
    prober: ProberLike
    served_by: ServedByLike
    faults: list[FaultRecord] = field(default_factory=list)
    plans: list[FaultPlan] = field(default_factory=list)
    recovered_live: list[float | None] = field(default_factory=list)
    t_load_start: float | None = None
    t_load_stop: float | None = None
    t_heal_start: float | None = None
    t_gate: float | None = None
    error: str = ""
    status_override: str = ""
    cluster_healthy: bool = True
    events_since: float = field(default_factory=time.time)
    #: The pod behind each of the load's slots (``harness.load.slots``).
    slots: SlotTable = field(default_factory=lambda: SlotTable([]))

    @property
    def all_recovered(self) -> bool:
        return bool(self.faults) and len(self.recovered_live) == len(self.faults) and \
            all(t is not None for t in self.recovered_live)


def _replace_fault(phase: Phase, fault: Any) -> Phase:
    from dataclasses import replace

    return phase if fault is phase.fault else replace(phase, fault=fault)


def _now_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


class Engine:
    """Runs scenarios against one cluster.

    ``confirm(plan)`` (game day ``--step``) is asked before injecting and may
    return False to skip the fault.  ``observer(event, data)`` receives progress
    (phase changes and a live tick about once a second) and must not raise.
    ``tick_s`` is how often (s) the engine looks at the history while waiting.
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
        load_factory: LoadFactory = _locust,
        prober_factory: ProberFactory = _dashboard_prober,
        tick_s: float = 1.0,
        app: AppUnderTest | None = None,
        served_by_factory: ServedByFactory = _log_reader,
        start_probe: Callable[[str, Snapshot], dict[str, float]] = measured_start_s,
    ) -> None:
        self.cluster = cluster
        self.report_dir = Path(report_dir)
        self.seed = seed
        self.observer = observer
        self.confirm = confirm
        self.abort = abort
        self.run_label = run_label
        self.load_factory = load_factory
        self.prober_factory = prober_factory
        self.tick_s = tick_s
        self.app = app or AppUnderTest()
        self.served_by_factory = served_by_factory
        self.start_probe = start_probe
        self.last_result: RunResult | None = None
        self._tail: JsonlTail | None = None

    # ------------------------------------------------------------------ helpers
    def _emit(self, event: str, **data: Any) -> None:
        if self.observer is None:
            return
        try:
            self.observer(event, data)
        except Exception:  # noqa: BLE001 - observers never abort a run
            pass

    def _history(self, run: _Run, final: bool = False, events: list[dict[str, Any]] | None = None) -> History:
        path = run.run_dir / REQUESTS_FILE
        if final:
            records = read_jsonl(path)  # everything, read afresh
        else:
            if self._tail is None or self._tail.path != path:
                self._tail = JsonlTail(path)
            records = self._tail.read()
        return History.build(
            records,
            snapshots=run.prober.copy(),
            faults=run.faults,
            events=events or [],
            t_load_start=run.t_load_start,
            t_load_stop=run.t_load_stop if final else None,
            t_heal_start=run.t_heal_start if final else None,
            load_timeout_s=run.scenario.load.timeout_s,
            desired_replicas=run.app.desired_replicas(),
            served_by=run.served_by.copy(),
        )

    def prepare(self, scenario: Scenario) -> AppSpec:
        """Bring the cluster to the scenario's settings (GCS FT, Serve config) and wait for it.
        Returns the app it deployed; ScenarioSkipped when the scenario does not apply."""
        app = self.app.app_for(scenario)
        missing = [c for c in scenario.requires if not getattr(self.cluster.capabilities, c, False)]
        if missing:
            raise ScenarioSkipped(
                f"{scenario.name} needs {', '.join(missing)}: "
                + "; ".join(self.cluster.capabilities.why_not(c) for c in missing)
            )
        self._emit("phase", name="prepare")
        desired = app.to_serve_config()
        if bool(self.cluster.settings().get("gcs_ft")) != scenario.gcs_ft:
            self.cluster.set_gcs_ft(scenario.gcs_ft, serve_config=desired)
            time.sleep(2.0)
        elif self.cluster.serve_config() != desired:
            current = self.cluster.serve_config()
            # Lightweight options are updated in place; anything else would roll every
            # replica one batch at a time, so redeploy afresh instead.
            self.cluster.apply_serve_config(desired, replace=restarts_replicas(current, desired))
            time.sleep(2.0)
        try:
            self.cluster.wait_ready(timeout_s=max(self.cluster.capabilities.ready_timeout_s, scenario.gate_timeout_s))
        except ServeChaosError as err:
            raise GateError(f"cluster not ready before {scenario.name}: {err.what}",
                            evidence=err.evidence, hint=err.hint) from None
        return app

    def _new_run(self, scenario: Scenario) -> _Run:
        seed = self.seed if self.seed is not None else random.SystemRandom().randrange(2**31)
        run_id = f"{_now_id()}-{scenario.name}-{secrets.token_hex(2)}"
        run_dir = self.report_dir / run_id
        started = time.time()
        app = self.prepare(scenario)
        run_dir.mkdir(parents=True, exist_ok=True)
        settings = dict(self.cluster.settings())
        aimed = self.app.deployment if self.app.deployment and app is self.app.base else None
        settings.update(app.recovery_settings(aimed))
        settings["app"] = app.label()
        # The Ray the cluster runs (a target records it), not necessarily the harness's own.
        settings.setdefault("ray_version", report.ray_version())
        endpoints = self.cluster.endpoints()
        slots = self._slots(scenario.load, endpoints, front_door_lag_s(settings))
        markers = {ROLE_ENV: "load", OWNER_ENV: str(os.getpid()), **({RUN_ENV: self.run_label} if self.run_label else {})}
        phases = [_replace_fault(p, p.fault.for_app(app, self.app.deployment)) for p in scenario.phases()]
        max_load_s = scenario.gate_timeout_s + scenario.warmup_s + sum(p.deadline_s + p.delay_s for p in phases) + 300
        traffic = Traffic(tuple(r.model_dump() for r in app.routes()), f"sc{secrets.token_hex(3)}", self.app.locustfile)
        load = self.load_factory(scenario.load, slots.dicts(), run_dir / REQUESTS_FILE, max_load_s, markers, traffic)
        prober = self.prober_factory(endpoints.dashboard, lambda: [p.to_dict() for p in self.cluster.pods()],
                                     run_dir / SNAPSHOTS_FILE)
        served_by = self.served_by_factory(endpoints.dashboard, lambda: recent_replicas(prober),
                                           run_dir / SERVED_BY_FILE, traffic.id_prefix)
        return _Run(scenario, app, seed, scenario_rng(seed, scenario.name), run_id, run_dir, started, settings,
                    phases, load, prober, served_by, slots=slots)

    # ------------------------------------------------------------------ the load's pods
    def _slots(self, spec: LoadSpec, endpoints: Endpoints, lag_s: float) -> SlotTable:
        """The load's endpoints at its start; ``pods:<role>`` takes the pods ready now (Serve runs a
        proxy only on nodes hosting replicas).  Slots follow pods by incarnation (``harness.load.slots``).

        A cluster is ready once its front door serves through one pod; the others pass their
        readiness check up to the front door's lag (``lag_s``, s) later, so the load waits that
        long for every running pod of a role it aims at, then takes those that are ready."""
        roles = {name.partition(":")[2] for name in spec.endpoints if name.startswith(SLOTS_PREFIX)}

        def all_ready() -> list[PodInfo]:
            pods = self.cluster.pods()
            waiting = [p.name for p in pods if p.role in roles and p.phase == "Running" and not p.ready]
            if waiting:
                raise NotYet(f"{', '.join(waiting)} not ready")
            return pods

        try:
            pods = wait_until(all_ready, lag_s + PROBE_SLACK_S, what="the pods the load aims at") if roles else []
        except ServeChaosError:
            pods = []
        pods = pods or self.cluster.pods()
        return SlotTable.start(spec.endpoints, endpoints, {p.name: p.role for p in pods},
                               {p.name for p in pods if p.ready}, {p.name: p.incarnation for p in pods})

    def _follow_pods(self, run: _Run) -> None:
        """Hand the running load the pod now behind each slot (once per tick): a recreated pod
        has a new address, and on KubeRay a new name."""
        if not any(t.follows for t in run.slots.targets):
            return
        try:
            changed = run.slots.update(self.cluster.pods(), self.cluster.endpoints())
        except ServeChaosError:
            return  # the target's API is away for a moment: the next tick looks again
        if changed:
            run.load.retarget(run.slots.dicts())

    def _clear_after(self, run: _Run, record: FaultRecord) -> None:
        """Before the next phase, undo what the target still holds of a fault that recovered (a
        lost node stays lost until healed; a second node loss would find no spare node): what
        one fault left behind is never charged to the next one."""
        try:
            actions = self.cluster.heal()
        except ServeChaosError as err:
            raise InfrastructureError(f"could not heal what {record.fault} left before the next fault: {err.what}",
                                      evidence=err.evidence, hint=err.hint) from None
        record.heal_actions += [{**a.to_dict(), "between_phases": True} for a in actions]

    # ------------------------------------------------------------------ run
    def run(self, scenario: Scenario) -> RunResult:
        try:
            run = self._new_run(scenario)
        except ScenarioSkipped as err:
            self.last_result = self._skipped(scenario, err.one_line())
            raise
        try:
            run.prober.start()
            run.served_by.start()
            run.load.start()
            run.t_load_start = time.time()
            self._emit("phase", name="warmup", seconds=scenario.warmup_s)
            time.sleep(scenario.warmup_s)
            run.t_gate = self._gate(run)
            self._measure_start(run)
            self._run_phases(run)
        except KeyboardInterrupt:
            run.status_override = "interrupted"
            run.error = "interrupted (Ctrl-C or SIGTERM); the cluster was healed"
            raise
        except ClusterLost as err:
            run.status_override, run.error = "interrupted", err.one_line()
            raise
        except ScenarioSkipped as err:
            run.status_override, run.error = "skipped", err.one_line()
            raise
        except ServeChaosError as err:
            run.error = err.one_line()
            raise
        finally:
            with DeferredInterrupt() as deferred:
                self._heal_and_stop(run)
            if deferred.interrupted and not run.status_override:
                run.status_override = "interrupted"
                run.error = run.error or "interrupted (Ctrl-C or SIGTERM) while healing; healing completed"
            result = self._conclude(run)
        if deferred.interrupted:
            raise KeyboardInterrupt
        return result

    def _run_phases(self, run: _Run) -> None:
        """Inject the phases one after another; a follow-up only after the previous one recovered."""
        for phase in run.phases:
            if run.faults and run.scenario.stop_after_s is not None and \
                    time.time() - run.faults[0].t_inject >= run.scenario.stop_after_s:
                return  # a soak's time is up: the remaining phases are simply not run
            if run.faults:
                self._clear_after(run, run.faults[-1])
            if phase.delay_s:
                self._emit("phase", name="wait", seconds=phase.delay_s)
                self._wait(run, phase.delay_s)
            try:
                plan = phase.fault.plan(self._latest_ok(run.prober), self.cluster.pods(), run.rng)
            except DoesNotApply as err:
                if run.faults:
                    raise
                raise ScenarioSkipped(f"{run.scenario.name} does not apply to {run.app.label()} on this cluster: "
                                      f"{err.what}") from None
            run.plans.append(plan)
            self._emit("plan", plan=plan, phase=phase.name)
            if self.confirm is not None and not self.confirm(plan):
                run.status_override = run.status_override or "skipped"
                run.error = run.error or f"fault {phase.name} declined at the --step prompt"
                return
            self._emit("phase", name="inject", fault=plan.description)
            record = phase.fault.inject(self.cluster, plan)
            record.phase = phase.name
            run.faults.append(record)
            self._emit("injected", record=record)
            t_rec, aborted = self._observe(run, phase)
            record.t_recovered_observed = t_rec
            run.recovered_live.append(t_rec)
            if aborted:
                run.status_override, run.error = "aborted", aborted
                return
            if t_rec is None:
                return  # a follow-up only means something after a recovery

    def _heal_and_stop(self, run: _Run) -> None:
        """Heal first, then drain the load, then wait for the cluster to settle."""
        self._emit("phase", name="heal")
        run.t_heal_start = time.time()
        if self.cluster.lost():
            run.load.stop()  # nothing left to heal, nor to settle
            run.t_load_stop = time.time()
            return
        healed = self._heal(run)
        run.load.stop()
        run.t_load_stop = time.time()
        try:
            self.cluster.wait_ready(timeout_s=max(180.0, self.cluster.capabilities.ready_timeout_s))
            if run.faults and (healed or not run.all_recovered):
                # Something was undone or never recovered: wait for steady state so the
                # next scenario starts clean.  (Without a fault there is nothing to settle
                # from: a cluster the gate found unhealthy stays the gate's finding.)
                self._settle(run)
        except ServeChaosError as err:
            run.cluster_healthy = False
            run.error = run.error or f"cluster did not return to steady state after healing: {err.what}"

    def _conclude(self, run: _Run) -> RunResult:
        """Judge the run and write its artifacts (always, whatever happened before)."""
        run.served_by.stop()
        run.prober.stop()
        history = self._history(run, final=True, events=self._events(run.events_since))
        evaluation = evaluate_phases(history, run.phases, run.scenario.hold_s, run.settings,
                                     partial_ok=run.scenario.stop_after_s is not None) if run.faults else None
        status = run.status_override or (evaluation.status if evaluation else "error")
        verdict = report.verdict(
            scenario=run.scenario, run_id=run.run_id, status=status, seed=run.seed, settings=run.settings,
            started=run.started, finished=time.time(), evaluation=evaluation, history=history,
            plans=run.plans, t_gate=run.t_gate, error=run.error, cluster_healthy=run.cluster_healthy,
            t_recovered_live=run.recovered_live, target=self.cluster.name, app=run.app,
        )
        report.write_run(run.run_dir, history, verdict)
        result = RunResult(run.scenario, run.run_id, run.run_dir, status, evaluation, history,
                           run.faults[0] if run.faults else None, verdict, run.error, run.cluster_healthy)
        self.last_result = result
        self._emit("done", result=result)
        return result

    def _skipped(self, scenario: Scenario, reason: str) -> RunResult:
        """A verdict for a scenario that does not apply here: status ``skipped`` and why."""
        run_id = f"{_now_id()}-{scenario.name}-{secrets.token_hex(2)}"
        run_dir = self.report_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        history = History(requests=requests_frame([]))
        now = time.time()
        verdict = report.verdict(
            scenario=scenario, run_id=run_id, status="skipped", seed=self.seed or 0, settings={"app": self.app.base.label()},
            started=now, finished=now, evaluation=None, history=history, plans=[], t_gate=None, error=reason,
            cluster_healthy=True, t_recovered_live=[], target=self.cluster.name)
        report.write_run(run_dir, history, verdict)
        result = RunResult(scenario, run_id, run_dir, "skipped", None, history, None, verdict, reason, True)
        self._emit("done", result=result)
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

    def _measure_start(self, run: _Run) -> None:
        """The app's slowest replica start (s), as the Serve controller logged it; the
        recovery bounds are built on it (``replica_start_s``; None if unreadable)."""
        starts = self.start_probe(self.cluster.endpoints().dashboard, self._latest_ok(run.prober))
        run.settings["replica_starts_s"] = starts
        run.settings["replica_start_s"] = max(starts.values()) if starts else None

    def _wait(self, run: _Run, seconds: float) -> None:
        """Let load run between faults, still ticking the live view."""
        end = time.time() + seconds
        while time.time() < end:
            self._check_there()
            self._follow_pods(run)
            self._emit("tick", phase="wait", history=self._history(run),
                       t_fault=run.faults[-1].t_inject if run.faults else None,
                       t_recovered=None, reason=f"next fault in {end - time.time():.0f} s")
            time.sleep(min(self.tick_s, max(0.0, end - time.time())))

    def _heal(self, run: _Run) -> bool:
        """Heal every injected fault (latest first), then whatever the cluster still has in effect.

        A fault Ray fully recovered from is healed only if its heal still has work
        to do (``heal_after_recovery``).  Returns whether anything was healed.
        """
        by_name = {p.name: p for p in run.phases}
        healed = False
        for record in reversed(run.faults):
            fault = by_name[record.phase].fault
            if run.all_recovered and not fault.heal_after_recovery:
                continue
            try:
                actions = fault.heal(self.cluster, record)
                record.heal_actions += [a.to_dict() for a in actions]
                record.t_heal = record.t_heal or time.time()
                healed = healed or bool(actions)
            except ServeChaosError as err:
                run.error = run.error or f"heal of {record.fault} failed: {err.one_line()}"
        try:
            healed = bool(self.cluster.heal()) or healed
        except ServeChaosError as err:
            run.error = run.error or f"heal failed: {err.one_line()}"
        return healed

    def _settle(self, run: _Run, timeout_s: float = 180.0) -> None:
        """Wait until the probes (no load) show steady state: the next scenario starts clean."""
        t0 = time.time()
        want = run.app.desired_replicas()

        def steady() -> None:
            history = History(requests=requests_frame([]), snapshots=run.prober.copy(), desired_replicas=want)
            t_ok, reason = first_steady_state(history, t0, run.scenario.hold_s)
            if t_ok is None:
                raise NotYet(reason)

        wait_until(steady, timeout_s, self.tick_s, what="steady state after healing")

    def _events(self, since: float) -> list[dict[str, Any]]:
        try:
            return list(self.cluster.events(since))
        except ServeChaosError:
            return []

    @staticmethod
    def _latest_ok(prober: ProberLike) -> Snapshot:
        for snap in reversed(prober.copy()):
            if snap.ok:
                return snap
        raise GateError("no successful probe of the dashboard")

    def _check_alone(self) -> None:
        """A cluster with someone else's fault, load or lock is not at steady state: a GateError."""
        found = self.cluster.interference()
        if found:
            raise GateError(f"the cluster is not ours alone: {'; '.join(found)}",
                            hint="`serve-chaos status` shows what is in effect; heal it, or wait for that run")

    def _check_there(self) -> None:
        why = self.cluster.lost()
        if why:
            raise ClusterLost(why)

    def _gate(self, run: _Run) -> float:
        """Wait until steady state holds with load flowing; else GateError."""
        scenario = run.scenario
        self._emit("phase", name="gate", timeout_s=scenario.gate_timeout_s)
        assert run.t_load_start is not None
        self._check_alone()

        def steady() -> float:
            self._check_there()
            self._follow_pods(run)
            history = self._history(run)
            wrong = route_problem(history, run.app.routes())
            if wrong:
                raise GateError(wrong, evidence=str(run.run_dir / REQUESTS_FILE),
                                hint="check --requests (path, method, expect_status) against your app")
            # Judge only a recent window: the cluster must be steady now, not earlier.
            t_from = max(run.t_load_start + 0.5, time.time() - 2 * scenario.hold_s - 2.0)
            t_steady, reason = first_steady_state(history, t_from, scenario.hold_s)
            if t_steady is None:
                self._emit("tick", phase="gate", history=history, reason=reason)
                raise NotYet(reason)
            return t_steady

        try:
            return wait_until(steady, scenario.gate_timeout_s, self.tick_s, what="steady state before the fault")
        except GateError:
            raise
        except InfrastructureError as err:
            raise GateError(err.what, evidence=str(run.run_dir),
                            hint="the cluster was unhealthy before the fault; check `serve-chaos status`") from None

    def _observe(self, run: _Run, phase: Phase) -> tuple[float | None, str]:
        """Observe one phase until recovered (plus margins) or its deadline.

        A fault with ``duration_s`` is ended (healed) that long after it began;
        recovery is then judged from the end of the fault.  Returns
        ``(t_recovered, abort reason)``.
        """
        scenario, fault = run.scenario, run.faults[-1]
        duration = getattr(phase.fault, "duration_s", None)
        self._emit("phase", name="observe", deadline_s=phase.deadline_s, fault_duration_s=duration)
        t_recovered: float | None = None
        while True:
            self._check_there()
            self._follow_pods(run)
            now = time.time()
            if duration is not None and fault.t_heal is None and now >= fault.t_inject + duration:
                actions = phase.fault.end(self.cluster, fault)
                fault.heal_actions += [a.to_dict() for a in actions]
                fault.t_heal = time.time()
                self._emit("phase", name="fault ended", fault=fault.fault)
            history = self._history(run)
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
            time.sleep(self.tick_s)
