"""The RayService operator of the local cluster: what KubeRay does for a RayService.

It writes the pods' specs (``ray start`` with KubeRay's environment, GCS FT
through Redis with a fresh storage namespace), restarts the workers when a new
head comes up without GCS FT (KubeRay: a new head is a new cluster), deploys the
Serve config once every pod joined and re-applies it when the controller or an
application is missing, switches GCS FT, and runs ``ray.kill`` from a driver
inside the head pod (``kubectl exec``).

Everything that runs inside a pod takes its interpreter and ``ray`` from
``self.runtime`` (``RayRuntime``: the Ray version the cluster runs), never from
the harness's own ``sys.executable``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import requests

from serve_chaos.runtime.app.serve_config import wait_apps_deleted
from serve_chaos.runtime.app.spec import validate_serve_config
from serve_chaos.runtime.cluster import ActionRecord, RayOptions
from serve_chaos.runtime.errors import ConfigError, InfrastructureError, ServeChaosError
from serve_chaos.runtime.local import procs
from serve_chaos.runtime.local.config import KUBERAY_RAYSERVICE_ENV, LocalClusterConfig
from serve_chaos.runtime.local.kubelet import Event, Kubelet
from serve_chaos.runtime.local.layout import RunLayout
from serve_chaos.runtime.local.pods import Pod
from serve_chaos.runtime.local.rayenv import RayRuntime, installed_runtime
from serve_chaos.runtime.ray_settings import RAY_DEFAULT_GCS_RECONNECT_TIMEOUT_S, node_health_check
from serve_chaos.runtime.local.podspecs import OperatorPodSpecs, redis_server_binary
from serve_chaos.runtime.ray_compat import FEATURE_SINCE, features
from serve_chaos.runtime.waiting import NotYet, wait_until




# redis_server_binary lives with the pod specs that run it; the supervisor and preflight find it here.
__all__ = ["RayServiceOperator", "redis_server_binary", "wait_tcp"]


def wait_tcp(host: str, port: int, timeout_s: float, what: str) -> None:
    def accepts() -> None:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as err:
            raise NotYet(f"connecting to {host}:{port}: {err}") from None

    wait_until(accepts, timeout_s, 0.1, what=f"{what} to accept connections")


def _config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


class RayServiceOperator(OperatorPodSpecs):
    def __init__(self, config: LocalClusterConfig, layout: RunLayout, kubelet: Kubelet, event: Event,
                 lock: threading.RLock, runtime: RayRuntime | None = None) -> None:
        self.config = config
        #: The Ray every pod runs (``ray start``, ``serve_chaos.runtime.raykill``, ``ray drain-node``).
        self.runtime = runtime or installed_runtime(config.ray_version)
        self.layout = layout
        self.kubelet = kubelet
        self.event = event
        self.lock = lock
        self.gcs_ft = config.gcs_ft
        self.gcs_backend = config.gcs_backend
        self.ingress = config.ingress
        self.redis_password = secrets.token_hex(12)
        self.storage_namespace = self._new_storage_namespace()
        # Without namespaces the GCS binds its port on every address, so Redis
        # (same host, another 127.0.x.y) must not share it.
        self.redis_port = config.redis_port
        if kubelet.mode == "loopback" and config.redis_port == config.gcs_port:
            self.redis_port = config.redis_port + 1
        self.desired_serve_config: dict[str, Any] = config.serve_config or config.app.to_serve_config()
        self.applied_serve_hash = ""
        self.last_serve_put = 0.0
        self.replacing = False
        self.head_starts = 0
        kubelet.pod_spec = self.pod_spec
        kubelet.on_started = self._on_pod_started

    def dashboard_url(self) -> str:
        return f"http://{self.kubelet.fixed_ips['head']}:{self.config.dashboard_port}"

    # ------------------------------------------------------------------ pod specs
    def _on_pod_started(self, pod: Pod) -> None:
        if pod.role != "head":
            return
        self.head_starts += 1
        if self.head_starts > 1 and not self.gcs_ft:
            # KubeRay: without GCS FT a new head is a new cluster; the workers are
            # restarted so they join it (the guide: "KubeRay restarts all worker pods").
            for other in self.kubelet.pods.values():
                if other.role == "worker" and other.phase == "Running":
                    self.kubelet.delete_pod(other, graceful=True, grace_period_s=10.0, reason="new head, GCS FT off")

    def bring_up(self) -> None:
        problem = self.options_problem(RayOptions(self.gcs_ft, self.gcs_backend, self.ingress))
        if problem:
            raise ConfigError(problem, hint="pick another --gcs-backend / --ingress (or --ray-version)")
        pods = self.kubelet.pods
        self.kubelet.start_pod(pods["redis"])
        wait_tcp(pods["redis"].ip, self.redis_port, 20.0, "redis-server")
        self.kubelet.start_pod(pods["head"])
        for pod in pods.values():
            if pod.role == "worker":
                self.kubelet.start_pod(pod)

    # ------------------------------------------------------------------ Serve
    def loop(self, stop: threading.Event) -> None:
        session = requests.Session()
        while not stop.wait(self.config.timing.operator_period_s):
            try:
                self.reconcile_serve(session)
            except Exception as err:  # noqa: BLE001 - the operator must never die
                self.event("operator_error", error=f"{type(err).__name__}: {err}")

    def reconcile_serve(self, session: requests.Session) -> None:
        head = self.kubelet.pods["head"]
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
            desired_hash = _config_hash(desired)
        reason = self._why_apply(details, desired, desired_hash)
        if not reason or time.time() - self.last_serve_put < 5.0:
            return
        if not self.applied_serve_hash and not details.get("applications") and not self._all_joined(session):
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

    def _why_apply(self, details: dict[str, Any], desired: dict[str, Any], desired_hash: str) -> str:
        apps = details.get("applications") or {}
        wanted = {a["name"] for a in desired.get("applications", [])}
        if not details.get("controller_info"):
            return "no Serve controller"
        if not wanted <= set(apps):
            return "application missing"
        if self.applied_serve_hash != desired_hash:
            return "config changed"
        return ""

    def _all_joined(self, session: requests.Session) -> bool:
        """Every Running head/worker pod has an ALIVE Ray node at its IP."""
        with self.lock:
            ips = {p.ip for p in self.kubelet.pods.values() if p.role in ("head", "worker") and p.phase == "Running"}
        try:
            resp = session.get(f"{self.dashboard_url()}/api/v0/nodes?limit=1000", timeout=3)
            nodes = resp.json()["data"]["result"]["result"]
        except (requests.RequestException, ValueError, KeyError):
            return False
        return ips <= {n.get("node_ip") for n in nodes if n.get("state") == "ALIVE"}

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
        self.reconcile_serve(session)
        return ActionRecord("apply_serve_config", "serve", t0, time.time(),
                            {"hash": _config_hash(config)[:12], "replace": replace})

    def _wait_apps_deleted(self, session: requests.Session, timeout_s: float = 60.0) -> None:
        try:
            wait_apps_deleted(session, self.dashboard_url(), timeout_s)
        except InfrastructureError as err:
            # Deploying over what is left only turns this into a rolling update.
            self.event("serve_replace_slow", error=err.what)

    # ------------------------------------------------------------------ GCS FT switch
    def set_ray_options(self, options: RayOptions, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        """Restart the Ray pods with ``options`` (None fields: as configured) when they differ, as
        KubeRay rolls a new cluster for a changed spec; a fresh GCS store either way."""
        t0 = time.time()
        want = options.resolved(self.settings())
        problem = self.options_problem(want)
        if problem:
            raise ServeChaosError(problem, hint="run it on a cluster that can (see `serve-chaos list`)")
        with self.lock:
            if serve_config is not None:
                # The restarted cluster deploys this config once, instead of the old one first.
                self.desired_serve_config = serve_config
            changed = options.differs(self.settings())
            self.gcs_ft, self.gcs_backend, self.ingress = want.gcs_ft, want.gcs_backend, want.ingress
            if changed:
                # A new cluster, a new store (as KubeRay's new RayCluster); the running one keeps its own.
                self.storage_namespace = self._new_storage_namespace()
                self.applied_serve_hash = ""
                for pod in self.kubelet.pods.values():
                    if pod.role in ("head", "worker") and pod.phase == "Running":
                        self.kubelet.delete_pod(pod, graceful=False, grace_period_s=0, reason="Ray options changed")
        details = {"gcs_ft": want.gcs_ft, "gcs_backend": want.gcs_backend, "ingress": want.ingress, "changed": changed}
        self.event("ray_options_set", **details)
        return ActionRecord("set_ray_options", "cluster", t0, time.time(), details)

    def options_problem(self, options: RayOptions) -> str:
        """Why these pods cannot run with ``options`` ("" if they can)."""
        have = features(self.runtime.version)
        if options.gcs_ft and options.gcs_backend == "rocksdb" and not have.gcs_rocksdb:
            return f"Ray {self.runtime.version} has no RocksDB GCS backend (first in {FEATURE_SINCE['gcs_rocksdb']})"
        if options.ingress == "haproxy":
            if not have.serve_haproxy:
                return f"Ray {self.runtime.version} has no HAProxy ingress (first in {FEATURE_SINCE['serve_haproxy']})"
            if self.kubelet.mode != "netns":
                return ("Serve's HAProxy ingress needs network namespaces (run as root): each node's HAProxy "
                        "binds fixed stats and metrics ports on every address")
        return ""

    # ------------------------------------------------------------------ exec in the head pod
    def _exec_in_head(self, cmd: list[str], what: str, timeout_s: float = 60.0) -> tuple[int, list[str], Path]:
        """Run ``cmd`` in the head pod (``kubectl exec``) and wait: exit code, output lines, log path."""
        head = self.kubelet.pods["head"]
        if head.phase != "Running":
            raise ServeChaosError("the head pod is not Running; cannot exec into it")
        out_path = self.layout.logs / f"exec.{secrets.token_hex(3)}.log"
        with open(out_path, "wb") as out:
            proc = self.kubelet.exec_in(head, cmd, out)

        def exited() -> None:
            if proc.pid not in self.kubelet.exit_status:
                raise NotYet("still running")

        try:
            wait_until(exited, timeout_s, 0.05, what=what, evidence=str(out_path))
        except InfrastructureError:
            procs.signal_pids([proc.pid], signal.SIGKILL)
            raise
        code = os.waitstatus_to_exitcode(self.kubelet.exit_status[proc.pid])
        return code, out_path.read_text(errors="replace").splitlines(), out_path

    def _gcs_address(self) -> str:
        return f"{self.kubelet.pods['head'].ip}:{self.config.gcs_port}"

    def kill_actor(self, names: str | list[str], namespace: str, no_restart: bool,
                   ignore_missing: bool = False) -> ActionRecord:
        names = [names] if isinstance(names, str) else list(names)
        name = names[0] if len(names) == 1 else f"{len(names)} actors"
        head_ip = self.kubelet.pods["head"].ip
        args = [f"--address={self._gcs_address()}", f"--node-ip={head_ip}", *[f"--name={n}" for n in names],
                f"--namespace={namespace}"]
        args += ["--no-restart"] if no_restart else []
        args += ["--ignore-missing"] if ignore_missing else []
        # `kubectl exec` brings no environment of its own: the driver gets the pod's.
        cmd = self.runtime.exec_argv(self.runtime.module("serve_chaos.runtime.raykill", *args), self.config.app_dir)
        t0 = time.time()
        code, lines, out_path = self._exec_in_head(cmd, f"ray.kill of {name}")
        results = [ln for ln in lines if ln.startswith("{")]
        result = json.loads(results[-1]) if results else {}
        if "error" in result or code != 0:
            raise ServeChaosError(f"ray.kill of {name} failed: {result.get('error', 'driver exited non-zero')}",
                                  evidence=str(out_path))
        self.event("actor_killed", name=name, namespace=namespace, no_restart=no_restart, result=result)
        return ActionRecord("kill_actor", name, t0, time.time(), result)

    # ------------------------------------------------------------------ planned disruptions
    def ray_node_of(self, pod: Pod) -> str:
        """The hex id of the ALIVE Ray node of ``pod`` (by its IP, from the State API)."""
        try:
            resp = requests.get(f"{self.dashboard_url()}/api/v0/nodes?limit=1000", timeout=5)
            nodes = resp.json()["data"]["result"]["result"]
        except (requests.RequestException, ValueError, KeyError) as err:
            raise ServeChaosError(f"cannot list Ray nodes to find the node of {pod.name}: {err}") from None
        found = [n["node_id"] for n in nodes if n.get("node_ip") == pod.ip and n.get("state") == "ALIVE"]
        if len(found) != 1:
            raise ServeChaosError(f"pod {pod.name} ({pod.ip}) has {len(found)} ALIVE Ray nodes, not one")
        return found[0]

    def drain_node(self, pod: Pod, reason: str, deadline_s: float, message: str) -> ActionRecord:
        """``ray drain-node`` from the head pod, as the autoscaler asks GCS to drain before a
        preemption; Ray's refusal is a one-line error carrying its reason."""
        node_id = self.ray_node_of(pod)
        # The cluster's own Ray: a CLI of another version is refused by its GCS.
        cmd = [self.runtime.ray_bin, "drain-node", f"--address={self._gcs_address()}", f"--node-id={node_id}", f"--reason={reason}",
               f"--reason-message={message}", f"--deadline-remaining-seconds={int(round(deadline_s))}"]
        cmd = self.runtime.exec_argv(cmd, self.config.app_dir)
        t0 = time.time()
        code, lines, out_path = self._exec_in_head(cmd, f"ray drain-node of {pod.name}")
        if code != 0:
            said = [ln.strip() for ln in lines if ln.strip()]
            raise ServeChaosError(f"Ray refused to drain the node of {pod.name}: {said[-1] if said else f'exit {code}'}",
                                  evidence=str(out_path), hint="`ray drain-node` takes ALIVE worker nodes only")
        self.event("node_drain", pod=pod.name, node_id=node_id, reason=reason, deadline_s=deadline_s)
        return ActionRecord("drain_node", pod.name, t0, time.time(),
                            {"node_id": node_id, "reason": reason, "t_deadline": t0 + deadline_s, "uid": pod.uid})

    def update_serve_config(self, config: dict[str, Any], change: str) -> ActionRecord:
        """Make ``config`` desired and PUT it now, as an operator's change (no delete first)."""
        validate_serve_config(config, "the updated Serve config")
        t0 = time.time()
        with self.lock:
            previous = self.desired_serve_config
            self.desired_serve_config = config
            self.last_serve_put = time.time()  # the reconcile loop must not race this PUT
        try:
            put = requests.put(f"{self.dashboard_url()}/api/serve/applications/", json=config, timeout=60)
            rejected = "" if put.status_code == 200 else f"HTTP {put.status_code}: {put.text.strip()[:300]}"
        except requests.RequestException as err:
            rejected = f"the dashboard did not answer: {err}"
        if rejected:
            with self.lock:
                self.desired_serve_config = previous
            raise ServeChaosError(f"Serve did not take the updated config ({change}): {rejected}",
                                  hint="nothing was changed; check the config against Serve's schema")
        self.applied_serve_hash = _config_hash(config)
        self.event("serve_updated", change=change, took_s=round(time.time() - t0, 2))
        return ActionRecord("update_serve_config", "serve", t0, time.time(),
                            {"change": change, "hash": _config_hash(config)[:12]})

    def settings(self) -> dict[str, Any]:
        timing = self.config.timing
        return {
            "target": "local",
            "isolation": self.kubelet.mode,
            "gcs_ft": self.gcs_ft,
            "gcs_backend": self.gcs_backend,
            "ingress": self.ingress,
            "base_gcs_backend": self.config.gcs_backend,
            "base_ingress": self.config.ingress,
            "gcs_rpc_server_reconnect_timeout_s_workers": (
                self.config.gcs_reconnect_timeout_s if self.gcs_ft else RAY_DEFAULT_GCS_RECONNECT_TIMEOUT_S
            ),
            **KUBERAY_RAYSERVICE_ENV,
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
            "app_code": self.config.app_code,
            "app_dir": self.config.app_dir,
            "ray_version": self.runtime.version,
        }
