"""The fault catalogue: one class per fault.  Each chooses its victims, injects, heals.

A fault talks to the cluster only through the Cluster protocol.  It chooses
victims from a probe snapshot with a seeded RNG (so a seed reproduces the
choice), records them before injecting, and says what it expects to be
replaced; the engine then verifies that the victims really went away.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.history import FaultRecord
from harness.observe import Snapshot
from runtime.cluster import ActionRecord, Cluster, PodInfo
from runtime.errors import InfrastructureError


class FaultNotApplicable(InfrastructureError):
    """The cluster offers no victim for this fault right now (e.g. no replica RUNNING)."""


@dataclass
class FaultPlan:
    """What a fault will do: its victims and parameters, decided before injecting."""

    fault: str
    description: str
    victims: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    """Base class.  ``requires`` lists Capabilities flags the target must have."""

    name: ClassVar[str] = "fault"
    requires: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""

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

    def describe(self) -> str:
        return self.summary


def _pick(items: list[Any], rng: random.Random, what: str) -> Any:
    if not items:
        raise FaultNotApplicable(f"no {what} to choose a victim from")
    return rng.choice(sorted(items, key=lambda x: str(x)))


def _record(plan: FaultPlan, action: ActionRecord, t_inject: float | None = None) -> FaultRecord:
    return FaultRecord(
        fault=plan.fault,
        t_inject=t_inject if t_inject is not None else action.t_start,
        t_end=action.t_end,
        victims=plan.victims,
        action=action.to_dict(),
        params=plan.params,
    )


def _actor_victim(actor: dict[str, Any]) -> dict[str, Any]:
    return {k: actor.get(k) for k in ("role", "actor_id", "pid", "name", "pod", "node_ip")}


@dataclass(frozen=True)
class ActorKill(Fault):
    """``ray.kill`` of a Serve actor from a driver in the head pod, as the guide does."""

    role: ClassVar[str] = ""
    no_restart: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("kill_actor",)
    #: Only choose actors on pods of this role (head / worker); None = any pod.
    pod_role: str | None = None

    def candidates(self, snap: Snapshot, pods: list[PodInfo]) -> list[dict[str, Any]]:
        roles = {p.name: p.role for p in pods}
        out = []
        for actor in snap.actors:
            if actor["role"] != self.role or not actor.get("name"):
                continue
            if self.role == "replica" and actor.get("state") != "RUNNING":
                continue
            if self.pod_role and roles.get(actor.get("pod")) != self.pod_role:
                continue
            out.append(actor)
        return out

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        actor = _pick(self.candidates(snap, pods), rng, f"{self.role} actor")
        victim = _actor_victim(actor)
        return FaultPlan(
            fault=self.name,
            description=f"ray.kill({actor['name']}, no_restart={self.no_restart}) "
                        f"[{self.role} pid {actor.get('pid')} on {actor.get('pod')}]",
            victims=[victim],
            params={"no_restart": self.no_restart, "pod_role": self.pod_role},
        )

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        victim = plan.victims[0]
        action = cluster.kill_actor(victim["name"], "serve", no_restart=self.no_restart)
        # The driver reports when ray.kill itself ran; connecting took time before that.
        return _record(plan, action, action.details.get("t_kill_start"))


@dataclass(frozen=True)
class ReplicaKill(ActorKill):
    name: ClassVar[str] = "replica_kill"
    role: ClassVar[str] = "replica"
    no_restart: ClassVar[bool] = True
    summary: ClassVar[str] = "ray.kill one RUNNING SleepyPid replica with no_restart=True"


@dataclass(frozen=True)
class ProxyKill(ActorKill):
    name: ClassVar[str] = "proxy_kill"
    role: ClassVar[str] = "proxy"
    no_restart: ClassVar[bool] = False
    summary: ClassVar[str] = "ray.kill one ProxyActor with no_restart=False"


@dataclass(frozen=True)
class ControllerKill(ActorKill):
    """Kill the controller.  Healing restarts the proxies that outlived it.

    A controller recreated as a new actor is not found again by proxies that
    were subscribed to the old one (their long-poll client ends on the dead
    actor: ray-project/ray#63784); they keep routing to a frozen replica set.
    Restarting them is the operator's remedy, done after the measurements.
    """

    name: ClassVar[str] = "controller_kill"
    role: ClassVar[str] = "controller"
    no_restart: ClassVar[bool] = True
    summary: ClassVar[str] = "ray.kill the Serve controller with no_restart=True"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        plan = super().plan(snap, pods, rng)
        plan.params["proxies_before"] = sorted(a["name"] for a in snap.actors if a["role"] == "proxy" and a.get("name"))
        return plan

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        actions = cluster.heal()
        proxies = record.params.get("proxies_before") or []
        if proxies:
            actions.append(cluster.kill_actor(proxies, "serve", no_restart=True, ignore_missing=True))
        return actions


@dataclass(frozen=True)
class MassReplicaKill(Fault):
    """``ray.kill`` every RUNNING replica at once (one driver, back-to-back kills)."""

    name: ClassVar[str] = "all_replicas_kill"
    requires: ClassVar[tuple[str, ...]] = ("kill_actor",)
    summary: ClassVar[str] = "ray.kill every RUNNING replica with no_restart=True"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        victims = [_actor_victim(a) for a in snap.actors if a["role"] == "replica" and a.get("state") == "RUNNING"]
        if not victims:
            raise FaultNotApplicable("no RUNNING replica to kill")
        return FaultPlan(self.name, f"ray.kill all {len(victims)} replicas (no_restart=True)", victims,
                         {"no_restart": True})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_actor([v["name"] for v in plan.victims], "serve", no_restart=True)
        return _record(plan, action, action.details.get("t_kill_start"))


CATALOGUE: dict[str, type[Fault]] = {
    cls.name: cls for cls in (ReplicaKill, ProxyKill, ControllerKill, MassReplicaKill)
}
