"""``LocalCluster``: the Cluster protocol over the local supervisor's control API."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from runtime.app.serve_config import PROXY_ROUTES_PATH, deploy_failure, deployed_config_problem, desired_replicas
from runtime.cluster import ActionRecord, Capabilities, ClusterStatus, Endpoints, NodeInfo, PodInfo
from runtime.errors import ClusterLost, ConfigError, EnvironmentProblem, InfrastructureError, ServeChaosError
from runtime.local import cgroups, leftovers, netns, procs
from runtime.local.gray import delay_supported
from runtime.local.config import LocalClusterConfig
from runtime.local.layout import RunLayout, new_label
from runtime.local import control
from runtime.local.operator import redis_server_binary
from runtime.local.rayenv import Progress, ray_runtime
from runtime.ray_compat import FEATURE_SINCE, features
from runtime.local.supervisor import FORCED_SUFFIX
from runtime.waiting import NotYet, wait_until


@functools.lru_cache(maxsize=1)
def _delay_support() -> tuple[bool, str]:
    return delay_supported()


def resolve_isolation(requested: str) -> str:
    ok, why = netns.netns_supported()
    if requested == "netns" and not ok:
        raise EnvironmentProblem(
            f"isolation 'netns' is not possible here: {why}",
            hint="run as root, or pass --isolation loopback",
        )
    if requested == "auto":
        return "netns" if ok else "loopback"
    return requested


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_platform() -> None:
    if os.uname().sysname != "Linux":
        raise EnvironmentProblem(
            f"the embedded local cluster needs Linux, this is {os.uname().sysname}",
            hint="run on Linux, or use --target kind",
        )


def preflight(config: LocalClusterConfig) -> str:
    """Check the machine; return the isolation mode.  One clear error per problem.

    Run after leftovers of dead runs are reaped: they may hold the ports.
    """
    check_platform()
    redis_server_binary()
    mode = resolve_isolation(config.isolation)
    if mode == "loopback" and features(config.ray_version).worker_proxy_port_env is None:
        raise EnvironmentProblem(
            f"loopback isolation gives every worker pod's Serve proxy a port of its own, which Ray "
            f"{config.ray_version} cannot do (RAY_SERVE_WORKER_PROXY_HTTP_PORT is first in Ray "
            f"{FEATURE_SINCE['worker_proxy_port_env']})",
            hint="run as root (namespace isolation), or use --ray-version "
                 f"{FEATURE_SINCE['worker_proxy_port_env']}")
    if not port_free("127.0.0.1", config.front_port):
        raise EnvironmentProblem(
            f"port {config.front_port} on 127.0.0.1 (the front door) is already in use",
            hint="stop whatever listens there, or pass --front-port with a free port",
        )
    if mode == "loopback":
        # Without namespaces these bind on every address of the host.
        wanted = {port: "a Serve proxy port" for port in [config.serve_port + i for i in range(config.workers + 1)]}
        wanted[config.gcs_port] = "the GCS port"
        for port, what in wanted.items():
            if not port_free("0.0.0.0", port):
                raise EnvironmentProblem(
                    f"port {port} ({what} in loopback isolation) is already in use",
                    hint="free it, or use root for namespace isolation",
                )
    return mode


class LocalCluster:
    """A real multi-node Ray cluster on this machine, run by a background supervisor.

    ``owner_pid``: the supervisor tears the cluster down when that process dies
    (pytest passes its own PID unless --keep-cluster).  ``None`` keeps it up
    until ``down()`` (``serve-chaos up``).
    """

    name = "local"

    def __init__(self, config: LocalClusterConfig | None = None, owner_pid: int | None = None) -> None:
        self.config = config or LocalClusterConfig()
        self.owner_pid = owner_pid
        self.home = Path(self.config.home)
        self.label: str | None = None
        self._control: dict[str, Any] | None = None
        self._proc: subprocess.Popen | None = None
        self._session = requests.Session()
        self.created = False
        self.mode: str | None = None
        #: Told each step of making the Ray environment the pods need (first use of a version).
        self.progress: Progress | None = None

    # ------------------------------------------------------------------ lifecycle
    def attach(self) -> bool:
        """Attach to a live cluster of this tool, if there is one."""
        live = leftovers.live_runs(self.home)
        if not live:
            return False
        self.label = sorted(live)[0]
        self._control = RunLayout(self.home, self.label).read_control()
        if self._control is None:
            return False
        state = self.state()
        self.mode = state["mode"]
        return True

    def up(self, timeout_s: float = 180.0) -> None:
        if self.attach():
            self.wait_ready(timeout_s)
            return
        check_platform()
        leftovers.reap_all(self.home)
        mode = preflight(self.config)
        # The pods' Ray, made now if this version is new here (the supervisor only finds it).
        ray_runtime(self.config.ray_version, progress=self.progress)
        self.home.mkdir(parents=True, exist_ok=True)
        self.label = new_label()
        self.mode = mode
        layout = RunLayout(self.home, self.label)
        layout.root.mkdir(parents=True)
        cmd = [
            sys.executable,
            "-m",
            "runtime.local.supervisor",
            "--config",
            self.config.to_json(),
            "--label",
            self.label,
            "--mode",
            mode,
        ]
        if self.owner_pid:
            cmd += ["--owner-pid", str(self.owner_pid)]
        env = dict(os.environ, **{procs.RUN_ENV: self.label, procs.ROLE_ENV: "supervisor"})
        log = open(self.home / f"{self.label}.supervisor.log", "ab")
        self._proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.created = True

        def control_file() -> None:
            self._raise_if_supervisor_died()
            self._control = layout.read_control()
            if self._control is None:
                raise NotYet("no control file yet")

        try:
            wait_until(control_file, 30.0, 0.1, what="the cluster supervisor to start",
                       evidence=str(self.home / f"{self.label}.supervisor.log"))
        except InfrastructureError:
            self.down()
            raise
        try:
            self.wait_ready(timeout_s)
        except ServeChaosError as err:
            # A cluster that never became ready is of no use to anyone: keep its
            # logs for the error message, remove everything else.
            kept = self._keep_logs()
            self.down()
            raise InfrastructureError(err.what, evidence=kept, hint=err.hint) from None
        except BaseException:
            self.down()
            raise

    def _keep_logs(self) -> str:
        """Copy the run's logs to ``<home>/failed-bringup-logs`` so they outlive teardown."""
        dst = self.home / "failed-bringup-logs"
        shutil.rmtree(dst, ignore_errors=True)
        if self.label is not None:
            src = RunLayout(self.home, self.label).logs
            if src.exists():
                shutil.copytree(src, dst)
        return str(dst)

    def _raise_if_supervisor_died(self) -> None:
        if self._proc is None or self._proc.poll() is None:
            return
        failed = self.home / f"{self.label}.failed"
        why = failed.read_text().strip() if failed.exists() else f"exit code {self._proc.returncode}"
        log = self.home / f"{self.label}.supervisor.log"
        raise InfrastructureError(f"the cluster supervisor stopped: {why}", evidence=str(log))

    def down(self, force: bool = False, timeout_s: float = 60.0) -> None:
        """Stop the supervisor (it tears everything down) and clean any leftovers.

        Refused while another harness holds the run lock, unless ``force``: that
        run then ends as interrupted."""
        if self.label is None and not self.attach():
            leftovers.reap_all(self.home)
            return
        pid = leftovers.live_supervisor(self.home, self.label) if self.label else None
        try:
            self._call("shutdown", force=force)
        except InfrastructureError:
            pass
        self._wait_gone(pid, timeout_s)
        leftovers.reap_all(self.home)
        for suffix in (".supervisor.log", ".failed"):
            (self.home / f"{self.label}{suffix}").unlink(missing_ok=True)
        self.label = None
        self._control = None

    def _wait_gone(self, pid: int | None, timeout_s: float) -> None:
        def gone() -> None:
            if self._proc is not None:
                self._proc.poll()
            if pid and procs.alive(pid):
                raise NotYet(f"supervisor PID {pid} still running")

        try:
            wait_until(gone, timeout_s, 0.2, what="the supervisor to tear down")
        except InfrastructureError:
            procs.kill_and_wait([pid])
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    # ------------------------------------------------------------------ control API (control.ROUTES)
    def _call(self, route: str, timeout_s: float = 120.0, path_params: dict[str, str] | None = None,
              **body: Any) -> Any:
        if self._control is None:
            raise InfrastructureError("no local cluster is up", hint="run `serve-chaos up` first")
        method, path = control.path_of(route, **(path_params or {}))
        headers = {control.TOKEN_HEADER: self._control["token"], control.OWNER_HEADER: str(os.getpid())}
        try:
            if method == "GET":
                resp = self._session.get(self._control["url"] + path, params=body, headers=headers, timeout=10)
            else:
                resp = self._session.post(self._control["url"] + path, json=body, headers=headers, timeout=timeout_s)
        except requests.RequestException as err:
            lost = self.lost()
            raise (ClusterLost(lost) if lost else InfrastructureError(
                f"the cluster supervisor does not answer: {err}", hint="is the cluster up? `serve-chaos status`"))
        data = resp.json()
        if resp.status_code != 200:
            raise ServeChaosError(data.get("error", "control call failed"), hint=data.get("hint", ""),
                                  evidence=data.get("evidence", ""))
        return data

    def state(self) -> dict[str, Any]:
        return self._call("state")

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        return self._call("events_since", since=since)

    def lock(self, command: str) -> None:
        self._call("lock", command=command)

    def unlock(self) -> None:
        try:
            self._call("unlock")
        except InfrastructureError:
            pass  # a cluster that is gone holds no lock

    def interference(self) -> list[str]:
        """What keeps this cluster from being this harness's alone: faults in effect,
        partitioned or frozen pods, load generators of another harness, another run's lock."""
        state = self.state()
        me = os.getpid()
        found = list(state.get("faults_in_effect") or [])
        found += [f"a {x['kind'].replace('_', ' ')} of {x['target']} owned by PID {x['owner']} is in effect"
                  for x in (state.get("leases") or {}).get("faults", []) if x["owner"] != me]
        found += [f"a load generator (PID {x['pid']}) of another harness (PID {x['owner']}) is running"
                  for x in state.get("loads") or [] if x["owner"] != me]
        lock = (state.get("leases") or {}).get("lock")
        if lock and lock["owner"] != me:
            found.append(f"the cluster is locked by PID {lock['owner']} ({lock['command']})")
        return list(dict.fromkeys(found))

    def lost(self) -> str | None:
        """Why this cluster is gone from under us, or None while it is there."""
        if self.label is None:
            return None
        forced = self.home / f"{self.label}{FORCED_SUFFIX}"
        if forced.exists():
            return forced.read_text().strip()
        pid = (self._control or {}).get("pid")
        if pid and not procs.alive(pid):
            return f"the cluster supervisor (PID {pid}) is gone"
        return None

    # ------------------------------------------------------------------ Cluster protocol
    @property
    def capabilities(self) -> Capabilities:
        netns_mode = (self.mode or resolve_isolation(self.config.isolation)) == "netns"
        why = "needs network namespaces (run as root)"
        v1 = {c: netns_mode and cgroups.v1_root(c) is not None for c in cgroups.V1_CONTROLLERS}
        delay_ok, delay_why = _delay_support()
        return Capabilities(
            kill_pod=True,
            kill_node=netns_mode,
            partition_pod=netns_mode and netns.nft_available(),
            kill_actor=True,
            kill_redis=True,
            switch_gcs_ft=True,
            direct_pod_endpoints=True,
            drain_node=True,
            starve_cpu=v1["cpu"],
            press_memory=v1["memory"],
            lose_packets=netns_mode and netns.nft_available(),
            delay_packets=delay_ok,
            slow_process=True,
            reasons={
                "kill_node": f"node loss {why}",
                "partition_pod": f"partitions {why} and nftables (apt-get install nftables)",
                "lose_packets": f"packet loss {why} and nftables (apt-get install nftables)",
                "starve_cpu": f"CPU starvation {why} and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu",
                "press_memory": f"memory pressure {why} and the cgroup v1 memory controller at /sys/fs/cgroup/memory",
                "delay_packets": delay_why,
                "upgrade_cluster": "a RayService upgrade (a second Ray cluster beside the first) is not written "
                                   "for the local target yet, though memory would allow it (one cluster peaks at "
                                   "3.8 GB RSS, benchmarks/bringup.py); it runs on kind",
            },
        )

    def pods(self) -> list[PodInfo]:
        return self._pod_infos(self.state())

    def nodes(self) -> list[NodeInfo]:
        return self._node_infos(self.state())

    @staticmethod
    def _pod_infos(state: dict[str, Any]) -> list[PodInfo]:
        return [PodInfo(**{k: v for k, v in p.items() if k in PodInfo.__dataclass_fields__}) for p in state["pods"]]

    @staticmethod
    def _node_infos(state: dict[str, Any]) -> list[NodeInfo]:
        return [NodeInfo(name=n["name"], state=n["state"], pods=tuple(n["pods"]), labels=n["labels"])
                for n in state["nodes"]]

    def endpoints(self) -> Endpoints:
        state = self.state()
        pods = {p["name"]: f"http://{p['ip']}:{p['serve_port']}" for p in state["pods"]
                if p["role"] != "redis" and p["ip"]}
        # The head keeps its name and address across recreations (a Service-like stable IP).
        heads = [p["name"] for p in state["pods"] if p["role"] == "head" and p["name"] in pods]
        return Endpoints(front_door=state["front_door"], dashboard=state["dashboard"], pods=pods,
                         roles={"head": pods[heads[0]]} if heads else {})

    def status(self) -> ClusterStatus:
        state = self.state()
        leases = state.get("leases") or {}
        lock = leases.get("lock")
        faults = [f"{x['kind'].replace('_', ' ')} {x['target']} (PID {x['owner']})" for x in leases.get("faults", [])]
        unowned = [f for f in state.get("faults_in_effect") or []
                   if not any(x["target"] in f for x in leases.get("faults", []))]
        return ClusterStatus(target=self.name, label=state["label"], mode=state["mode"], gcs_ft=state["gcs_ft"],
                             front_door=state["front_door"], dashboard=state["dashboard"],
                             pods=tuple(self._pod_infos(state)), nodes=tuple(self._node_infos(state)),
                             extra={"locked_by": f"PID {lock['owner']} ({lock['command']})" if lock else None,
                                    "faults_in_effect": faults + unowned,
                                    "load_generators": [f"PID {x['pid']} for PID {x['owner']}"
                                                        for x in state.get("loads") or []],
                                    "subnet": state["subnet"], "supervisor_pid": state["supervisor_pid"],
                                    "ray": (state.get("settings") or {}).get("ray_version")})

    def settings(self) -> dict[str, Any]:
        return self.state()["settings"]

    def serve_config(self) -> dict[str, Any]:
        return self.state()["serve_config"]

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        return ActionRecord(**self._call("apply_serve_config", config=config, replace=replace))

    def kill_pod(self, pod: str, graceful: bool = True, grace_period_s: float = 30.0,
                 down_for_s: float | None = None) -> ActionRecord:
        return ActionRecord(**self._call("kill_pod", path_params={"pod": pod}, graceful=graceful,
                                         grace_period_s=grace_period_s, down_for_s=down_for_s))

    def kill_node(self, node: str, replacement_delay_s: float = 10.0) -> ActionRecord:
        return ActionRecord(**self._call("kill_node", path_params={"node": node},
                                         replacement_delay_s=replacement_delay_s))

    def partition_pod(self, pod: str) -> ActionRecord:
        return ActionRecord(**self._call("partition_pod", path_params={"pod": pod}))

    def unpartition_pod(self, pod: str) -> ActionRecord:
        return ActionRecord(**self._call("unpartition_pod", path_params={"pod": pod}))

    def kill_actor(self, actor_name: str | list[str], namespace: str, no_restart: bool,
                   ignore_missing: bool = False) -> ActionRecord:
        return ActionRecord(**self._call("kill_actor", name=actor_name, namespace=namespace, no_restart=no_restart,
                                         ignore_missing=ignore_missing))

    def signal_process(self, pod: str, pid: int, signal: str) -> ActionRecord:
        return ActionRecord(**self._call("signal_process", path_params={"pod": pod}, pid=pid, signal=signal))

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

    def set_gcs_ft(self, enabled: bool, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        return ActionRecord(**self._call("set_gcs_ft", enabled=enabled, serve_config=serve_config))

    def heal(self) -> list[ActionRecord]:
        return [ActionRecord(**r) for r in self._call("heal")]

    # ------------------------------------------------------------------ readiness
    def readiness_problem(self) -> str | None:
        """None when every pod runs, the app is RUNNING with all replicas, and the front door serves."""
        state = self.state()
        lost = {n["name"] for n in state["nodes"] if n["state"] != "Ready"}
        for pod in state["pods"]:
            if pod["node"] in lost:
                continue
            if pod["phase"] != "Running":
                return f"pod {pod['name']} is {pod['phase']}"
        try:
            details = self._session.get(f"{state['dashboard']}/api/serve/applications/", timeout=5).json()
        except (requests.RequestException, ValueError) as err:
            return f"dashboard not answering ({type(err).__name__})"
        failed = deploy_failure(details)
        if failed is not None:
            raise failed
        mismatch = deployed_config_problem(state["serve_config"], details)
        if mismatch:
            return mismatch
        want = desired_replicas(state["serve_config"])
        running = 0
        for app in (details.get("applications") or {}).values():
            if app.get("status") != "RUNNING":
                return f"app {app.get('name')} is {app.get('status')}"
            for dep in app.get("deployments", {}).values():
                running += sum(1 for r in dep.get("replicas", []) if r.get("state") == "RUNNING")
        if running != want:
            return f"{running}/{want} replicas RUNNING"
        try:
            resp = self._session.get(state["front_door"] + PROXY_ROUTES_PATH, timeout=5)
        except requests.RequestException as err:
            return f"front door not serving ({type(err).__name__})"
        if resp.status_code != 200:
            return f"front door answered {resp.status_code}"
        return None

    def wait_ready(self, timeout_s: float | None = None) -> None:
        timeout_s = 120.0 if timeout_s is None else timeout_s

        def check() -> None:
            self._raise_if_supervisor_died()
            problem = self.readiness_problem()
            if problem:
                raise NotYet(problem)

        # A dead supervisor raises InfrastructureError, which is not retried.
        wait_until(check, timeout_s, period_s=1.0, what="the local cluster to be ready",
                   evidence=str(self.home / (self.label or "") / "logs"),
                   hint="see the pod logs there; `serve-chaos status` shows pods and replicas")


def load_config_file(path: str | None) -> LocalClusterConfig:
    """A LocalClusterConfig from a JSON file (or the defaults)."""
    if path is None:
        return LocalClusterConfig()
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read cluster config {path}: {err.strerror}") from None
    except ValueError as err:
        raise ConfigError(f"cluster config {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"cluster config {path} must hold a JSON object")
    return LocalClusterConfig.from_dict(data)
