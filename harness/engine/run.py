"""What one run is made of: its state while it happens, the load, probe and served-by factories
the engine is given (Locust and the dashboard by default; tests give doubles), the abort policy."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from serve_chaos.harness.faults import FaultPlan
from serve_chaos.harness.load.generator import LoadGenerator
from serve_chaos.harness.load.servedby import ServedByReader
from serve_chaos.harness.load.slots import SlotTable
from serve_chaos.harness.load.spec import LoadSpec, Traffic
from serve_chaos.harness.observe.history import FaultRecord
from serve_chaos.harness.observe.probe import Prober, Snapshot
from serve_chaos.harness.scenario import Phase, Scenario
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.errors import InfrastructureError


Observer = Callable[[str, dict[str, Any]], None]


class GateError(InfrastructureError):
    """The cluster was not at steady state before the fault: an error, not an SLO failure."""


class LoadLike(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def retarget(self, targets: list[dict[str, Any]]) -> None:
        """New addresses for the same endpoints, in the same order (``serve_chaos.harness.load.slots``)."""

    def set_rates(self, rates: list[tuple[float, float]]) -> None:
        """From each ``(epoch s, rate)`` on, that many requests per second per endpoint."""


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


def default_load(spec: LoadSpec, targets: list[dict[str, str]], out: Path, max_s: float,
                 markers: dict[str, str], traffic: Traffic) -> LoadLike:
    return LoadGenerator(spec, targets, out, max_s, markers, traffic)


def default_prober(dashboard: str, pods_fn: Callable[[], list[dict[str, Any]]], out: Path) -> ProberLike:
    return Prober(dashboard, pods_fn, out_path=out)


def default_served_by(dashboard: str, replicas_fn: Callable[[], list[dict[str, Any]]], out: Path,
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
class RunState:
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
    #: The pod behind each of the load's slots (``serve_chaos.harness.load.slots``).
    slots: SlotTable = field(default_factory=lambda: SlotTable([]))

    @property
    def all_recovered(self) -> bool:
        return bool(self.faults) and len(self.recovered_live) == len(self.faults) and \
            all(t is not None for t in self.recovered_live)


def replace_fault(phase: Phase, fault: Any) -> Phase:
    from dataclasses import replace

    return phase if fault is phase.fault else replace(phase, fault=fault)


def now_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
