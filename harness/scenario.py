"""Declarative scenarios: steady-state gate, load, one fault, SLOs and expected churn."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from serve_chaos.harness.checks import CHURN_KINDS, SLO, ExtraCheck, ExtraMetric, valid_churn_kind
from serve_chaos.harness.deviations import Declared, ranges, why_texts
from serve_chaos.harness.faults import Fault
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.cluster import RayOptions
from serve_chaos.runtime.errors import ConfigError

#: What a scenario may need of the app under test (``Scenario.needs``).
APP_NEEDS = ("health_toggle",)


Bounds = Callable[[dict[str, Any]], dict[str, float]]


def scenario_rng(seed: int, scenario: str) -> random.Random:
    """The one random generator of a scenario run: every victim choice draws from it in
    order, so a seed reproduces the run and ``--dry-run`` names the victims it picks."""
    return random.Random(f"{seed}:{scenario}")


@dataclass(frozen=True)
class Phase:
    """One fault of a scenario with what it is judged by (times in seconds)."""

    name: str
    fault: Fault
    slo: SLO
    expected_churn: dict[str, str]
    extra_checks: tuple[ExtraCheck, ...] = ()
    min_observe_s: float = 10.0
    deadline_s: float = 90.0
    extra_metrics: tuple[ExtraMetric, ...] = ()
    #: Seconds to wait (load still running) after the previous phase before injecting.
    delay_s: float = 0.0
    #: SLO bounds that follow from the target's own timings: ``settings -> {SLO field: bound}``
    #: (``Cluster.settings()``; e.g. a node loss on Kubernetes waits for PodGC).
    bounds: Bounds | None = None

    def slo_for(self, settings: dict[str, Any]) -> SLO:
        """The SLO with the bounds this target's settings imply."""
        return replace(self.slo, **self.bounds(settings)) if self.bounds is not None else self.slo


@dataclass(frozen=True)
class Followup(Phase):
    """A fault injected after the scenario's fault recovered, to prove the cluster
    still heals (e.g. replicas after the Serve controller was replaced)."""

    deadline_s: float = 60.0


