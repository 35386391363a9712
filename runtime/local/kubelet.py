"""The kubelet of the local cluster: pods as processes in their own network namespace and cgroup.

It starts a pod's next incarnation from the spec the operator gives it, notices
its exit, restarts a crashed pod with CrashLoopBackOff, deletes pods gracefully
(preStop, SIGTERM, grace period, SIGKILL) or at once, loses nodes, cuts and
restores pod networks, runs commands inside a pod (``kubectl exec``), and tears
it all down.  Every process is ended by PID (or by its pod's cgroup).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from runtime.cluster import ActionRecord
from runtime.errors import ServeChaosError
from runtime.local import cgroups, mounts, netns, procs
from runtime.local.config import LocalClusterConfig
from runtime.local.layout import RunLayout
from runtime.local.pods import Node, Pod

#: ``pod -> (command, extra env)``: what a pod runs (the operator's pod template).
PodSpec = Callable[[Pod], tuple[list[str], dict[str, str]]]
Event = Callable[..., Any]


def session_dir(pod_dir: Path) -> Path:
    """The Ray session directory in a pod's temp dir, as the host sees it.

    Ray links ``session_latest`` to an absolute path as the pod sees it: under the shared
    temp dir its mount namespace lays the pod's own directory over.  From the host that
    path is the shared directory, where the session is not, so the link's last component
    is looked up in the pod's own directory."""
    latest = pod_dir / "session_latest"
    try:
        return pod_dir / Path(os.readlink(latest)).name
    except OSError:
        return latest


