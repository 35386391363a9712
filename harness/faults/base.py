"""What every fault shares: the base class, its plan, and how victims are chosen and recorded.

A fault talks to the cluster only through the Cluster protocol.  It chooses
victims from a probe snapshot with a seeded RNG (so a seed reproduces the
choice), records them before injecting, and says what it expects to be
replaced; the engine then verifies that the victims really went away.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from serve_chaos.harness.checks import CheckResult, fault_effect
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo
from serve_chaos.runtime.errors import InfrastructureError
from serve_chaos.runtime.ray_compat import FEATURE_SINCE


class FaultNotApplicable(InfrastructureError):
    """The cluster offers no victim for this fault right now (e.g. no replica RUNNING)."""


@dataclass
class FaultPlan:
    """What a fault will do: its victims and parameters, decided before injecting."""

    fault: str
    description: str
    victims: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


#: ``Fault.deployment`` meaning "a deployment that another one calls" (not an ingress).
DOWNSTREAM = "downstream"


class DoesNotApply(FaultNotApplicable):
    """The app or the cluster has nothing the fault can act on, whatever happens meanwhile (no such
    deployment, a pod without a memory limit): the scenario is skipped with this reason."""


class NoSuchDeployment(DoesNotApply):
    """The app has nothing the fault aims at (no such deployment, no downstream one)."""


@dataclass(frozen=True)
class Fault:
    """Base class.  ``requires`` lists Capabilities flags the target must have.

    ``deployment`` aims the fault: ``app/deployment`` (its replicas, or the nodes
    hosting them), ``downstream`` (a deployment other deployments call), or None
    (any replica of the app under test).
    """

    name: ClassVar[str] = "fault"
    requires: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    #: Whether ``heal`` has work to do even after Ray recovered by itself.
    heal_after_recovery: ClassVar[bool] = False
    #: Whether ``deployment`` changes what this fault does (the engine aims only these).
    aimable: ClassVar[bool] = False
    deployment: str | None = None

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        raise NotImplementedError

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        raise NotImplementedError

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """Undo what is still in effect; the default asks the cluster to heal everything."""
        return cluster.heal()

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """End a fault with a ``duration_s`` (a partition lifted, Redis back).  Default: heal."""
        return self.heal(cluster, record)

    def done_early(self, history: History, record: FaultRecord) -> bool:
        """Whether a fault with a ``duration_s`` has done all it can before that time is up (a bad
        version Serve has already given up on): the engine then ends it at once.  Default: no."""
        return False

    def load_rates(self) -> tuple[tuple[float, float | None], ...]:
        """The load's shape this fault imposes: ``(seconds after injection, requests/s per endpoint)``
        steps, ``None`` for the scenario's own rate.  Default: none (the load stays as it is)."""
        return ()

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        """Did the fault happen?  Default: every recorded victim went away."""
        return fault_effect(history, record)

    def describe(self) -> str:
        return self.summary + self.aim_text()

    def aim_text(self) -> str:
        return f" (aimed at {self.deployment})" if self.deployment else ""

    def for_app(self, app: AppSpec, deployment: str | None) -> "Fault":
        """This fault for the app under test: aimed at ``deployment`` when it is aimable and
        not aimed already (a scenario aimed at ``downstream`` stays so)."""
        if self.aimable and self.deployment is None and deployment is not None:
            return replace(self, deployment=deployment)
        return self

    def aimed_replicas(self, snap: Snapshot) -> list[dict[str, Any]]:
        """The RUNNING replicas this fault may hit, by ``deployment``."""
        return aimed(snap, self.deployment)


def aimed(snap: Snapshot, deployment: str | None) -> list[dict[str, Any]]:
    """RUNNING replicas of ``deployment`` (``app/name``, ``downstream`` or None: any).
    NoSuchDeployment when the app has none: the fault does not apply to it."""
    running = [a for a in snap.actors if a["role"] == "replica" and a.get("state") == "RUNNING"]
    if deployment is None:
        return running
    if deployment == DOWNSTREAM:
        called = {(app, dep) for app, info in snap.apps.items() for dep in info.get("downstream") or []}
        if snap.apps and not called and any(info.get("downstream", []) is None for info in snap.apps.values()):
            raise NoSuchDeployment(f"this Ray's Serve REST API does not say which deployment calls which (no "
                                   f"deployment_topology before Ray {FEATURE_SINCE['serve_topology']}): no "
                                   "deployment is known to be a downstream one to aim at")
        if snap.apps and not called:
            raise NoSuchDeployment("no deployment of the app is called by another (no DeploymentHandle "
                                   "composition): there is no downstream replica to aim at")
        return [a for a in running if (a.get("app"), a.get("deployment")) in called]
    app, _, name = deployment.partition("/")
    found = [a for a in running if a.get("app") == app and a.get("deployment") == name]
    if not found and not any(a.get("app") == app and a.get("deployment") == name
                             for a in snap.actors if a["role"] == "replica"):
        raise NoSuchDeployment(f"the app has no deployment {deployment}")
    return found


def pick(items: list[Any], rng: random.Random, what: str) -> Any:
    if not items:
        raise FaultNotApplicable(f"no {what} to choose a victim from")
    return rng.choice(sorted(items, key=lambda x: str(x)))


def record(plan: FaultPlan, action: ActionRecord, t_inject: float | None = None) -> FaultRecord:
    return FaultRecord(
        fault=plan.fault,
        t_inject=t_inject if t_inject is not None else action.t_start,
        t_end=action.t_end,
        victims=plan.victims,
        action=action.to_dict(),
        params=plan.params,
    )


def actor_victim(actor: dict[str, Any]) -> dict[str, Any]:
    return {k: actor.get(k) for k in ("role", "actor_id", "pid", "name", "pod", "node_ip", "app", "deployment",
                                      "replica_id") if k in actor or k in ("role", "actor_id", "pid", "name", "pod",
                                                                          "node_ip")}


def pod_victim(pod: PodInfo) -> dict[str, Any]:
    """A pod as a victim: this incarnation of it (UID and restart count) must go away."""
    return {"role": "pod", "name": pod.name, "uid": pod.uid, "restarts": pod.restarts, "node": pod.node,
            "ip": pod.ip, "pod_role": pod.role}


def pod_victims(snap: Snapshot, pods: list[PodInfo], names: set[str]) -> list[dict[str, Any]]:
    """A pod-level fault's victims: the pods themselves and every Serve actor on them."""
    victims: list[dict[str, Any]] = [pod_victim(p) for p in pods if p.name in names]
    victims += [actor_victim(a) for a in snap.actors if a.get("pod") in names]
    return victims


def serving_pods(snap: Snapshot, pods: list[PodInfo], role: str, deployment: str | None = None) -> list[PodInfo]:
    """Running pods of ``role`` that host at least one RUNNING replica (of ``deployment``, when
    aimed) -- so the fault costs something."""
    hosting = {a.get("pod") for a in aimed(snap, deployment)}
    return [p for p in pods if p.role == role and p.phase == "Running" and p.name in hosting]
