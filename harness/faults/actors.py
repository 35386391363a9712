"""Faults of Serve actors: replicas, proxies and the controller killed, a replica's health
check failing, a replica's process frozen."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from serve_chaos.harness.checks import CheckResult
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN
from serve_chaos.harness.faults.base import Fault, FaultNotApplicable, FaultPlan, actor_victim, pick, record
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.app.spec import HEALTH_ROUTE, AppSpec
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo
from serve_chaos.runtime.errors import InfrastructureError
from serve_chaos.runtime.ray_settings import SERVE_REPLICA_UNHEALTHY_THRESHOLD

#: How many reads through a pod's proxy may land on its other replicas before the flapping one answers.
FLAP_READ_TRIES = 40


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
        actor = pick(self.candidates(snap, pods), rng, f"{self.role} actor")
        victim = actor_victim(actor)
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
        return record(plan, action, action.details.get("t_kill_start"))


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
class ControllerRestart(ActorKill):
    """Kill the controller and let Ray restart it (``no_restart=False``: the controller is a
    detached actor with ``max_restarts=-1``, ``serve/_private/default_impl.py`` get_controller_impl): the same actor
    comes back with a new PID, as after a crash of its process."""

    name: ClassVar[str] = "controller_restart"
    role: ClassVar[str] = "controller"
    no_restart: ClassVar[bool] = False
    summary: ClassVar[str] = "ray.kill the Serve controller with no_restart=False (Ray restarts it)"


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
        victims = [actor_victim(a) for a in self.aimed_replicas(snap)]
        if not victims:
            raise FaultNotApplicable("no RUNNING replica to kill")
        return FaultPlan(self.name, f"ray.kill all {len(victims)} replicas (no_restart=True)", victims,
                         {"no_restart": True})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        action = cluster.kill_actor([v["name"] for v in plan.victims], "serve", no_restart=True)
        return record(plan, action, action.details.get("t_kill_start"))


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
        replicas = [actor_victim(a) for a in snap.actors
                    if a["role"] == "replica" and a.get("state") == "RUNNING" and a.get("pid")]
        if not replicas:
            raise FaultNotApplicable("no RUNNING replica to make unhealthy")
        # Through one pod's own proxy, which prefers its node's replicas: the reply's
        # PID then names a replica on that pod (PIDs repeat across pods on Kubernetes).
        pod = pick(sorted({r["pod"] for r in replicas if r.get("pod")}), rng, "pod hosting replicas")
        return FaultPlan(self.name, f"POST {self.path}?mode={self.mode} to the proxy of pod {pod} "
                                    "(the replica it reaches is the victim)", [],
                         {"mode": self.mode, "pod": pod, "replicas": replicas})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        return self._switch(cluster, plan, f"mode={self.mode}")

    def _switch(self, cluster: Cluster, plan: FaultPlan, query: str) -> FaultRecord:
        import requests

        pod = plan.params["pod"]
        base = cluster.endpoints().pods.get(pod)
        if base is None:
            raise InfrastructureError(f"pod {pod} has no Serve endpoint to switch a health check through")
        t0 = time.time()
        try:
            body = requests.post(f"{base}{self.path}?{query}", timeout=10).json()
        except (requests.RequestException, ValueError) as err:
            raise InfrastructureError(f"could not switch a replica's health check: {err}") from None
        t1 = time.time()
        victim = replica_answering(plan.params["replicas"], body.get("pid"), pod)
        plan.victims = [victim]
        plan.description = f"check_health of replica pid {victim['pid']} on {victim.get('pod')} now {self.mode}s"
        action = ActionRecord("health_switch", victim["name"], t0, t1, {"pid": victim["pid"], "mode": self.mode})
        return record(plan, action, t1)

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """If Serve never replaced the victim, kill it so a healthy replica takes its place."""
        actions = cluster.heal()
        for victim in record.victims:
            actions.append(cluster.kill_actor(victim["name"], "serve", no_restart=True, ignore_missing=True))
        return actions


@dataclass(frozen=True)
class HealthFlap(HealthCheckFailure):
    """One replica's ``check_health`` fails ``failures`` times in a row, then passes again by itself
    (SleepyPid's ``mode=flap``): fewer than Serve's threshold, so it must not be restarted.  At the
    end (``duration_s``) the same replica is asked how many checks failed -- through the same pod's
    proxy until that PID answers -- which is the fault's evidence.  No victim: it must stay."""

    name: ClassVar[str] = "health_flap"
    mode: str = "flap"
    failures: int = SERVE_REPLICA_UNHEALTHY_THRESHOLD - 1
    duration_s: float = 8.0

    def __post_init__(self) -> None:
        if not 1 <= self.failures:
            raise ValueError(f"failures must be >= 1, got {self.failures}")

    def describe(self) -> str:
        return f"one replica's check_health fails {self.failures} time(s) in a row, then passes (a flap)"

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        out = self._switch(cluster, plan, f"mode=flap&failures={self.failures}")
        out.params["target"], out.victims = out.victims[0], []
        return out

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """Read the victim's failed-check count (``mode=ok`` changes nothing after a flap)."""
        import requests

        target, pod = record.params["target"], record.params["pod"]
        base = cluster.endpoints().pods.get(pod)
        t0 = time.time()
        for attempt in range(FLAP_READ_TRIES):
            try:
                body = requests.post(f"{base}{self.path}?mode=ok", timeout=2).json()
            except (requests.RequestException, ValueError, TypeError):
                time.sleep(min(0.05 * (attempt + 1), 1.0))  # the proxy may refuse for a moment
                continue
            # By replica id where the app names it: a PID may be another pod's replica's too.
            same = (body.get("replica_id") == target.get("replica_id") if body.get("replica_id")
                    and target.get("replica_id") else body.get("pid") == target["pid"])
            if same:
                return [ActionRecord("health_read", target["name"], t0, time.time(),
                                     {"failed_checks": body.get("failed_checks"), "pid": target["pid"]})]
        return [ActionRecord("health_read", target["name"], t0, time.time(), {"failed_checks": None})]

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        read = next((a for a in reversed(record.heal_actions) if a.get("action") == "health_read"), None)
        failed = ((read or {}).get("details") or {}).get("failed_checks")
        name = "fault.took_effect"
        if failed is None:
            return CheckResult(name, UNKNOWN, bound=f"== {self.failures}", detail="the flapping replica was not "
                               "reached again to read how many of its checks failed")
        ok = int(failed) == self.failures
        return CheckResult(name, PASS if ok else FAIL, int(failed), f"== {self.failures}", "checks",
                           f"{failed} health checks of replica pid {record.params['target'].get('pid')} failed in a row")


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
        replica = pick([a for a in self.aimed_replicas(snap) if a.get("pid") and a.get("pod")], rng,
                        "RUNNING replica with a known PID and pod")
        return FaultPlan(self.name, f"SIGSTOP replica {replica.get('app')}/{replica.get('deployment')} "
                                    f"pid {replica['pid']} on {replica['pod']}",
                         [actor_victim(replica)], {"pod": replica["pod"], "pid": replica["pid"]})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        return record(plan, cluster.signal_process(plan.params["pod"], int(plan.params["pid"]), "STOP"))


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
