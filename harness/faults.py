"""The fault catalogue: one class per fault.  Each chooses its victims, injects, heals.

A fault talks to the cluster only through the Cluster protocol.  It chooses
victims from a probe snapshot with a seeded RNG (so a seed reproduces the
choice), records them before injecting, and says what it expects to be
replaced; the engine then verifies that the victims really went away.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from harness.checks import CheckResult, fault_effect, partition_effect
from harness.history import FaultRecord, History
from harness.observe import Snapshot
from runtime.app.spec import HEALTH_ROUTE, AppSpec
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


#: ``Fault.deployment`` meaning "a deployment that another one calls" (not an ingress).
DOWNSTREAM = "downstream"


class NoSuchDeployment(FaultNotApplicable):
    """The app has nothing the fault aims at (no such deployment, no downstream one):
    the scenario does not apply to this app, it is skipped with this reason."""


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
    return {k: actor.get(k) for k in ("role", "actor_id", "pid", "name", "pod", "node_ip", "app", "deployment",
                                      "replica_id") if k in actor or k in ("role", "actor_id", "pid", "name", "pod",
                                                                          "node_ip")}


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
        aimed_ids = {a.get("actor_id") for a in self.aimed_replicas(snap)} if self.role == "replica" else None
        out = []
        for actor in snap.actors:
            if aimed_ids is not None and actor.get("actor_id") not in aimed_ids:
                continue
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
    aimable: ClassVar[bool] = True
    summary: ClassVar[str] = "ray.kill one RUNNING replica with no_restart=True"


@dataclass(frozen=True)
class ProxyKill(ActorKill):
    """A proxy; aimed at a deployment, the proxy of a node that hosts one of its replicas."""

    name: ClassVar[str] = "proxy_kill"
    role: ClassVar[str] = "proxy"
    no_restart: ClassVar[bool] = False
    aimable: ClassVar[bool] = True
    summary: ClassVar[str] = "ray.kill one ProxyActor with no_restart=False"

    def candidates(self, snap: Snapshot, pods: list[PodInfo]) -> list[dict[str, Any]]:
        found = super().candidates(snap, pods)
        if self.deployment is None:
            return found
        hosts = {a.get("node_id") for a in self.aimed_replicas(snap)}
        return [a for a in found if a.get("node_id") in hosts]


@dataclass(frozen=True)
class ControllerKill(ActorKill):
    """Kill the controller.  Healing restarts the proxies that outlived it.

    A controller recreated as a new actor is not found again by proxies that
    were subscribed to the old one (their long-poll client ends on the dead
    actor: ray-project/ray#63784); they keep routing to a frozen replica set.
    Restarting them is the operator's remedy, done after the measurements.
    The replacement controller is killed with them: the one the operator then
    starts creates missing proxies at once, where a running controller only
    notices dead ones after its proxy health checks fail (about 30 s).
    """

    name: ClassVar[str] = "controller_kill"
    role: ClassVar[str] = "controller"
    no_restart: ClassVar[bool] = True
    summary: ClassVar[str] = "ray.kill the Serve controller with no_restart=True"
    heal_after_recovery: ClassVar[bool] = True

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        plan = super().plan(snap, pods, rng)
        plan.params["proxies_before"] = sorted(a["name"] for a in snap.actors if a["role"] == "proxy" and a.get("name"))
        return plan

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        actions = cluster.heal()
        proxies = record.params.get("proxies_before") or []
        if proxies:
            controllers = [v["name"] for v in record.victims if v.get("role") == "controller"]
            actions.append(cluster.kill_actor(proxies + controllers, "serve", no_restart=True, ignore_missing=True))
        return actions


@dataclass(frozen=True)
class MassReplicaKill(Fault):
    """``ray.kill`` every RUNNING replica at once (one driver, back-to-back kills)."""

    name: ClassVar[str] = "all_replicas_kill"
    requires: ClassVar[tuple[str, ...]] = ("kill_actor",)
    aimable: ClassVar[bool] = True
    summary: ClassVar[str] = "ray.kill every RUNNING replica with no_restart=True"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        victims = [_actor_victim(a) for a in self.aimed_replicas(snap)]
        if not victims:
            raise FaultNotApplicable("no RUNNING replica to kill")
        return FaultPlan(self.name, f"ray.kill all {len(victims)} replicas (no_restart=True)", victims,
                         {"no_restart": True})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_actor([v["name"] for v in plan.victims], "serve", no_restart=True)
        return _record(plan, action, action.details.get("t_kill_start"))


def pod_victim(pod: PodInfo) -> dict[str, Any]:
    """A pod as a victim: this incarnation of it (UID and restart count) must go away."""
    return {"role": "pod", "name": pod.name, "uid": pod.uid, "restarts": pod.restarts, "node": pod.node,
            "ip": pod.ip, "pod_role": pod.role}


def _pod_victims(snap: Snapshot, pods: list[PodInfo], names: set[str]) -> list[dict[str, Any]]:
    """A pod-level fault's victims: the pods themselves and every Serve actor on them."""
    victims: list[dict[str, Any]] = [pod_victim(p) for p in pods if p.name in names]
    victims += [_actor_victim(a) for a in snap.actors if a.get("pod") in names]
    return victims


def _serving_pods(snap: Snapshot, pods: list[PodInfo], role: str, deployment: str | None = None) -> list[PodInfo]:
    """Running pods of ``role`` that host at least one RUNNING replica (of ``deployment``, when
    aimed) -- so the fault costs something."""
    hosting = {a.get("pod") for a in aimed(snap, deployment)}
    return [p for p in pods if p.role == role and p.phase == "Running" and p.name in hosting]


@dataclass(frozen=True)
class PodKill(Fault):
    """Delete a pod like ``kubectl delete pod``: preStop ``ray stop`` (workers), SIGTERM,
    grace period, SIGKILL; the supervisor recreates it.  ``graceful=False`` is a force delete."""

    name: ClassVar[str] = "pod_kill"
    requires: ClassVar[tuple[str, ...]] = ("kill_pod",)
    summary: ClassVar[str] = "delete one pod (kubectl delete pod)"
    aimable: ClassVar[bool] = True
    pod_role: str = "worker"
    graceful: bool = True
    grace_period_s: float = 30.0
    #: The head without GCS FT: every Ray pod and Serve actor is expected to be replaced.
    restarts_cluster: bool = False

    def for_app(self, app: AppSpec, deployment: str | None) -> "Fault":
        # There is one head: aiming it at a deployment would change nothing.
        return self if self.pod_role == "head" else super().for_app(app, deployment)

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        if self.pod_role == "head":
            candidates = [p for p in pods if p.role == "head" and p.phase == "Running"]
        else:
            candidates = _serving_pods(snap, pods, self.pod_role, self.deployment)
        pod = _pick(candidates, rng, f"Running {self.pod_role} pod hosting replicas")
        if self.restarts_cluster:
            victims = _pod_victims(snap, pods, {p.name for p in pods if p.role in ("head", "worker")})
        else:
            victims = _pod_victims(snap, pods, {pod.name})
        if pod.role == "head" and not self.restarts_cluster:
            victims += [_actor_victim(a) for a in snap.actors if a["role"] == "controller" and a.get("pod") != pod.name]
        how = "graceful" if self.graceful else "force"
        return FaultPlan(self.name, f"delete pod {pod.name} ({how}) on {pod.node}: "
                                    f"{sum(v['role'] == 'replica' for v in victims)} replicas on it",
                         victims, {"pod": pod.name, "graceful": self.graceful, "grace_period_s": self.grace_period_s})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_pod(plan.params["pod"], graceful=self.graceful, grace_period_s=self.grace_period_s)
        return _record(plan, action)

    def describe(self) -> str:
        return f"delete a {self.pod_role} pod ({'graceful' if self.graceful else 'force'})" + self.aim_text()


@dataclass(frozen=True)
class NodeLoss(Fault):
    """Lose a node abruptly: its network goes silent, then its pods are SIGKILLed; a
    replacement pod comes up on a spare node after ``replacement_delay_s``."""

    name: ClassVar[str] = "node_loss"
    requires: ClassVar[tuple[str, ...]] = ("kill_node",)
    summary: ClassVar[str] = "lose a worker node (network cut, then SIGKILL)"
    aimable: ClassVar[bool] = True
    pod_role: str = "worker"
    replacement_delay_s: float = 10.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        serving = _serving_pods(snap, pods, self.pod_role, self.deployment)
        # Soft spreading may put every replica on the head (6/0/0 was seen): losing a
        # worker node then costs its pod and proxy only -- still a node loss to survive.
        note = "" if serving else "; soft spreading left no replica on any worker node"
        running = [p for p in pods if p.role == self.pod_role and p.phase == "Running"]
        pod = _pick(serving or running, rng, f"Running {self.pod_role} node")
        on_node = {p.name for p in pods if p.node == pod.node}
        victims = _pod_victims(snap, pods, on_node)
        ray_nodes = [n for n in snap.nodes if n.get("pod") in on_node]
        return FaultPlan(self.name, f"lose node {pod.node} (pods {', '.join(sorted(on_node))}; "
                                    f"{sum(v['role'] == 'replica' for v in victims)} replicas{note})",
                         victims, {"node": pod.node, "replacement_delay_s": self.replacement_delay_s,
                                   "ray_node_ids": [n["node_id"] for n in ray_nodes]})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_node(plan.params["node"], replacement_delay_s=self.replacement_delay_s)
        return _record(plan, action)


@dataclass(frozen=True)
class PodPartition(Fault):
    """Cut one pod off the network (silent drops both ways) for ``duration_s``, then heal."""

    name: ClassVar[str] = "pod_partition"
    requires: ClassVar[tuple[str, ...]] = ("partition_pod",)
    summary: ClassVar[str] = "partition one worker pod from everything, then heal"
    aimable: ClassVar[bool] = True
    pod_role: str = "worker"
    duration_s: float = 30.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        pod = _pick(_serving_pods(snap, pods, self.pod_role, self.deployment), rng,
                    f"{self.pod_role} pod hosting replicas")
        ray_nodes = [n["node_id"] for n in snap.nodes if n.get("pod") == pod.name]
        # Nothing is expected to go away: the pod is only unreachable for a while.
        return FaultPlan(self.name, f"partition pod {pod.name} for {self.duration_s:g} s", [],
                         {"pod": pod.name, "duration_s": self.duration_s, "ray_node_ids": ray_nodes})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        return _record(plan, cluster.partition_pod(plan.params["pod"]))

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        return [cluster.unpartition_pod(record.params["pod"])]

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        return partition_effect(history, record)

    def describe(self) -> str:
        return f"partition a {self.pod_role} pod for {self.duration_s:g} s, then heal" + self.aim_text()


@dataclass(frozen=True)
class RedisLoss(Fault):
    """SIGKILL the Redis pod (the GCS store) and keep it down for ``duration_s``."""

    name: ClassVar[str] = "redis_loss"
    requires: ClassVar[tuple[str, ...]] = ("kill_redis",)
    summary: ClassVar[str] = "kill Redis (the GCS store) while the head is up; it returns after a while"
    duration_s: float = 20.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        redis = _pick([p for p in pods if p.role == "redis" and p.phase == "Running"], rng, "Running Redis pod")
        return FaultPlan(self.name, f"kill {redis.name} for {self.duration_s:g} s", [pod_victim(redis)],
                         {"pod": redis.name, "duration_s": self.duration_s})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_pod(plan.params["pod"], graceful=False, down_for_s=self.duration_s)
        return _record(plan, action)

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        # Release the hold now (the supervisor would also let it go by itself).
        return cluster.heal()


@dataclass(frozen=True)
class HealthCheckFailure(Fault):
    """Make one replica's ``check_health`` raise (or hang) through the app's own route.

    The switch is an HTTP request through the front door, so the victim is
    whichever replica Serve routes it to; the reply names its PID.
    """

    name: ClassVar[str] = "health_check_failure"
    requires: ClassVar[tuple[str, ...]] = ("kill_actor",)
    mode: str = "raise"
    #: The app's toggle route (its route prefix + HEALTH_ROUTE).
    path: str = HEALTH_ROUTE

    def for_app(self, app: AppSpec, deployment: str | None) -> "Fault":
        return replace(self, path=app.health_toggle_path() or self.path)

    def __post_init__(self) -> None:
        if self.mode not in ("raise", "hang"):
            raise ValueError(f"mode must be raise or hang, got {self.mode!r}")

    def describe(self) -> str:
        return f"one replica's check_health starts to {self.mode} (switched on over HTTP)"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        replicas = [_actor_victim(a) for a in snap.actors
                    if a["role"] == "replica" and a.get("state") == "RUNNING" and a.get("pid")]
        if not replicas:
            raise FaultNotApplicable("no RUNNING replica to make unhealthy")
        # Through one pod's own proxy, which prefers its node's replicas: the reply's
        # PID then names a replica on that pod (PIDs repeat across pods on Kubernetes).
        pod = _pick(sorted({r["pod"] for r in replicas if r.get("pod")}), rng, "pod hosting replicas")
        return FaultPlan(self.name, f"POST {self.path}?mode={self.mode} to the proxy of pod {pod} "
                                    "(the replica it reaches is the victim)", [],
                         {"mode": self.mode, "pod": pod, "replicas": replicas})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        import requests

        pod = plan.params["pod"]
        base = cluster.endpoints().pods.get(pod)
        if base is None:
            raise InfrastructureError(f"pod {pod} has no Serve endpoint to switch a health check through")
        t0 = time.time()
        try:
            body = requests.post(f"{base}{self.path}?mode={self.mode}", timeout=10).json()
        except (requests.RequestException, ValueError) as err:
            raise InfrastructureError(f"could not switch a replica's health check: {err}") from None
        t1 = time.time()
        victim = replica_answering(plan.params["replicas"], body.get("pid"), pod)
        plan.victims = [victim]
        plan.description = f"check_health of replica pid {victim['pid']} on {victim.get('pod')} now {self.mode}s"
        action = ActionRecord("health_switch", victim["name"], t0, t1, {"pid": victim["pid"], "mode": self.mode})
        return _record(plan, action, t1)

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """If Serve never replaced the victim, kill it so a healthy replica takes its place."""
        actions = cluster.heal()
        for victim in record.victims:
            actions.append(cluster.kill_actor(victim["name"], "serve", no_restart=True, ignore_missing=True))
        return actions


@dataclass(frozen=True)
class ReplicaHang(Fault):
    """Freeze one RUNNING replica's process (SIGSTOP): Ray still counts it alive, it
    answers nothing -- requests, handle calls, health checks -- until Serve's health
    check times out and the controller replaces it.  Works on any app.  Heal: SIGCONT
    whatever is still frozen (Serve's kill ends a stopped process too)."""

    name: ClassVar[str] = "replica_hang"
    requires: ClassVar[tuple[str, ...]] = ("signal_process",)
    aimable: ClassVar[bool] = True
    heal_after_recovery: ClassVar[bool] = True
    summary: ClassVar[str] = "freeze one RUNNING replica's process (SIGSTOP)"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        replica = _pick([a for a in self.aimed_replicas(snap) if a.get("pid") and a.get("pod")], rng,
                        "RUNNING replica with a known PID and pod")
        return FaultPlan(self.name, f"SIGSTOP replica {replica.get('app')}/{replica.get('deployment')} "
                                    f"pid {replica['pid']} on {replica['pod']}",
                         [_actor_victim(replica)], {"pod": replica["pod"], "pid": replica["pid"]})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        return _record(plan, cluster.signal_process(plan.params["pod"], int(plan.params["pid"]), "STOP"))


def replica_answering(replicas: list[dict[str, Any]], pid: Any, pod: str) -> dict[str, Any]:
    """The replica whose PID answered a request sent through ``pod``'s proxy: one on that
    pod, else the only one anywhere with that PID; refused when it cannot be told apart."""
    local = [r for r in replicas if r.get("pid") == pid and r.get("pod") == pod]
    anywhere = [r for r in replicas if r.get("pid") == pid]
    found = local or anywhere
    if len(found) != 1:
        raise InfrastructureError(f"the health switch sent through {pod} was answered by PID {pid}, which matches "
                                  f"{len(found)} RUNNING replicas; cannot tell the victim")
    return found[0]


CATALOGUE: dict[str, type[Fault]] = {
    cls.name: cls for cls in (ReplicaKill, ProxyKill, ControllerKill, MassReplicaKill, PodKill, NodeLoss,
                              PodPartition, RedisLoss, HealthCheckFailure, ReplicaHang)
}
