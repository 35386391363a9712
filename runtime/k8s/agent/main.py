"""The node agent: one process per node, what the kubelet is to a node (``python -m serve_chaos.runtime.k8s.agent.main``).

It registers the node and keeps its Lease, watches the pods bound to it and runs each with a
pod worker (``podworker.py``), gives each pod an address from the node's block, reads the
cluster's Services (the supervisor's ``services.json``: a container's Service variables), and
runs the nodeserver, which serves exec, port-forward and logs for the API server.  It is marked
with the run label (``SERVE_CHAOS_RUN``) and role ``agent``; its pods live in the cgroup
``<run>/<node>`` (one ``cgroup.kill`` ends the node), and it ends them on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from serve_chaos.runtime.k8s.agent import sandbox
from serve_chaos.runtime.k8s.agent.children import Children, janitor
from serve_chaos.runtime.k8s.agent.node import RENEW_S, Registration
from serve_chaos.runtime.k8s.agent.nodeapi import NodeApi
from serve_chaos.runtime.k8s.agent.podworker import PodWorker
from serve_chaos.runtime.k8s.layout import KUBELET_PORT, K8sLayout, NodeSpec
from serve_chaos.runtime.local import cgroups, netns, procs


class Agent:
    def __init__(self, layout: K8sLayout, spec: NodeSpec, kubeconfig: str, nodeserver: str, version: str,
                 operators: dict[str, str], serving_cert: str, serving_key: str, ca: str) -> None:
        self.layout = layout
        self.spec = spec
        self.ip = layout.node_ip(spec.index)
        self.api = NodeApi(kubeconfig)
        self.children = Children()
        self.operators = operators
        self.version = version
        self.stop = threading.Event()
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.RLock()
        self.free_ips = layout.pod_ips(spec.index)
        self.serial = 0
        self.cpu = os.cpu_count() or 1
        self.memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        self.dir = layout.node_dir(spec.name)
        self.state_dir = self.dir / "state"
        self.nodeserver_argv = [nodeserver, f"--address={self.ip}:{KUBELET_PORT}", f"--state-dir={self.state_dir}",
                                f"--tls-cert-file={serving_cert}", f"--tls-private-key-file={serving_key}",
                                f"--client-ca-file={ca}"]
        self.nodeserver: subprocess.Popen | None = None
        self._services: list[dict[str, Any]] = []
        self._services_mtime = 0.0
        # The node's cgroups: one per controller, every pod below it.
        root2 = cgroups.cgroup2_root()
        base = f"{layout.run.cgroup_name}/{spec.name}"
        self.cgroup = cgroups.create(root2 / base) if root2 is not None and cgroups.supports_kill(root2) else None
        self.v1 = {c: cgroups.create(r / base) for c in cgroups.V1_CONTROLLERS
                   if (r := cgroups.v1_root(c)) is not None}

    # ------------------------------------------------------------------ what pod workers use
    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def pod_dir(self, uid: str) -> Path:
        return self.dir / "pods" / uid

    def new_sandbox(self, uid: str) -> sandbox.Sandbox:
        with self.lock:
            if not self.free_ips:
                raise RuntimeError(f"node {self.spec.name} has no pod address left")
            ip = self.free_ips.pop(0)
            self.serial += 1
            serial = self.spec.index * 256 + self.serial % 256
        net = netns.PodNet(netns=f"sc-{self.layout.label}-{self.spec.index}-{self.serial}",
                           host_if=self.layout.run.host_if(serial), ip=ip, prefix=self.layout.network.prefixlen)
        return sandbox.create(uid, net, self.layout.run.bridge, self.layout.gateway, self.cgroup, self.v1)

    def release_ip(self, ip: str) -> None:
        with self.lock:
            if ip not in self.free_ips:
                self.free_ips.append(ip)

    def services(self) -> list[dict[str, Any]]:
        return self._services

    def event(self, pod: dict[str, Any], reason: str, message: str, kind: str) -> None:
        self.api.event(pod, reason, message, kind, self.spec.name)

    def write_pod_state(self, meta: dict[str, Any], state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / f"{meta['namespace']}_{meta['name']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    def drop_pod_state(self, meta: dict[str, Any]) -> None:
        (self.state_dir / f"{meta['namespace']}_{meta['name']}.json").unlink(missing_ok=True)

    def forget(self, worker: PodWorker) -> None:
        with self.lock:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]

    # ------------------------------------------------------------------ loops
    def _watch(self) -> None:
        while not self.stop.is_set():
            try:
                for kind, pod, _version in self.api.watch_pods(self.spec.name):
                    if self.stop.is_set():
                        return
                    if kind in ("ADDED", "MODIFIED"):
                        self._seen(pod)
                    elif kind == "DELETED":
                        with self.lock:
                            worker = self.workers.get(pod["metadata"]["uid"])
                        if worker is not None:
                            worker.deleted()
            except Exception as err:  # noqa: BLE001 - the API server may be restarting: watch again
                self.log(f"pod watch: {type(err).__name__}: {str(err)[:200]}")
                self.stop.wait(1.0)

    def _seen(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if worker is None:
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") \
                        and not pod["metadata"].get("deletionTimestamp"):
                    return  # finished before this agent started: nothing to run
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
                return
        worker.update(pod)

    def _heartbeat(self, registration: Registration) -> None:
        while not self.stop.wait(RENEW_S):
            try:
                registration.renew()
            except Exception as err:  # noqa: BLE001 - retried at the next renewal, as the kubelet does
                self.log(f"lease renewal: {type(err).__name__}: {str(err)[:200]}")

    def _services_file(self) -> None:
        path = self.layout.root / "services.json"
        while not self.stop.wait(0.5):
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if mtime == self._services_mtime:
                continue
            try:
                self._services = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            self._services_mtime = mtime

    def _keep_nodeserver(self) -> None:
        log = open(self.dir / "nodeserver.log", "ab")
        env = {**os.environ, procs.ROLE_ENV: f"nodeserver:{self.spec.name}"}
        while not self.stop.is_set():
            self.nodeserver = self.children.spawn(self.nodeserver_argv, stdout=log, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, env=env)
            while not self.stop.wait(1.0) and self.nodeserver.poll() is None:
                pass
            if self.nodeserver.poll() is None:
                self.nodeserver.terminate()
                self.nodeserver.wait(timeout=5)
            self.children.release(self.nodeserver.pid)

    def run(self) -> int:
        procs.become_subreaper()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        registration = Registration(self.api, self.spec, self.ip, self.version)
        registration.register()
        registration.renew()
        threads = [threading.Thread(target=f, daemon=True, name=n) for f, n in (
            (self._watch, "watch"), (self._services_file, "services"), (self._keep_nodeserver, "nodeserver"))]
        threads.append(threading.Thread(target=self._heartbeat, args=(registration,), daemon=True, name="lease"))
        threads.append(threading.Thread(target=janitor, args=(self.children, self.stop), daemon=True, name="reaper"))
        for t in threads:
            t.start()
        self.log(f"node {self.spec.name} registered at {self.ip}")
        self.stop.wait()
        self._shutdown()
        return 0

    def _shutdown(self) -> None:
        """Everything of this node's pods, at once: the supervisor only stops an agent at teardown."""
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker._teardown()
        if self.cgroup is not None:
            cgroups.kill(self.cgroup)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve-chaos node agent")
    parser.add_argument("--config", required=True, help="the agent's settings as JSON")
    args = parser.parse_args(argv)
    cfg = json.loads(args.config)
    layout = K8sLayout(Path(cfg["home"]), cfg["label"], cfg["subnet"])
    agent = Agent(layout, NodeSpec.from_dict(cfg["node"]), cfg["kubeconfig"], cfg["nodeserver"], cfg["version"],
                  cfg["operators"], cfg["serving_cert"], cfg["serving_key"], cfg["ca"])
    try:
        return agent.run()
    except Exception:  # noqa: BLE001 - say why in the node's log, exit non-zero
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
