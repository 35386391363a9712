"""The engine's shared state and the looks every phase takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from serve_chaos.harness.app.selection import AppUnderTest
from serve_chaos.harness.engine.run import AbortPolicy, GateError, LoadFactory, Observer, ProberFactory, ProberLike, ServedByFactory
from serve_chaos.harness.faults import FaultPlan
from serve_chaos.harness.observe.history import JsonlTail
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.harness.outcome import RunResult
from serve_chaos.runtime.cluster import Cluster
from serve_chaos.runtime.errors import ClusterLost, ServeChaosError


class EngineBase:
    """What every phase of the engine shares: the cluster (through the Cluster protocol only),
    where runs are written, the observer, and the few looks every phase takes."""

    cluster: Cluster
    report_dir: Path
    seed: int | None
    observer: Observer | None
    confirm: Callable[[FaultPlan], bool] | None
    abort: AbortPolicy | None
    run_label: str | None
    load_factory: LoadFactory
    prober_factory: ProberFactory
    served_by_factory: ServedByFactory
    start_probe: Callable[[str, Snapshot], dict[str, float]]
    tick_s: float
    app: AppUnderTest
    load_workers: int
    last_result: RunResult | None
    _tail: JsonlTail | None

    def _emit(self, event: str, **data: Any) -> None:
        if self.observer is None:
            return
        try:
            self.observer(event, data)
        except Exception:  # noqa: BLE001 - observers never abort a run
            pass

    def _check_there(self) -> None:
        why = self.cluster.lost()
        if why:
            raise ClusterLost(why)

    @staticmethod
    def _latest_ok(prober: ProberLike) -> Snapshot:
        for snap in reversed(prober.copy()):
            if snap.ok:
                return snap
        raise GateError("no successful probe of the dashboard")

    def _events(self, since: float) -> list[dict[str, Any]]:
        try:
            return list(self.cluster.events(since))
        except ServeChaosError:
            return []