class Kubelet:
    """Pods and nodes of one local cluster.  ``lock`` guards every pod and node."""

    def __init__(self, config: LocalClusterConfig, layout: RunLayout, mode: str, event: Event,
                 lock: threading.RLock) -> None:
        self.config = config
        self.layout = layout
        self.mode = mode  # netns | loopback
        self.event = event
        self.lock = lock
        self.pods: dict[str, Pod] = {}
        self.nodes: dict[str, Node] = {}
        self.children: dict[int, subprocess.Popen] = {}
        self.exit_status: dict[int, int] = {}
        self.cgroup_base: Path | None = None
        #: cgroup v1 bases by controller (``cpu``, ``memory``): a pod's CPU quota and memory limit.
        self.v1_bases: dict[str, Path] = {}
        self.pending_cgroup_removal: list[Path] = []
        self.serial = 0
        self.subnet: ipaddress.IPv4Network | None = None
        self.gateway = ""
        self.fixed_ips: dict[str, str] = {}
        self.free_ips: list[str] = []
        self.pod_spec: PodSpec | None = None
        #: Called with each pod once it started (the operator's head-restart rule hooks in here).
        self.on_started: Callable[[Pod], None] = lambda pod: None
        #: Called to put a pod into / take it out of the front door's rotation.
        self.endpoint_up: Callable[[Pod], None] = lambda pod: None
        self.endpoint_down: Callable[[Pod], None] = lambda pod: None

    @property
    def shared_temp_dir(self) -> Path:
        """The temp dir path every Ray pod is given; in each pod's own mount namespace it is that
        pod incarnation's own directory (``mounts.pod_view``)."""
        return self.layout.root / "ray"

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        if self.mode == "netns":
            self.subnet = netns.pick_subnet()
            hosts = list(self.subnet.hosts())
            self.gateway = str(hosts[0])
            netns.create_bridge(self.layout.bridge, self.gateway, self.subnet.prefixlen)
            root = cgroups.cgroup2_root()
            if root is not None and cgroups.supports_kill(root):
                self.cgroup_base = cgroups.create(root / self.layout.cgroup_name)
                for controller in cgroups.V1_CONTROLLERS:
                    v1 = cgroups.v1_root(controller)
                    if v1 is not None:
                        self.v1_bases[controller] = cgroups.create(v1 / self.layout.cgroup_name)
        else:
            octet = 20 + int(self.layout.label, 16) % 200
            self.subnet = ipaddress.ip_network(f"127.0.{octet}.0/24")
            self.gateway = "127.0.0.1"
        self.shared_temp_dir.mkdir(parents=True, exist_ok=True)
        hosts = [str(h) for h in self.subnet.hosts()]
        self.fixed_ips = {"redis": hosts[1], "head": hosts[9]}
        self.free_ips = hosts[19:250]
        self._define_topology()

    def _define_topology(self) -> None:
        cfg = self.config
        self.nodes["node-redis"] = Node("node-redis", labels={"serve-chaos/role": "redis"})
        self.nodes["node-head"] = Node("node-head", labels={"serve-chaos/role": "head"})
        self.pods["redis"] = Pod("redis", "redis", "node-redis", "node-redis", serve_port=0)
        self.pods["head"] = Pod("head", "head", "node-head", "node-head", serve_port=cfg.serve_port)
        for i in range(1, cfg.workers + 1):
            node = f"node-w{i}"
            self.nodes[node] = Node(node, labels={"serve-chaos/role": "worker"})
            port = cfg.serve_port if self.mode == "netns" else cfg.serve_port + i
            self.pods[f"worker-{i}"] = Pod(f"worker-{i}", "worker", node, node, serve_port=port, slot_index=i)
        for i in range(1, cfg.spare_nodes + 1):
            node = f"node-spare-{i}"
            self.nodes[node] = Node(node, labels={"serve-chaos/role": "spare"})

    # ------------------------------------------------------------------ processes
    def spawn(self, cmd: list[str], log: Any, role: str, pod: Pod | None = None,
              extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)
        env.update(extra_env or {})
        env[procs.RUN_ENV] = self.layout.label
        env[procs.ROLE_ENV] = role
        if pod is not None:
            env[procs.POD_ENV] = f"{pod.name}.{pod.serial}"
        if pod is not None and pod.cgroup is not None:
            # Join the pod's cgroups before entering its namespace: nothing the pod
            # starts can escape them, and one cgroup.kill ends them all.
            groups = [pod.cgroup, *pod.v1_groups.values()]
            env["SC_POD_CGROUPS"] = " ".join(str(g / "cgroup.procs") for g in groups)
            cmd = ["sh", "-c", 'for f in $SC_POD_CGROUPS; do echo $$ > "$f" || exit 126; done; exec "$@"', "pod",
                   *cmd]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=str(self.layout.root))
        self.children[proc.pid] = proc
        return proc

    def reap(self) -> list[int]:
        exited = []
        for pid, status in procs.reap_children():
            self.exit_status[pid] = status
            proc = self.children.pop(pid, None)
            if proc is not None:
                # Tell Popen the status is taken so it never waits on a reused PID.
                proc.returncode = os.waitstatus_to_exitcode(status)
            exited.append(pid)
        return exited

    def members(self, pod: Pod) -> list[int]:
        """The PIDs of every process of the pod's current incarnation."""
        if pod.cgroup is not None:
            return cgroups.members(pod.cgroup)
        tag = f"{pod.name}.{pod.serial}"
        return [pid for pid, env in procs.marked_processes(self.layout.label).items()
                if env.get(procs.POD_ENV) == tag]

    def frozen(self, pod: Pod) -> bool:
        """Whether any process of the pod is stopped (SIGSTOP): the pod looks alive but answers nothing."""
        return pod.pid is not None and any(procs.is_stopped(pid) for pid in self.members(pod))

    def signal_process(self, pod: Pod, pid: int, name: str) -> ActionRecord:
        """SIGSTOP or SIGCONT one process of the pod's current incarnation (never another's)."""
        sig = {"STOP": signal.SIGSTOP, "CONT": signal.SIGCONT}.get(name)
        if sig is None:
            raise ServeChaosError(f"signal {name!r} is not STOP or CONT")
        t0 = time.time()
        with self.lock:
            if pid not in self.members(pod):
                raise ServeChaosError(f"PID {pid} is not a process of pod {pod.name}",
                                      hint="the process may have exited; take a fresh snapshot")
            os.kill(pid, sig)
        self.event(f"process_{name.lower()}", pod=pod.name, pid=pid)
        return ActionRecord(f"signal_{name}", f"{pod.name}:{pid}", t0, time.time(), {"pid": pid})

    def thaw(self, pod: Pod) -> ActionRecord | None:
        """SIGCONT every stopped process of the pod."""
        stopped = [pid for pid in self.members(pod) if procs.is_stopped(pid)]
        if not stopped:
            return None
        t0 = time.time()
        procs.signal_pids(stopped, signal.SIGCONT)
        return ActionRecord("thaw", pod.name, t0, time.time(), {"pids": stopped})

    def kill_processes(self, pod: Pod) -> None:
        if pod.cgroup is not None:
            cgroups.kill(pod.cgroup)
        else:
            procs.signal_pids(self.members(pod), signal.SIGKILL)

    def exec_in(self, pod: Pod, cmd: list[str], log: Any) -> subprocess.Popen:
        """Run ``cmd`` inside the pod's network and mount namespaces (``kubectl exec``)."""
        if pod.net is not None:
            enter = mounts.enter_prefix(pod.pid) if pod.private_mounts and pod.pid else []
            cmd = netns.nsenter_prefix(pod.net, *enter) + cmd
        return self.spawn(cmd, log, role="exec")

    def spawn_in_pod(self, pod: Pod, cmd: list[str], log: Any) -> subprocess.Popen:
        """Run ``cmd`` inside the pod: its network namespace and its cgroups, so it counts
        against the pod's limits and dies with the pod (``kubectl exec`` into its container)."""
        if pod.net is not None:
            cmd = netns.nsenter_prefix(pod.net) + cmd
        return self.spawn(cmd, log, role="exec", pod=pod)

    def raylet_log(self, pod: Pod) -> Path:
        """The pod's raylet log as the host sees it."""
        return session_dir(self.layout.pod_dir(pod.name, pod.serial)) / "logs" / "raylet.out"

    # ------------------------------------------------------------------ pod lifecycle
    def _allocate_ip(self, pod: Pod) -> str:
        """Head and Redis keep their address (a Service); a new worker pod gets a new one."""
        if pod.role in self.fixed_ips:
            return self.fixed_ips[pod.role]
        return self.free_ips.pop(0)

    def _release_ip(self, ip: str) -> None:
        if ip and ip not in self.fixed_ips.values() and ip not in self.free_ips:
            self.free_ips.append(ip)

    def _new_network(self, pod: Pod) -> None:
        pod.ip = self._allocate_ip(pod)
        if self.mode != "netns" or pod.net is not None:
            return
        # A stable-IP pod (head/redis) may be coming back while its old network
        # still sits silent on a lost node: free the address first.
        for node in self.nodes.values():
            for net in list(node.dead_nets):
                if net.ip == pod.ip:
                    netns.delete_pod_net(net)
                    node.dead_nets.remove(net)
        pod.net = netns.PodNet(netns=self.layout.netns(pod.name, pod.serial), host_if=self.layout.host_if(pod.serial),
                               ip=pod.ip, prefix=self.subnet.prefixlen)
        netns.create_pod_net(self.layout.bridge, pod.net)

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

    def _discard_net(self, pod: Pod) -> None:
        """Drop a deleted pod's network -- except for Redis and the head.

        Those are reached through Services (a stable address); while no pod
        backs a Service, connections to it are refused at once.  Keeping the
        namespace (nothing listening) gives that: peers get RST and retry, not
        silence, which would leave their SYNs backing off for a minute.
        """
        if pod.ip in self.fixed_ips.values():
            return
        if pod.net is not None:
            netns.delete_pod_net(pod.net)
            pod.net = None
        self._release_ip(pod.ip)

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

    # ------------------------------------------------------------------ nodes
    def node(self, name: str) -> Node:
        if name not in self.nodes:
            raise ServeChaosError(f"no node named {name!r}", hint=f"nodes are: {', '.join(sorted(self.nodes))}")
        return self.nodes[name]

    def pod(self, name: str) -> Pod:
        if name not in self.pods:
            raise ServeChaosError(f"no pod named {name!r}", hint=f"pods are: {', '.join(sorted(self.pods))}")
        return self.pods[name]

    def lose_node(self, node_name: str, replacement_delay_s: float | None) -> ActionRecord:
        """The node goes silent, then its pods die; they come back elsewhere after the delay."""
        if self.mode != "netns":
            raise ServeChaosError("node loss needs network namespaces (root)", hint="run as root")
        t0 = time.time()
        delay = self.config.timing.node_replacement_delay_s if replacement_delay_s is None else replacement_delay_s
        with self.lock:
            node = self.node(node_name)
            if node.state != "Ready":
                raise ServeChaosError(f"node {node_name} is {node.state}, not Ready")
            victims = [p for p in self.pods.values() if p.node == node_name and p.phase != "Pending"]
            node.state = "Lost"
            # Cut the network first so peers see silence, not refused connections.
            for pod in victims:
                if pod.net is not None:
                    netns.partition(pod.net.netns)
                    pod.partitioned = True
            t_cut = time.time()
            before = [{"pod": p.name, "uid": p.uid, "pid": p.pid, "ip": p.ip} for p in victims]
            for pod in victims:
                pod.displaced = True
                pod.start_at = time.time() + delay
                if pod.net is not None:
                    node.dead_nets.append(pod.net)
                    pod.net = None
                # The front door keeps the dead endpoint until its readiness probe
                # fails, as a Service does; nothing to tell it here.
                self.kill_processes(pod)
        self.event("node_lost", node=node_name, pods=[p["pod"] for p in before], delay_s=delay)
        return ActionRecord("kill_node", node_name, t0, time.time(),
                            {"pods": before, "t_network_cut": t_cut, "replacement_delay_s": delay})

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

    # ------------------------------------------------------------------ partitions
    def partition(self, name: str) -> ActionRecord:
        if self.mode != "netns":
            raise ServeChaosError("partitions need network namespaces (root)", hint="run as root")
        t0 = time.time()
        with self.lock:
            pod = self.pod(name)
            if pod.net is None or pod.phase != "Running":
                raise ServeChaosError(f"pod {name} is {pod.phase}; cannot partition it")
            netns.partition(pod.net.netns)
            pod.partitioned = True
        self.event("pod_partitioned", pod=name, ip=pod.ip)
        return ActionRecord("partition_pod", name, t0, time.time(), {"ip": pod.ip, "uid": pod.uid})

    def unpartition(self, name: str) -> ActionRecord:
        t0 = time.time()
        with self.lock:
            pod = self.pod(name)
            if pod.net is not None and pod.partitioned:
                netns.unpartition(pod.net.netns)
            pod.partitioned = False
        self.event("pod_unpartitioned", pod=name)
        return ActionRecord("unpartition_pod", name, t0, time.time(), {})

    # ------------------------------------------------------------------ heal
    def release(self, name: str) -> ActionRecord | None:
        """A pod held down on purpose (``down_for_s``) may come back now."""
        pod = self.pod(name)
        if pod.phase == "Pending" and pod.start_at is not None and pod.start_at > time.time():
            pod.start_at = time.time()
            return ActionRecord("release_pod", pod.name, time.time(), time.time(), {})
        return None

    def heal_node(self, node: Node) -> ActionRecord:
        t0 = time.time()
        for net in node.dead_nets:
            netns.delete_pod_net(net)
            self._release_ip(net.ip)
        node.dead_nets.clear()
        node.state = "Ready"
        self.event("node_healed", node=node.name)
        return ActionRecord("heal_node", node.name, t0, time.time(), {})

    def heal(self, pods: set[str] | None = None, nodes: set[str] | None = None) -> list[ActionRecord]:
        """Undo partitions, holds and lost nodes -- all of them, or those named."""
        records: list[ActionRecord] = []
        with self.lock:
            for pod in self.pods.values():
                if pods is not None and pod.name not in pods:
                    continue
                if pod.partitioned and not pod.displaced and pod.net is not None:
                    records.append(self.unpartition(pod.name))
                released = self.release(pod.name)
                if released is not None:
                    records.append(released)
                thawed = self.thaw(pod) if pod.pid is not None else None
                if thawed is not None:
                    records.append(thawed)
            for node in self.nodes.values():
                if node.state == "Lost" and (nodes is None or node.name in nodes):
                    records.append(self.heal_node(node))
        return records

    def faults_in_effect(self) -> list[str]:
        """What is broken on purpose right now, whoever did it."""
        with self.lock:
            found = [f"pod {p.name} is partitioned" for p in self.pods.values() if p.partitioned and not p.displaced]
            found += [f"node {n.name} is lost" for n in self.nodes.values() if n.state == "Lost"]
            found += [f"pod {p.name} is held down" for p in self.pods.values()
                      if p.phase == "Pending" and p.start_at is not None and p.start_at > time.time() + 1.0]
            found += [f"pod {p.name} is frozen (SIGSTOP)" for p in self.pods.values() if self.frozen(p)]
        return found

    # ------------------------------------------------------------------ the loop
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

    def node_states(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"name": n.name, "state": n.state,
                     "pods": [p.name for p in self.pods.values() if p.node == n.name and p.phase != "Lost"],
                     "labels": n.labels} for n in self.nodes.values()]

    def teardown(self, others: list[int]) -> None:
        """Kill every pod, ``others`` (PIDs) and every child; remove cgroups and networks."""
        with self.lock:
            for pod in self.pods.values():
                pod.start_at = None
                if pod.pid is not None or pod.cgroup is not None:
                    self.kill_processes(pod)
        procs.kill_and_wait(others + list(self.children), timeout_s=10)
        self.reap()
        if self.cgroup_base is not None:
            cgroups.remove(self.cgroup_base, timeout_s=5)
        for base in self.v1_bases.values():
            cgroups.remove(base, timeout_s=5)
        if self.mode == "netns":
            for name in netns.list_netns(f"sc-{self.layout.label}-"):
                netns.delete_netns(name)
            for link in netns.list_links(f"s{self.layout.label}"):
                netns.delete_link(link)
            netns.delete_link(self.layout.bridge)
