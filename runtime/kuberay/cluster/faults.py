"""Faults: pods deleted, nodes lost, actors killed, processes signalled, nodes drained, and the
gray faults (Chaos Mesh objects, a slowed process)."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import requests

from serve_chaos.runtime.cluster import ActionRecord, GRAY_FAULTS
from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError
from serve_chaos.runtime.kuberay import safety
from serve_chaos.runtime.kuberay.cluster.base import KubeRayBase
from serve_chaos.runtime.kuberay.drain import check_drain, drain_command, node_id_for_ip, refusal


class KubeRayFaults(KubeRayBase):
    """Faults: pods deleted, nodes lost, actors killed, processes signalled, nodes drained, and the
    gray faults (Chaos Mesh objects, a slowed process)."""

    def kill_pod(self, pod: str, graceful: bool = True, grace_period_s: float = 30.0,
                 down_for_s: float | None = None) -> ActionRecord:
        t0 = time.time()
        found = self._pod(pod)
        labels = found.metadata.labels or {}
        details = {"uid": found.metadata.uid, "node": found.spec.node_name, "ip": found.status.pod_ip,
                   "graceful": graceful}
        if down_for_s is not None and labels.get("serve-chaos/component") == "redis":
            # Keep Redis away: scale its Deployment to 0, back to 1 after the hold.
            self._scale_redis(0)
            self.redis_held = True
            self.lease.add_fault("hold", "redis")
            self._timers.append(threading.Timer(down_for_s, self._release_redis))
            self._timers[-1].start()
        grace = None if graceful else 0
        if graceful and grace_period_s != 30.0:
            grace = int(grace_period_s)
        self.core.delete_namespaced_pod(pod, self.ns, grace_period_seconds=grace)
        return ActionRecord("kill_pod", pod, t0, time.time(), details)

    def _scale_redis(self, replicas: int) -> None:
        name = self.ray.redis_service
        safety.check_owned(self.apps.read_namespaced_deployment(name, self.ns), f"deployment {name}")
        self.apps.patch_namespaced_deployment_scale(name, self.ns, {"spec": {"replicas": replicas}})

    def _release_redis(self) -> None:
        """The hold's timer: Redis may return.  A failure here leaves the lease, which heal retries."""
        if self.redis_held:
            try:
                self._scale_redis(1)
            except ServeChaosError:
                return
            self.redis_held = False

    def kill_node(self, node: str, replacement_delay_s: float = 10.0) -> ActionRecord:
        """Lose ``node`` as this cluster can (``_cut_node``), leased so that ``heal`` -- or the next
        command -- brings it back where it can.  On a cluster serve-chaos made (kind, the k8s
        target) the Node object is then deleted after ``replacement_delay_s``, as the guide's
        ``kubectl delete node`` does; PodGC collects its pods and KubeRay recreates them.  On any
        other cluster the hook's own removal stands (a cloud deletes the Node with its machine):
        serve-chaos deletes no Node it does not own."""
        t0 = time.time()
        ours = [p for p in self.pods() if p.node == node]
        if not ours:
            raise ServeChaosError(f"node {node} runs no pod of ours; refusing to kill it")
        if not self._can_lose_nodes():
            raise ServeChaosError(self.capabilities.why_not("kill_node"))
        self.lease.add_fault("node_loss", node)
        self.killed_nodes.append(node)
        t_cut = self._cut_node(node)
        if self._owns_nodes():
            timer = threading.Timer(replacement_delay_s, self._delete_node, args=(node,))
            timer.start()
            self._timers.append(timer)
        return ActionRecord("kill_node", node, t0, time.time(),
                            {"pods": [{"pod": p.name, "uid": p.uid} for p in ours], "t_network_cut": t_cut,
                             "replacement_delay_s": replacement_delay_s if self._owns_nodes() else None,
                             "node_deleted_by": "serve-chaos" if self._owns_nodes() else "the node-loss hook"})

    def _can_lose_nodes(self) -> bool:
        return self.is_kind or bool(self.target.node_loss_hook)

    def _owns_nodes(self) -> bool:
        """Whether the Nodes are serve-chaos's to delete (the cluster is a test cluster it drives)."""
        return self.is_kind

    def _cut_node(self, node: str) -> float:
        """Make ``node`` disappear; returns when its network was cut (epoch s).  kind: the node's
        container leaves its network, then is killed; elsewhere: the user's hook."""
        if self.is_kind:
            self.cli.node_network(node, connect=False)
            t_cut = time.time()
            self.cli.node_kill(node)
            return t_cut
        import shlex
        import subprocess

        subprocess.run(shlex.split(str(self.target.node_loss_hook).replace("{node}", node)), check=True, timeout=300)
        return time.time()

    def _restore_node(self, node: str) -> bool:
        """Bring a lost node back where this cluster can (kind: reconnect and start its container);
        False where it cannot (the hook's node is gone for good)."""
        if not self.is_kind:
            return False
        self.cli.node_network(node, connect=True)
        self.cli.node_start(node)
        return True

    def _delete_node(self, node: str) -> None:
        try:
            self.core.delete_node(node)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def partition_pod(self, pod: str, reject: bool = False) -> ActionRecord:
        raise ServeChaosError(self.capabilities.why_not("partition_pod"))

    def unpartition_pod(self, pod: str) -> ActionRecord:
        raise ServeChaosError(self.capabilities.why_not("partition_pod"))

    def kill_actor(self, actor_name: str | list[str], namespace: str, no_restart: bool,
                   ignore_missing: bool = False) -> ActionRecord:
        """``ray.kill`` from a Python driver started by exec in the head pod (the guide's way)."""
        names = [actor_name] if isinstance(actor_name, str) else list(actor_name)
        head = self._head_pod()
        source = (Path(__file__).resolve().parents[2] / "raykill.py").read_text()
        command = ["python", "-c", source, "--address=auto", f"--namespace={namespace}",
                   *[f"--name={n}" for n in names]]
        if no_restart:
            command.append("--no-restart")
        if ignore_missing:
            command.append("--ignore-missing")
        t0 = time.time()
        output = self.execs.run(head.metadata.name, head.spec.containers[0].name, command).output
        lines = [ln for ln in output.splitlines() if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"error": "no output from the driver"}
        if "error" in result:
            raise ServeChaosError(f"ray.kill of {names[0]} failed: {result['error']}")
        return ActionRecord("kill_actor", names[0] if len(names) == 1 else f"{len(names)} actors", t0, time.time(),
                            result)

    def signal_process(self, pod: str, pid: int, signal: str) -> ActionRecord:
        """``kill -STOP|-CONT <pid>`` by exec in the pod: the State API's PIDs are the
        container's own (each pod has its own PID namespace)."""
        if signal not in ("STOP", "CONT"):
            raise ServeChaosError(f"signal {signal!r} is not STOP or CONT")
        t0 = time.time()
        result = self._exec(pod, ["kill", f"-{signal}", str(int(pid))])
        if not result.ok:
            raise ServeChaosError(f"kill -{signal} {pid} in pod {pod} failed: "
                                  f"{result.output[:200] or f'exit {result.returncode}'}")
        if signal == "STOP":
            self.lease.add_fault("freeze", f"{pod}:{int(pid)}")
        else:
            self.lease.drop_faults("freeze", f"{pod}:{int(pid)}")
        return ActionRecord(f"signal_{signal}", f"{pod}:{pid}", t0, time.time(), {"pid": int(pid)})

    def kill_process(self, pod: str, name: str) -> ActionRecord:
        """``kill -KILL`` by exec the container's processes whose ``comm`` is ``name``: found by
        walking the pod's own ``/proc`` (its own PID namespace), killed by PID."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name):
            raise ServeChaosError(f"process name {name!r} is not a command name (1-15 letters, digits, _ . -)")
        script = (f'pids=; for d in /proc/[0-9]*; do [ "$(cat $d/comm 2>/dev/null)" = "{name}" ] && '
                  'pids="$pids ${d#/proc/}"; done; [ -n "$pids" ] || { echo "no process named ' + name +
                  '" >&2; exit 3; }; kill -KILL $pids && echo $pids')
        t0 = time.time()
        result = self._exec(pod, ["/bin/sh", "-c", script])
        if not result.ok:
            raise ServeChaosError(f"killing {name} in pod {pod} failed: "
                                  f"{result.output[:200] or f'exit {result.returncode}'}")
        pids = [int(p) for p in result.stdout.split() if p.isdigit()]
        return ActionRecord("kill_process", f"{pod}:{name}", t0, time.time(), {"pids": pids, "name": name})

    def _thaw(self, fault: dict[str, Any]) -> ActionRecord | None:
        """SIGCONT a process this tool froze.  A pod that is gone leaves nothing frozen; a process
        that is gone answers ``No such process`` (fine); an exec that fails leaves the lease."""
        target = fault["target"]
        pod, _, pid = target.rpartition(":")
        t0 = time.time()
        if not self._pod_exists(pod):
            return None
        self._exec(pod, ["/bin/sh", "-c", f"kill -CONT {int(pid)} 2>/dev/null; true"])
        return ActionRecord("thaw", target, t0, time.time(), {})

    def drain_node(self, pod: str, reason: str, deadline_s: float, message: str) -> ActionRecord:
        """``ray drain-node`` by exec in the active head pod, for the Ray node of ``pod`` (found in
        the State API by the pod's IP).  Ray's refusal is a ServeChaosError carrying its reason.
        Leased (kind ``drain`` on the pod): a drain cannot be undone, so ``heal`` force-deletes a
        drained pod still there and KubeRay recreates it.  ``details``: ``node_id`` (hex),
        ``t_deadline`` (epoch s the node is to be lost), ``reason``, ``head``."""
        check_drain(reason, deadline_s)
        target = self._pod(pod)
        ip = target.status.pod_ip or ""
        try:
            nodes = self._session.get(f"{self.dashboard_url()}/api/v0/nodes?limit=1000", timeout=10).json()
        except (requests.RequestException, ValueError) as err:
            raise InfrastructureError(f"the dashboard's State API did not answer ({type(err).__name__})") from None
        rows = ((nodes.get("data") or {}).get("result") or {}).get("result") or []
        node_id = node_id_for_ip(rows, ip)
        if node_id is None:
            raise ServeChaosError(f"no ALIVE Ray node has the IP {ip or '(none)'} of pod {pod}",
                                  hint="the pod's Ray node is gone or not yet registered; see `serve-chaos status`")
        head = self._head_pod()
        t0 = time.time()
        result = self.execs.run(head.metadata.name, head.spec.containers[0].name,
                                drain_command(head.status.pod_ip, node_id, reason, message, deadline_s))
        if not result.ok:
            raise ServeChaosError(f"Ray refused to drain node {node_id[:12]} (pod {pod}): {refusal(result.output)}")
        t_deadline = t0 + deadline_s
        self.lease.add_fault("drain", pod, node_id=node_id, t_deadline=t_deadline)
        return ActionRecord("drain_node", pod, t0, time.time(),
                            {"node_id": node_id, "t_deadline": t_deadline, "reason": reason,
                             "head": head.metadata.name})

    # Gray faults: Chaos Mesh objects, or a slowed process (``grayfaults.py`` says what each
    # leases and what ``lift`` returns).
    def starve_cpu(self, pod: str, cpu_share: float, duration_s: float) -> ActionRecord:
        return self.gray.starve_cpu(pod, cpu_share, duration_s)

    def press_memory(self, pod: str, size_bytes: int, rate_bytes_s: float, duration_s: float) -> ActionRecord:
        return self.gray.press_memory(pod, size_bytes, rate_bytes_s, duration_s)

    def lose_packets(self, pod: str, percent: float, duration_s: float) -> ActionRecord:
        return self.gray.lose_packets(pod, percent, duration_s)

    def delay_packets(self, pod: str, delay_ms: float, jitter_ms: float, duration_s: float) -> ActionRecord:
        return self.gray.delay_packets(pod, delay_ms, jitter_ms, duration_s)

    def slow_process(self, pod: str, pid: int, stopped_ms: float, period_ms: float,
                     duration_s: float) -> ActionRecord:
        return self.gray.slow_process(pod, pid, stopped_ms, period_ms, duration_s)

    def lift(self, fault: str, pod: str) -> ActionRecord:
        if fault not in GRAY_FAULTS:
            raise ServeChaosError(f"{fault!r} is not a gray fault", hint=f"one of {', '.join(GRAY_FAULTS)}")
        return self.gray.lift(fault, pod)

    def _peers(self, pod: str) -> list[str]:
        """The other Running pods of the cluster under test (a lossy pod's peers)."""
        return sorted(p.name for p in self.pods() if p.name != pod and p.phase == "Running")

    def _heal_gray(self, fault: dict[str, Any]) -> ActionRecord | None:
        t0 = time.time()
        return ActionRecord(f"heal_{fault['kind']}", fault["target"], t0, time.time(), self.gray.undo(fault))
