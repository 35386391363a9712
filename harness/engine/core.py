"""The engine: one class per phase (``gate``, ``load``, ``inject``, ``observe``, ``heal``,
``judge``), put together; ``run`` is the whole experiment on one screen."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from serve_chaos.harness.app.selection import AppUnderTest, ScenarioSkipped
from serve_chaos.harness.engine.gate import GatePhase
from serve_chaos.harness.engine.heal import HealPhase
from serve_chaos.harness.engine.inject import InjectPhase
from serve_chaos.harness.engine.judge import JudgePhase
from serve_chaos.harness.engine.load import LoadPhase
from serve_chaos.harness.engine.observe import ObservePhase
from serve_chaos.harness.engine.run import (AbortPolicy, LoadFactory, Observer, ProberFactory, ServedByFactory, default_load,
                                default_prober, default_served_by)
from serve_chaos.harness.faults import FaultPlan
from serve_chaos.harness.interrupts import DeferredInterrupt
from serve_chaos.harness.observe.history import JsonlTail
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.harness.observe.startup import measured_start_s
from serve_chaos.harness.outcome import RunResult
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.cluster import Cluster
from serve_chaos.runtime.errors import ClusterLost, ServeChaosError


class Engine(GatePhase, LoadPhase, InjectPhase, ObservePhase, HealPhase, JudgePhase):
    """Runs scenarios against one cluster.

    ``confirm(plan)`` (game day ``--step``) is asked before injecting and may
    return False to skip the fault.  ``observer(event, data)`` receives progress
    (phase changes and a live tick about once a second) and must not raise.
    ``tick_s`` is how often (s) the engine looks at the history while waiting.
    ``load_workers``: Locust worker processes per run's load (``--load-workers``).
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
        load_factory: LoadFactory = default_load,
        prober_factory: ProberFactory = default_prober,
        tick_s: float = 1.0,
        app: AppUnderTest | None = None,
        served_by_factory: ServedByFactory = default_served_by,
        start_probe: Callable[[str, Snapshot], dict[str, float]] = measured_start_s,
        load_workers: int = 1,
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
        self.load_workers = load_workers
        self.last_result: RunResult | None = None
        self._tail: JsonlTail | None = None

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
