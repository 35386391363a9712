"""Load: a run's load, probes and served-by reader, and the pods the load aims at as they are
recreated."""

from __future__ import annotations

import os
import random
import secrets
import time

from serve_chaos.harness.bounds import PROBE_SLACK_S, front_door_lag_s
from serve_chaos.harness.engine.base import EngineBase
from serve_chaos.harness.engine.run import RunState, now_id, recent_replicas, replace_fault
from serve_chaos.harness.load.slots import SLOTS_PREFIX, SlotTable
from serve_chaos.harness.load.spec import LoadSpec, Traffic
from serve_chaos.harness.observe.history import REQUESTS_FILE, SERVED_BY_FILE, SNAPSHOTS_FILE
from serve_chaos.harness.report import artifacts as report
from serve_chaos.harness.scenario import Scenario, scenario_rng
from serve_chaos.runtime.cluster import Endpoints, PodInfo
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local.procs import OWNER_ENV, ROLE_ENV, RUN_ENV
from serve_chaos.runtime.waiting import NotYet, wait_until


class LoadPhase(EngineBase):
    """a run's load, probes and served-by reader, and the pods the load aims at as they are recreated."""

    def _new_run(self, scenario: Scenario) -> RunState:
        seed = self.seed if self.seed is not None else random.SystemRandom().randrange(2**31)
        run_id = f"{now_id()}-{scenario.name}-{secrets.token_hex(2)}"
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
        phases = [replace_fault(p, p.fault.for_app(app, self.app.deployment)) for p in scenario.phases()]
        max_load_s = scenario.gate_timeout_s + scenario.warmup_s + sum(p.deadline_s + p.delay_s for p in phases) + 300
        traffic = Traffic(tuple(r.model_dump() for r in app.routes()), f"sc{secrets.token_hex(3)}", self.app.locustfile,
                          self.load_workers)
        load = self.load_factory(scenario.load, slots.dicts(), run_dir / REQUESTS_FILE, max_load_s, markers, traffic)
        prober = self.prober_factory(endpoints.dashboard, lambda: [p.to_dict() for p in self.cluster.pods()],
                                     run_dir / SNAPSHOTS_FILE)
        served_by = self.served_by_factory(endpoints.dashboard, lambda: recent_replicas(prober),
                                           run_dir / SERVED_BY_FILE, traffic.id_prefix)
        return RunState(scenario, app, seed, scenario_rng(seed, scenario.name), run_id, run_dir, started, settings,
                    phases, load, prober, served_by, slots=slots)

    def _slots(self, spec: LoadSpec, endpoints: Endpoints, lag_s: float) -> SlotTable:
        """The load's endpoints at its start; ``pods:<role>`` takes the pods ready now (Serve runs a
        proxy only on nodes hosting replicas).  Slots follow pods by incarnation (``serve_chaos.harness.load.slots``).

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

    def _follow_pods(self, run: RunState) -> None:
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
