"""Faults on top of faults: a second fault injected while the first is still in effect (the
controller killed halfway through a rolling update, a node lost during one).

``During(first, second, after_s)`` plans both from the same snapshot, injects ``first``, waits
``after_s`` seconds and injects ``second``: one fault record whose victims are both faults'
and whose params carry both plans' (both at the top -- the first's where both name a key -- so
each fault's checks and metrics read them as they would alone; each whole under ``during``).  Limits: only the first fault's duration, early end and end are the compound's (a second fault
with a duration of its own is not ended by the engine); the engine waits out ``after_s`` inside
``inject`` (no live view, no abort check meanwhile); and when the second fault fails to inject,
the run errors and ``cluster.heal()`` undoes both.  It is judged as a whole by the scenario's SLOs, and
per fault by ``verify``: each fault's own took-effect check on its own record, both named in the
one ``fault.took_effect`` result (which fails if either did not happen).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import ClassVar

from serve_chaos.harness.checks import CheckResult
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN
from serve_chaos.harness.faults.base import Fault, FaultPlan
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo


@dataclass(frozen=True)
class During(Fault):
    """``second`` injected ``after_s`` seconds (load running) into ``first``."""

    name: ClassVar[str] = "during"
    first: Fault = None  # type: ignore[assignment]
    second: Fault = None  # type: ignore[assignment]
    after_s: float = 20.0

    def __post_init__(self) -> None:
        if self.first is None or self.second is None:
            raise ValueError("During needs a first and a second fault")

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys(self.first.requires + self.second.requires))

    @property
    def heal_after_recovery(self) -> bool:  # type: ignore[override]
        return self.first.heal_after_recovery or self.second.heal_after_recovery

    def describe(self) -> str:
        return f"{self.first.describe()}; {self.after_s:g} s into it: {self.second.describe()}"

    def for_app(self, app: AppSpec, deployment: str | None) -> "Fault":
        return replace(self, first=self.first.for_app(app, deployment), second=self.second.for_app(app, deployment))

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        one = self.first.plan(snap, pods, rng)
        two = self.second.plan(snap, pods, rng)
        for victim in one.victims:
            victim.setdefault("fault", one.fault)
        for victim in two.victims:
            victim.setdefault("fault", two.fault)
        return FaultPlan(f"{one.fault}+{two.fault}", f"{one.description}; {self.after_s:g} s into it: "
                                                     f"{two.description}",
                         one.victims + two.victims,
                         {**two.params, **one.params, "during": {"first": _plan_dict(one), "second": _plan_dict(two),
                                                                 "after_s": self.after_s}})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        one, two = _plans(plan)
        first = self.first.inject(cluster, one)
        time.sleep(max(0.0, first.t_inject + self.after_s - time.time()))
        second = self.second.inject(cluster, two)
        during = plan.params["during"]
        during["first"]["record"] = first.to_dict()
        during["second"]["record"] = second.to_dict()
        # A fault may learn its victims only when it strikes (a health switch names the replica
        # that answered): the records' victims, not the plans'.
        victims = [{**v, "fault": f.fault} for f in (first, second) for v in f.victims]
        return FaultRecord(plan.fault, first.t_inject, second.t_end, victims,
                           {"action": "during", "first": first.action, "second": second.action}, plan.params)

    @property
    def duration_s(self) -> float | None:
        """The first fault's own duration (a drain's deadline): the engine ends it then."""
        return getattr(self.first, "duration_s", None)

    def load_rates(self) -> tuple[tuple[float, float | None], ...]:
        """The first fault's load shape (a load step with a redeploy in it)."""
        return self.first.load_rates()

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """The first fault's end (a drained node lost at its deadline); the second is healed in the
        heal phase, with everything else."""
        first, _ = _records(record)
        return self.first.end(cluster, first)

    def done_early(self, history: History, record: FaultRecord) -> bool:
        first, _ = _records(record)
        return self.first.done_early(history, first)

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        first, second = _records(record)
        return self.second.heal(cluster, second) + self.first.heal(cluster, first)

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        """Both faults took effect, each judged as it would be alone (on its own record)."""
        results = [(fault, fault.verify(history, part)) for fault, part in zip((self.first, self.second),
                                                                              _records(record))]
        failed = [f"{fault.name}: {r.detail or r.status}" for fault, r in results if r.status != PASS]
        status = FAIL if any(r.status == FAIL for _, r in results) else UNKNOWN if failed else PASS
        return CheckResult("fault.took_effect", status, None if failed else max(r.value or 0 for _, r in results),
                           unit="s", detail="; ".join(failed) or
                           "; ".join(f"{fault.name}: {r.detail}" for fault, r in results))


def _plan_dict(plan: FaultPlan) -> dict:
    return {"fault": plan.fault, "description": plan.description, "victims": plan.victims, "params": plan.params}


def _plans(plan: FaultPlan) -> tuple[FaultPlan, FaultPlan]:
    during = plan.params["during"]
    return tuple(FaultPlan(p["fault"], p["description"], p["victims"], p["params"])  # type: ignore[return-value]
                 for p in (during["first"], during["second"]))


def _records(record: FaultRecord) -> tuple[FaultRecord, FaultRecord]:
    during = record.params["during"]
    out = []
    for key in ("first", "second"):
        part = FaultRecord.from_dict(during[key]["record"])
        part.t_heal, part.heal_actions = record.t_heal, record.heal_actions
        out.append(part)
    return out[0], out[1]  # type: ignore[return-value]