@dataclass(frozen=True)
class Scenario:
    """One experiment.  Times in seconds.

    - ``warmup_s``: load runs this long before the gate judges steady state.
    - ``hold_s``: steady state must hold this long (gate and recovery).
    - ``min_observe_s``: observe at least this long after the fault, even if
      steady state seems to hold (Ray may not have noticed the fault yet).
    - ``deadline_s``: stop waiting for recovery this long after the fault.
    - ``after_recovery_s``: keep load running this long after recovery, to
      measure availability after it.
    - ``gate_timeout_s``: how long the pre-fault steady state may take.
    - ``known_broken``: check name -> why real Ray breaks that promise; the
      scenario's test turns exactly these into a strict xfail.
    - ``known_intermittent``: check name -> why real Ray *sometimes* breaks that
      promise (a race): a run where it fails is an xfail naming it, a run where
      it holds passes -- it can never hide another failure.
    - Either may name the Ray releases it applies to with a ``KnownDeviation(why,
      since=..., fixed_in=...)`` instead of the why alone (every release):
      ``harness/deviations.py`` says what a run outside the range means.

    The app: ``app`` None runs the app under test (SleepyPid, or the user's
    ``--app``).  A scenario shaped around one of our examples names it in
    ``app``: it runs when the run tests the bundled app; with a user's app
    ``on_user_app`` says ``run`` (the user's app instead) or ``skip`` (with
    ``skip_reason``).  ``app_options``: Serve deployment options the scenario
    sets on every deployment (e.g. a fast health check).  ``needs``: what the
    app must offer (``health_toggle``), else the scenario is skipped.
    """

    name: str
    title: str
    promise: str
    fault: Fault
    slo: SLO
    expected_churn: dict[str, str]
    load: LoadSpec = field(default_factory=LoadSpec)
    app: AppSpec | None = None
    on_user_app: str = "run"
    skip_reason: str = ""
    app_options: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    gcs_ft: bool = True
    #: GCS FT backend and Serve ingress this scenario needs (None: the run's, ``--gcs-backend`` / ``--ingress``).
    gcs_backend: str | None = None
    ingress: str | None = None
    warmup_s: float = 2.0
    hold_s: float = 3.0
    min_observe_s: float = 10.0
    deadline_s: float = 90.0
    after_recovery_s: float = 0.0
    gate_timeout_s: float = 90.0
    known_broken: dict[str, Declared] = field(default_factory=dict)
    known_intermittent: dict[str, Declared] = field(default_factory=dict)
    extra_requires: tuple[str, ...] = ()
    #: Scenario-specific pure checks ``(history, fault) -> CheckResult``.
    extra_checks: tuple[ExtraCheck, ...] = ()
    #: Faults injected one after another once the previous one recovered.
    followups: tuple[Followup, ...] = ()
    #: Scenario-specific measurements ``(history, fault) -> dict`` (reported, not judged).
    extra_metrics: tuple[ExtraMetric, ...] = ()
    #: Soak runs: inject no new phase once this many seconds passed since the first fault.
    stop_after_s: float | None = None
    #: The main fault's bounds derived from the target's settings (see ``Phase.bounds``).
    bounds: Bounds | None = None

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum():
            raise ConfigError(f"scenario name {self.name!r} must be letters, digits and underscores")
        for role, kind in self.expected_churn.items():
            if role not in ("replica", "proxy", "controller", "pod"):
                raise ConfigError(f"scenario {self.name}: unknown churn role {role!r}",
                                  hint="roles are replica, proxy, controller, pod")
            if not valid_churn_kind(kind):
                raise ConfigError(f"scenario {self.name}: unknown churn expectation {kind!r}",
                                  hint=f"use one of {', '.join(CHURN_KINDS)}, none_outside:<pod>")
        try:
            self.ray_options
        except ValueError as err:
            raise ConfigError(f"scenario {self.name}: {err}") from None
        for name in ("warmup_s", "hold_s", "min_observe_s", "deadline_s", "after_recovery_s", "gate_timeout_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"scenario {self.name}: {name} must be >= 0 seconds")
        if self.deadline_s < self.min_observe_s:
            raise ConfigError(f"scenario {self.name}: deadline_s must be >= min_observe_s")
        if self.on_user_app not in ("run", "skip") or (self.on_user_app == "skip" and not self.skip_reason):
            raise ConfigError(f"scenario {self.name}: on_user_app must be run, or skip with a skip_reason")
        unknown = [n for n in self.needs if n not in APP_NEEDS]
        if unknown:
            raise ConfigError(f"scenario {self.name}: unknown app need {unknown[0]!r}",
                              hint=f"use one of {', '.join(APP_NEEDS)}")
        for phase in self.phases():
            unloaded = [scope for scope in phase.slo.endpoint_availability if scope not in self.load.endpoints]
            if unloaded:
                raise ConfigError(f"scenario {self.name}: its SLO judges endpoint {unloaded[0]!r} that its load "
                                  "does not aim at", hint=f"add it to the load's endpoints "
                                                          f"({', '.join(self.load.endpoints)})")
        names = [f.name for f in self.followups]
        if len(set(names)) != len(names) or "main" in names:
            raise ConfigError(f"scenario {self.name}: follow-up names must be unique and not 'main'")

    @property
    def requires(self) -> tuple[str, ...]:
        needs = list(self.fault.requires) + list(self.extra_requires)
        needs += [c for c, asked in (("gcs_rocksdb", self.gcs_ft and self.gcs_backend == "rocksdb"),
                                     ("serve_haproxy", self.ingress == "haproxy")) if asked]
        for followup in self.followups:
            needs += [c for c in followup.fault.requires if c not in needs]
        return tuple(dict.fromkeys(needs))

    @property
    def ray_options(self) -> RayOptions:
        return RayOptions(self.gcs_ft, self.gcs_backend, self.ingress)

    def phases(self) -> list[Phase]:
        main = Phase("main", self.fault, self.slo, self.expected_churn, self.extra_checks,
                     self.min_observe_s, self.deadline_s, self.extra_metrics, bounds=self.bounds)
        return [main, *self.followups]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "promise": self.promise,
            "fault": {"name": self.fault.name, "summary": self.fault.describe(), **asdict(self.fault)},
            "slo": asdict(self.slo),
            "expected_churn": dict(self.expected_churn),
            "load": asdict(self.load),
            "app": self.app.label() if self.app else "the app under test",
            "app_options": dict(self.app_options),
            "needs": list(self.needs),
            "gcs_ft": self.gcs_ft,
            **{k: v for k, v in (("gcs_backend", self.gcs_backend), ("ingress", self.ingress)) if v},
            "timing": {
                "warmup_s": self.warmup_s,
                "hold_s": self.hold_s,
                "min_observe_s": self.min_observe_s,
                "deadline_s": self.deadline_s,
                "after_recovery_s": self.after_recovery_s,
                "gate_timeout_s": self.gate_timeout_s,
            },
            "known_broken": why_texts(self.known_broken),
            "known_intermittent": why_texts(self.known_intermittent),
            "known_ranges": ranges({**self.known_intermittent, **self.known_broken}),
            "requires": list(self.requires),
            "extra_checks": [getattr(c, "__name__", str(c)) for c in self.extra_checks],
            "followups": [{"name": f.name, "fault": f.fault.describe(), "slo": asdict(f.slo),
                           "expected_churn": dict(f.expected_churn), "deadline_s": f.deadline_s}
                          for f in self.followups],
        }
