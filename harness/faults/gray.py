"""Gray faults: a pod or replica that stays alive but gets worse -- CPU starved, memory pressed,
packets lost or delayed, a replica slowed.

Each lasts ``duration_s`` (the engine lifts it then and judges recovery from there), expects no
victim to go (whatever Serve or Ray does about it is measured, not presumed), and verifies from
what ``Cluster.lift`` reports that it really took effect: a pod "starved" at full speed, or loss
that dropped nothing, fails its scenario.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from serve_chaos.harness.checks import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.faults.base import DoesNotApply, Fault, FaultPlan, actor_victim, pick, record, serving_pods
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo


def lifted(record: FaultRecord, kind: str) -> dict[str, Any] | None:
    """What ``Cluster.lift`` reported of the fault (``details`` of its ``lift_<kind>`` action)."""
    for action in reversed(record.heal_actions):
        if action.get("action") == f"lift_{kind}":
            return dict(action.get("details") or {})
    return None


@dataclass(frozen=True)
class GrayFault(Fault):
    """Base: one gray fault on a pod hosting (aimed) replicas, for ``duration_s`` seconds."""

    kind: ClassVar[str] = ""
    aimable: ClassVar[bool] = True
    pod_role: str = "worker"
    duration_s: float = 30.0

    def choose_pod(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> PodInfo:
        return pick(serving_pods(snap, pods, self.pod_role, self.deployment), rng,
                    f"Running {self.pod_role} pod hosting replicas")

    def params_for(self, pod: PodInfo) -> dict[str, Any]:
        """The fault's own parameters for ``pod`` (what ``apply`` passes to the cluster)."""
        return {}

    def apply(self, cluster: Cluster, pod: str, params: dict[str, Any]) -> ActionRecord:
        raise NotImplementedError

    def what(self, params: dict[str, Any]) -> str:
        raise NotImplementedError

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        pod = self.choose_pod(snap, pods, rng)
        params = self.params_for(pod)
        replicas = [actor_victim(a) for a in snap.actors if a["role"] == "replica" and a.get("pod") == pod.name]
        return FaultPlan(self.name, f"{self.what(params)} on {pod.name} for {self.duration_s:g} s "
                                    f"({len(replicas)} replicas on it)", [],
                         {"pod": pod.name, "node": pod.node, "duration_s": self.duration_s, **params,
                          "replicas_on_pod": replicas,
                          "ray_node_ids": [n["node_id"] for n in snap.nodes if n.get("pod") == pod.name]})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        params = {k: plan.params[k] for k in self.params_for_keys()}
        return record(plan, self.apply(cluster, plan.params["pod"], params))

    def params_for_keys(self) -> tuple[str, ...]:
        return ()

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        return [cluster.lift(self.kind, record.params["pod"])]

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        details = lifted(record, self.kind)
        name = "fault.took_effect"
        if details is None:
            return CheckResult(name, UNKNOWN, detail="the fault was never lifted: nothing reports what it did")
        if details.get("injected") is False:
            return CheckResult(name, FAIL, detail=f"the target reports the fault was not injected: {details}")
        ok, value, text = self.took_effect(details)
        return CheckResult(name, PASS if ok else FAIL, value, detail=text)

    def took_effect(self, details: dict[str, Any]) -> tuple[bool, Any, str]:
        """From what ``lift`` reported: (took effect, a figure, why)."""
        if "injected" in details:
            return bool(details["injected"]), None, "the target reports it injected"
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.summary} for {self.duration_s:g} s" + self.aim_text()


