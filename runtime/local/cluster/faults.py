"""Faults, planned changes and heals, each one call to the supervisor, which leases what undoing it
needs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from serve_chaos.runtime.cluster import ActionRecord, RayOptions
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local.cluster.base import LocalClusterBase


class LocalClusterFaults(LocalClusterBase):
    """Faults, planned changes and heals, each one call to the supervisor, which leases what undoing it
    needs."""

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        return ActionRecord(**self._call("apply_serve_config", config=config, replace=replace))

    def kill_pod(self, pod: str, graceful: bool = True, grace_period_s: float = 30.0,
                 down_for_s: float | None = None) -> ActionRecord:
        return ActionRecord(**self._call("kill_pod", path_params={"pod": pod}, graceful=graceful,
                                         grace_period_s=grace_period_s, down_for_s=down_for_s))

    def kill_node(self, node: str, replacement_delay_s: float = 10.0) -> ActionRecord:
        return ActionRecord(**self._call("kill_node", path_params={"node": node},
                                         replacement_delay_s=replacement_delay_s))

    def partition_pod(self, pod: str, reject: bool = False) -> ActionRecord:
        return ActionRecord(**self._call("partition_pod", path_params={"pod": pod}, reject=reject))

    def unpartition_pod(self, pod: str) -> ActionRecord:
        return ActionRecord(**self._call("unpartition_pod", path_params={"pod": pod}))

    def kill_actor(self, actor_name: str | list[str], namespace: str, no_restart: bool,
                   ignore_missing: bool = False) -> ActionRecord:
        return ActionRecord(**self._call("kill_actor", name=actor_name, namespace=namespace, no_restart=no_restart,
                                         ignore_missing=ignore_missing))

    def signal_process(self, pod: str, pid: int, signal: str) -> ActionRecord:
        return ActionRecord(**self._call("signal_process", path_params={"pod": pod}, pid=pid, signal=signal))

    def kill_process(self, pod: str, name: str) -> ActionRecord:
        return ActionRecord(**self._call("kill_process", path_params={"pod": pod}, name=name))

    def update_serve_config(self, config: dict[str, Any], change: str) -> ActionRecord:
        return ActionRecord(**self._call("update_serve_config", config=config, change=change))

    def drain_node(self, pod: str, reason: str, deadline_s: float, message: str) -> ActionRecord:
        return ActionRecord(**self._call("drain_node", path_params={"pod": pod}, reason=reason,
                                         deadline_s=deadline_s, message=message))

    def _gray(self, fault: str, pod: str, **params: Any) -> ActionRecord:
        return ActionRecord(**self._call("gray_fault", path_params={"pod": pod, "fault": fault}, **params))

    def starve_cpu(self, pod: str, cpu_share: float, duration_s: float) -> ActionRecord:
        return self._gray("starve_cpu", pod, cpu_share=cpu_share, duration_s=duration_s)

    def press_memory(self, pod: str, size_bytes: int, rate_bytes_s: float, duration_s: float) -> ActionRecord:
        return self._gray("press_memory", pod, size_bytes=size_bytes, rate_bytes_s=rate_bytes_s,
                          duration_s=duration_s)

    def lose_packets(self, pod: str, percent: float, duration_s: float) -> ActionRecord:
        return self._gray("lose_packets", pod, percent=percent, duration_s=duration_s)

    def delay_packets(self, pod: str, delay_ms: float, jitter_ms: float, duration_s: float) -> ActionRecord:
        return self._gray("delay_packets", pod, delay_ms=delay_ms, jitter_ms=jitter_ms, duration_s=duration_s)

    def slow_process(self, pod: str, pid: int, stopped_ms: float, period_ms: float,
                     duration_s: float) -> ActionRecord:
        return self._gray("slow_process", pod, pid=pid, stopped_ms=stopped_ms, period_ms=period_ms,
                          duration_s=duration_s)

    def lift(self, fault: str, pod: str) -> ActionRecord:
        return ActionRecord(**self._call("lift", path_params={"pod": pod, "fault": fault}))

    def upgrade_cluster(self, change: dict[str, Any]) -> ActionRecord:
        raise ServeChaosError(self.capabilities.why_not("upgrade_cluster"))

    def set_ray_options(self, options: RayOptions, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        return ActionRecord(**self._call("set_ray_options", options=asdict(options), serve_config=serve_config))

    def heal(self) -> list[ActionRecord]:
        return [ActionRecord(**r) for r in self._call("heal")]
