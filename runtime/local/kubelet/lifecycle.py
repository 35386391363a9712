"""A pod's life: started from its spec on a node, restarted with CrashLoopBackOff, deleted gracefully
(preStop, SIGTERM, grace period, SIGKILL) or at once."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

from serve_chaos.runtime.cluster import ActionRecord
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local import cgroups, mounts, netns, procs
from serve_chaos.runtime.local.kubelet.base import KubeletBase
from serve_chaos.runtime.local.pods import Pod


class KubeletPods(KubeletBase):
    """A pod's life: started from its spec on a node, restarted with CrashLoopBackOff, deleted
    gracefully (preStop, SIGTERM, grace period, SIGKILL) or at once."""

    def start_pod(self, pod: Pod) -> None:
        """Start the pod's next incarnation (a new pod object unless it crashed in place)."""
        assert self.pod_spec is not None, "the operator must give the kubelet its pod specs"
        self.serial += 1
        pod.serial = self.serial
        fresh = not pod.uid or pod.phase != "CrashLoopBackOff"
        if fresh:
            pod.uid = str(uuid.uuid4())
            pod.restarts = 0
            self._new_network(pod)
        else:
            pod.restarts += 1
        if self.cgroup_base is not None:
            pod.cgroup = cgroups.create(self.cgroup_base / f"{pod.name}.{pod.serial}")
            pod.v1_groups = self._v1_groups(pod)
        # A Ray pod sees its own temp dir (and memory cgroup) in a mount namespace of its own
        # where the host lets us make one (root: netns isolation), as a container would.
        pod.private_mounts = self.mode == "netns" and pod.role in ("head", "worker")
        pod.temp_dir = self.shared_temp_dir if pod.private_mounts else self.layout.pod_dir(pod.name, pod.serial)
        cmd, env = self.pod_spec(pod)
        if pod.net is not None:
            cmd = netns.nsenter_prefix(pod.net) + cmd
        if pod.private_mounts:
            cmd = mounts.pod_view(cmd, (self.layout.pod_dir(pod.name, pod.serial), self.shared_temp_dir),
                                  memory="memory" in pod.v1_groups)
        log = open(self.layout.logs / f"{pod.name}.{pod.serial}.log", "ab")
        pod.proc = self.spawn(cmd, log, role=f"pod:{pod.role}", pod=pod, extra_env=env)
        log.close()
        pod.pid = pod.proc.pid
        pod.phase = "Running"
        pod.terminating = pod.displaced = pod.partitioned = pod.ready = False
        pod.started_at = time.time()
        pod.start_at = None
        if pod.role != "redis":
            self.endpoint_up(pod)
        self.event("pod_started", pod=pod.name, uid=pod.uid, restarts=pod.restarts, node=pod.node, ip=pod.ip,
                   pid=pod.pid, fresh=fresh)
        self.on_started(pod)

    def _v1_groups(self, pod: Pod) -> dict[str, Path]:
        """The incarnation's cgroup v1 groups; Ray pods get their memory limit (like a container's)."""
        groups = {c: cgroups.create(base / f"{pod.name}.{pod.serial}") for c, base in self.v1_bases.items()}
        res = {"head": self.config.head, "worker": self.config.worker}.get(pod.role)
        pod.memory_limit = None
        if "memory" in groups and res is not None and res.memory_limit is not None:
            cgroups.write(groups["memory"] / "memory.limit_in_bytes", res.memory_limit)
            pod.memory_limit = res.memory_limit
        return groups

    def _on_exit(self, pod: Pod, status: int) -> None:
        """The pod's main process ended: the container is gone, kill what is left."""
        self.kill_processes(pod)
        if pod.cgroup is not None:
            self.pending_cgroup_removal += [pod.cgroup, *pod.v1_groups.values()]
            pod.cgroup = None
            pod.v1_groups = {}
        code = os.waitstatus_to_exitcode(status)
        ran_s = time.time() - (pod.started_at or time.time())
        pod.pid = pod.proc = None
        pod.ready = False
        if pod.role != "redis":
            self.endpoint_down(pod)
        if pod.displaced:
            pod.phase = "Lost"
            self.event("pod_lost", pod=pod.name, exit_code=code, node=pod.node)
            return
        if pod.terminating:
            self._discard_net(pod)
            pod.phase = "Pending"
            if pod.start_at is None:
                pod.start_at = time.time() + self.config.timing.recreate_delay_s
            self.event("pod_deleted", pod=pod.name, exit_code=code)
            return
        timing = self.config.timing
        if ran_s > timing.crash_backoff_reset_s:
            pod.backoff_s = 0.0
        delay = pod.backoff_s
        pod.backoff_s = timing.crash_backoff_s if delay == 0 else min(delay * 2, timing.crash_backoff_max_s)
        pod.phase = "CrashLoopBackOff"
        pod.start_at = time.time() + delay
        self.event("pod_crashed", pod=pod.name, exit_code=code, ran_s=round(ran_s, 2), backoff_s=delay)

    def delete_pod(self, pod: Pod, graceful: bool, grace_period_s: float, reason: str,
                   down_for_s: float | None = None) -> ActionRecord:
        """``kubectl delete pod``: out of the front door at once, then stopped; recreated afterwards
        (``down_for_s`` later, if given)."""
        t0 = time.time()
        with self.lock:
            if pod.phase != "Running" or pod.terminating:
                raise ServeChaosError(f"pod {pod.name} is {pod.phase}, not Running; nothing to delete")
            pod.terminating = True
            pod.phase = "Terminating"
            old = {"uid": pod.uid, "pid": pod.pid, "ip": pod.ip, "node": pod.node}
            members = self.members(pod)
            pod.start_at = time.time() + down_for_s if down_for_s is not None else None
            if pod.role != "redis":
                # A deleted pod leaves the Service endpoints at once, before it stops.
                self.endpoint_down(pod)
        self.event("pod_delete", pod=pod.name, graceful=graceful, reason=reason, **old)
        if graceful:
            threading.Thread(target=self._graceful_stop, args=(pod, pod.pid, grace_period_s), daemon=True).start()
        else:
            self.kill_processes(pod)
        return ActionRecord("kill_pod", pod.name, t0, time.time(),
                            {**old, "graceful": graceful, "reason": reason, "processes": len(members)})

    def _graceful_stop(self, pod: Pod, main_pid: int | None, grace_period_s: float) -> None:
        """preStop ``ray stop`` on workers (SIGTERM to the pod's Ray processes, as ``ray stop``
        does inside a container), then SIGTERM to the main process, the grace period, SIGKILL."""
        deadline = time.monotonic() + grace_period_s
        if pod.role == "worker":
            # Only the workers carry the preStop hook in the guide's RayService.
            others = [p for p in self.members(pod) if p != main_pid]
            procs.signal_pids(others, signal.SIGTERM)
            stop_by = min(deadline, time.monotonic() + self.config.timing.prestop_timeout_s)
            while time.monotonic() < stop_by and any(procs.alive(p) for p in others):
                time.sleep(0.1)
        if main_pid:
            procs.signal_pids([main_pid], signal.SIGTERM)
        while time.monotonic() < deadline and pod.pid == main_pid and procs.alive(main_pid):
            time.sleep(0.1)
        with self.lock:
            if pod.pid == main_pid:
                self.kill_processes(pod)

    def _place(self, pod: Pod) -> str | None:
        """A Ready node for a displaced pod: its own if back, else an empty Ready one."""
        home = self.nodes.get(pod.node)
        if home is not None and home.state == "Ready":
            return pod.node
        occupied = {p.node for p in self.pods.values() if p is not pod and p.phase != "Lost"}
        for node in self.nodes.values():
            if node.state == "Ready" and node.name not in occupied:
                return node.name
        return None

    def tick(self) -> None:
        """Notice exits, start what is due, collect empty cgroups."""
        exited = set(self.reap())
        now = time.time()
        with self.lock:
            for pod in self.pods.values():
                gone = pod.pid is not None and (pod.pid in exited or (
                    pod.phase in ("Running", "Terminating") and not procs.alive(pod.pid)))
                if gone:
                    self._on_exit(pod, self.exit_status.get(pod.pid, 0))
            for pod in self.pods.values():
                if pod.phase in ("Pending", "CrashLoopBackOff", "Lost") and pod.start_at is not None \
                        and now >= pod.start_at:
                    self._start_due(pod, now)
            self.pending_cgroup_removal = [p for p in self.pending_cgroup_removal if not cgroups.remove(p, timeout_s=0)]

    def _start_due(self, pod: Pod, now: float) -> None:
        if pod.phase == "Lost" or pod.displaced:
            target = self._place(pod)
            if target is None:
                return
            pod.node, pod.phase, pod.displaced = target, "Pending", False
        try:
            self.start_pod(pod)
        except ServeChaosError as err:
            pod.start_at = now + 5.0
            self.event("pod_start_failed", pod=pod.name, error=str(err))