@dataclass(frozen=True)
class CpuStarvation(GrayFault):
    """The pod held to ``cpu_share`` of one core (locally its cgroup's CFS quota)."""

    name: ClassVar[str] = "cpu_starvation"
    kind: ClassVar[str] = "starve_cpu"
    requires: ClassVar[tuple[str, ...]] = ("starve_cpu",)
    summary: ClassVar[str] = "starve one worker pod of CPU"
    cpu_share: float = 0.05

    def params_for(self, pod: PodInfo) -> dict[str, Any]:
        return {"cpu_share": self.cpu_share}

    def params_for_keys(self) -> tuple[str, ...]:
        return ("cpu_share",)

    def apply(self, cluster: Cluster, pod: str, params: dict[str, Any]) -> ActionRecord:
        return cluster.starve_cpu(pod, params["cpu_share"], self.duration_s)

    def what(self, params: dict[str, Any]) -> str:
        return f"hold to {params['cpu_share']:.0%} of a core"

    def took_effect(self, details: dict[str, Any]) -> tuple[bool, Any, str]:
        if "throttled_periods" not in details:
            return super().took_effect(details)
        throttled, periods = details["throttled_periods"], details.get("periods") or 0
        return (throttled > 0, throttled,
                f"throttled in {throttled} of {periods} CFS periods ({details.get('throttled_s')} s held back)"
                if throttled else "never throttled: the pod ran at full speed")


