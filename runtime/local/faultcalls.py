"""The supervisor's fault calls: each fault, planned change and heal a harness asks for over the
control API, done by the kubelet, the operator or the gray faults, and leased with its owner."""

from __future__ import annotations

from typing import Any

from serve_chaos.runtime.app.serve_config import restarts_replicas
from serve_chaos.runtime.cluster import RayOptions
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local.gray import delay_supported


class SupervisorFaults:
    """The supervisor's fault calls: each fault, planned change and heal a harness asks for over the
    control API, done by the kubelet, the operator or the gray faults, and leased with its owner."""

    def kill_pod(self, pod: str, owner: int | None = None, graceful: bool = True,
                 grace_period_s: float | None = None, down_for_s: float | None = None) -> dict[str, Any]:
        grace = self.config.timing.grace_period_s if grace_period_s is None else float(grace_period_s)
        record = self.kubelet.delete_pod(self.kubelet.pod(pod), graceful=bool(graceful), grace_period_s=grace,
                                         reason="chaos", down_for_s=down_for_s)
        if down_for_s is not None:
            self.leases.add(owner, "hold", pod)
        return record.to_dict()

    def partition_pod(self, pod: str, owner: int | None = None, reject: bool = False) -> dict[str, Any]:
        record = self.kubelet.partition(pod, bool(reject))
        self.leases.add(owner, "partition", pod)
        return record.to_dict()

    def unpartition_pod(self, pod: str, owner: int | None = None) -> dict[str, Any]:
        self.leases.drop("partition", pod)
        return self.kubelet.unpartition(pod).to_dict()

    def kill_node(self, node: str, owner: int | None = None, replacement_delay_s: float | None = None) -> dict[str, Any]:
        record = self.kubelet.lose_node(node, replacement_delay_s)
        self.leases.add(owner, "node_loss", node)
        return record.to_dict()

    def kill_actor(self, name: str | list[str], owner: int | None = None, namespace: str = "serve",
                   no_restart: bool = False, ignore_missing: bool = False) -> dict[str, Any]:
        return self.operator.kill_actor(name, namespace, bool(no_restart), bool(ignore_missing)).to_dict()

    def signal_process(self, pod: str, pid: int | str, signal: str, owner: int | None = None) -> dict[str, Any]:
        record = self.kubelet.signal_process(self.kubelet.pod(pod), int(pid), str(signal))
        if signal == "STOP":
            self.leases.add(owner, "freeze", pod)
        elif not self.kubelet.frozen(self.kubelet.pod(pod)):
            self.leases.drop("freeze", pod)
        return record.to_dict()

    def kill_process(self, pod: str, name: str, owner: int | None = None) -> dict[str, Any]:
        return self.kubelet.kill_named(self.kubelet.pod(pod), str(name)).to_dict()

    def apply_serve_config(self, config: dict[str, Any], owner: int | None = None,
                           replace: bool = False) -> dict[str, Any]:
        return self.operator.apply_serve_config(config, bool(replace)).to_dict()

    def update_serve_config(self, config: dict[str, Any], change: str = "", owner: int | None = None) -> dict[str, Any]:
        before = self.operator.desired_serve_config
        record = self.operator.update_serve_config(config, change)
        with self.mutex:
            if self.config_before_change is None:
                self.config_before_change = before
        self.leases.add(owner, "serve_config", "serve")
        return record.to_dict()

    def drain_node(self, pod: str, owner: int | None = None, reason: str = "", deadline_s: float = 0.0,
                   message: str = "") -> dict[str, Any]:
        target = self.kubelet.pod(pod)
        record = self.operator.drain_node(target, reason, float(deadline_s), message)
        with self.mutex:
            self.drained[pod] = target.uid
        self.leases.add(owner, "drain", pod)
        return record.to_dict()

    def gray_fault(self, pod: str, fault: str, owner: int | None = None, duration_s: float = 30.0,
                   **params: Any) -> dict[str, Any]:
        if fault == "delay_packets":
            raise ServeChaosError(delay_supported()[1] or "packet delay is not written for the local target")
        record = self.gray.inject(fault, self.kubelet.pod(pod), float(duration_s), **params)
        self.leases.add(owner, fault, pod)
        return record

    def lift(self, pod: str, fault: str, owner: int | None = None) -> dict[str, Any]:
        self.leases.drop(fault, pod)
        return self.gray.lift(fault, pod)

    def _restore_config(self) -> list[dict[str, Any]]:
        """Put back the Serve config desired before the first operator change (deployed afresh
        when going back restarts replicas: quicker than rolling them back)."""
        with self.mutex:
            before, self.config_before_change = self.config_before_change, None
        if before is None:
            return []
        current = self.operator.desired_serve_config
        if before == current:
            return []
        record = self.operator.apply_serve_config(before, replace=restarts_replicas(current, before))
        self.event("serve_config_restored")
        return [record.to_dict()]

    def _replace_drained(self, pods: set[str] | None = None) -> list[dict[str, Any]]:
        """A drain cannot be undone: a drained pod still there is deleted, so a fresh one replaces it."""
        out = []
        with self.mutex:
            drained, self.drained = self.drained, {}
        for name, uid in drained.items():
            if pods is not None and name not in pods:
                with self.mutex:
                    self.drained[name] = uid
                continue
            pod = self.kubelet.pod(name)
            if pod.uid == uid and pod.phase == "Running" and not pod.terminating:
                out.append(self.kubelet.delete_pod(pod, graceful=False, grace_period_s=0,
                                                   reason="drained: replaced on heal").to_dict())
        return out

    def set_ray_options(self, options: dict[str, Any], owner: int | None = None,
                        serve_config: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.operator.set_ray_options(RayOptions(**options), serve_config).to_dict()

    def heal(self, owner: int | None = None) -> list[dict[str, Any]]:
        lifted = self.gray.lift_all()
        records = [r.to_dict() for r in self.kubelet.heal()]
        restored = self._restore_config()
        replaced = self._replace_drained()
        self.leases.drop()
        return lifted + records + restored + replaced