@dataclass(frozen=True)
class MemoryPressure(GrayFault):
    """A memory hog in the pod growing to the pod's memory limit (``fill`` of it) at ``rate_bytes_s``."""

    name: ClassVar[str] = "memory_pressure"
    kind: ClassVar[str] = "press_memory"
    requires: ClassVar[tuple[str, ...]] = ("press_memory",)
    summary: ClassVar[str] = "grow a memory hog in one worker pod up to its memory limit"
    fill: float = 1.0
    rate_bytes_s: float = 64 * 1024 * 1024
    duration_s: float = 40.0

    def choose_pod(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> PodInfo:
        pod = super().choose_pod(snap, pods, rng)
        if not pod.memory_limit:
            raise DoesNotApply(f"pod {pod.name} has no memory limit: there is nothing to press against")
        return pod

    def params_for(self, pod: PodInfo) -> dict[str, Any]:
        return {"size_bytes": int(self.fill * (pod.memory_limit or 0)), "rate_bytes_s": self.rate_bytes_s,
                "memory_limit": pod.memory_limit}

    def params_for_keys(self) -> tuple[str, ...]:
        return ("size_bytes", "rate_bytes_s")

    def apply(self, cluster: Cluster, pod: str, params: dict[str, Any]) -> ActionRecord:
        return cluster.press_memory(pod, params["size_bytes"], params["rate_bytes_s"], self.duration_s)

    def what(self, params: dict[str, Any]) -> str:
        return (f"a hog growing to {params['size_bytes'] / 2**20:.0f} MiB at {params['rate_bytes_s'] / 2**20:.0f} MiB/s "
                f"(limit {params['memory_limit'] / 2**20:.0f} MiB)")

    def took_effect(self, details: dict[str, Any]) -> tuple[bool, Any, str]:
        if "max_usage_bytes" not in details:
            return super().took_effect(details)
        limit, peak = details.get("limit_bytes") or 0, details.get("max_usage_bytes") or 0
        ratio = peak / limit if limit else 0.0
        # Ray's memory monitor acts at RAY_memory_usage_threshold (0.95) of the limit.
        return (ratio >= 0.95, round(ratio, 3),
                f"the pod's memory peaked at {ratio:.1%} of its limit" + ("" if ratio >= 0.95 else
                                                                          ", below Ray's 95 % threshold"))


@dataclass(frozen=True)
class PacketLoss(GrayFault):
    """``percent`` % of the pod's packets dropped at random, in and out."""

    name: ClassVar[str] = "packet_loss"
    kind: ClassVar[str] = "lose_packets"
    requires: ClassVar[tuple[str, ...]] = ("lose_packets",)
    summary: ClassVar[str] = "drop a share of one worker pod's packets"
    percent: float = 20.0

    def params_for(self, pod: PodInfo) -> dict[str, Any]:
        return {"percent": self.percent}

    def params_for_keys(self) -> tuple[str, ...]:
        return ("percent",)

    def apply(self, cluster: Cluster, pod: str, params: dict[str, Any]) -> ActionRecord:
        return cluster.lose_packets(pod, params["percent"], self.duration_s)

    def what(self, params: dict[str, Any]) -> str:
        return f"drop {params['percent']:g} % of packets in and out"

    def took_effect(self, details: dict[str, Any]) -> tuple[bool, Any, str]:
        if "dropped_in" not in details:
            return super().took_effect(details)
        dropped = int(details["dropped_in"]) + int(details["dropped_out"])
        return (dropped > 0, dropped, f"dropped {details['dropped_in']} packets in and {details['dropped_out']} out"
                if dropped else "dropped no packet")


@dataclass(frozen=True)
class NetworkDelay(GrayFault):
    """The pod's packets delayed by ``delay_ms`` +- ``jitter_ms``."""

    name: ClassVar[str] = "network_delay"
    kind: ClassVar[str] = "delay_packets"
    requires: ClassVar[tuple[str, ...]] = ("delay_packets",)
    summary: ClassVar[str] = "delay one worker pod's packets"
    delay_ms: float = 200.0
    jitter_ms: float = 50.0

    def params_for(self, pod: PodInfo) -> dict[str, Any]:
        return {"delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms}

    def params_for_keys(self) -> tuple[str, ...]:
        return ("delay_ms", "jitter_ms")

    def apply(self, cluster: Cluster, pod: str, params: dict[str, Any]) -> ActionRecord:
        return cluster.delay_packets(pod, params["delay_ms"], params["jitter_ms"], self.duration_s)

    def what(self, params: dict[str, Any]) -> str:
        return f"delay packets {params['delay_ms']:g} ms +- {params['jitter_ms']:g} ms"


@dataclass(frozen=True)
class ReplicaSlow(GrayFault):
    """One replica's process stopped ``stopped_ms`` of every ``period_ms`` (about 10x slower),
    without touching its code."""

    name: ClassVar[str] = "replica_slow"
    kind: ClassVar[str] = "slow_process"
    requires: ClassVar[tuple[str, ...]] = ("slow_process",)
    summary: ClassVar[str] = "slow one replica down ~10x (SIGSTOP/SIGCONT duty cycle)"
    stopped_ms: float = 90.0
    period_ms: float = 100.0

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        replica = pick([a for a in self.aimed_replicas(snap) if a.get("pid") and a.get("pod")], rng,
                       "RUNNING replica with a known PID and pod")
        params = {"pid": int(replica["pid"]), "stopped_ms": self.stopped_ms, "period_ms": self.period_ms}
        return FaultPlan(self.name, f"stop replica {replica.get('app')}/{replica.get('deployment')} pid {replica['pid']} "
                                    f"on {replica['pod']} {self.stopped_ms:g} ms of every {self.period_ms:g} ms "
                                    f"for {self.duration_s:g} s", [],
                         {"pod": replica["pod"], "duration_s": self.duration_s, **params,
                          "replica": actor_victim(replica)})

    def params_for_keys(self) -> tuple[str, ...]:
        return ("pid", "stopped_ms", "period_ms")

    def apply(self, cluster: Cluster, pod: str, params: dict[str, Any]) -> ActionRecord:
        return cluster.slow_process(pod, params["pid"], params["stopped_ms"], params["period_ms"], self.duration_s)

    def took_effect(self, details: dict[str, Any]) -> tuple[bool, Any, str]:
        if "cycles" not in details:
            return super().took_effect(details)
        cycles, stopped = int(details["cycles"]), float(details.get("stopped_s") or 0.0)
        return (cycles > 0 and stopped > 0, cycles,
                f"{cycles} stop/continue cycles, stopped {stopped:g} s in all" if cycles else
                f"the replica was never stopped ({details.get('error', 'no cycle ran')})")

