"""The k8s target's supervisor: a real Kubernetes control plane and its nodes on this machine, in one daemon.

``python -m serve_chaos.runtime.k8s.supervisor`` (started by ``serve-chaos k8s up``) brings up, in order:
the cluster network (``network.py``), the certificates, etcd, kube-apiserver (waited for until
``/readyz``), kube-controller-manager and kube-scheduler (``controlplane.py``), the Service
proxy and the volume provisioner (``hostcontrollers.py``), kind's StorageClass, one node agent
per node (``agent/main.py``) -- the control-plane node tainted as kind taints it -- and the
KubeRay operator as its helm chart installs it (``kuberay.py``), running as a pod.  It restarts
nothing by itself (a component that dies is reported), answers a small control API (node
loss and its healing, state, shutdown), and tears everything down -- processes by PID and by
cgroup, namespaces, links, the nftables table, ip_forward -- on SIGTERM, on ``shutdown`` or
when the process that started it dies.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError
from serve_chaos.runtime.k8s import dns, kuberay, network
from serve_chaos.runtime.k8s.build import Binaries
from serve_chaos.runtime.k8s.controlplane import Component, ControlPlane
from serve_chaos.runtime.k8s.hostcontrollers import HostPathProvisioner, ServiceProxy, storage_class
from serve_chaos.runtime.k8s.layout import K8sLayout, NodeSpec
from serve_chaos.runtime.local import cgroups, control, netns, procs
from serve_chaos.runtime.waiting import NotYet, wait_until

LOOP_S = 0.5
ROUTES = (
    control.Route("state", "GET", "/state"),
    control.Route("lose_node", "POST", "/nodes/{node}/lose"),
    control.Route("heal_node", "POST", "/nodes/{node}/heal"),
    control.Route("shutdown", "POST", "/shutdown"),
)


@dataclass
class Settings:
    """What ``k8s up`` asked for, passed to the daemon as JSON."""

    home: str
    label: str
    subnet: str
    nodes: list[dict[str, Any]]
    binaries: dict[str, Any]
    owner_pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = K8sLayout(Path(settings.home), settings.label, settings.subnet)
        self.nodes = [NodeSpec.from_dict(n) for n in settings.nodes]
        b = dict(settings.binaries)
        self.binaries = Binaries(dir=Path(b["dir"]), kubernetes_version=b["kubernetes_version"],
                                 etcd_version=b["etcd_version"], kuberay_version=b["kuberay_version"],
                                 kuberay_operator=Path(b["kuberay_operator"]),
                                 kuberay_source=Path(b["kuberay_source"]), kuberay_note=b.get("kuberay_note", ""),
                                 nodeserver=Path(b["nodeserver"]) if b.get("nodeserver") else None)
        self.cp = ControlPlane.plan(self.layout, self.binaries)
        self.stop = threading.Event()
        self.token = secrets.token_hex(16)
        self.components: dict[str, subprocess.Popen] = {}
        self.agents: dict[str, subprocess.Popen] = {}
        self.lost: dict[str, list[str]] = {}  # node -> network namespaces left silent
        self.ip_forward: str | None = None
        self.failed: str | None = None
        self.mutex = threading.RLock()

    # ------------------------------------------------------------------ processes
    def log(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def _spawn(self, name: str, argv: list[str], role: str) -> subprocess.Popen:
        env = {**os.environ, procs.RUN_ENV: self.layout.label, procs.ROLE_ENV: role}
        log = open(self.layout.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        log.close()
        return proc

    def _start(self, component: Component) -> None:
        self.components[component.name] = self._spawn(component.name, component.argv, component.name)

    def _wait_api(self) -> None:
        pki = self.layout.pki
        cert = (str(pki / "admin.crt"), str(pki / "admin.key"))

        def ready() -> None:
            proc = self.components["kube-apiserver"]
            if proc.poll() is not None:
                raise InfrastructureError("kube-apiserver exited", evidence=str(self.layout.logs / "kube-apiserver.log"))
            try:
                answer = requests.get(f"{self.layout.api_url}/readyz", cert=cert, verify=str(pki / "ca.crt"), timeout=2)
            except requests.RequestException as err:
                raise NotYet(f"not answering ({type(err).__name__})") from None
            if answer.status_code != 200:
                raise NotYet(f"/readyz answers {answer.status_code}")

        wait_until(ready, 120, 0.5, what="kube-apiserver to be ready", retry_on=(NotYet,),
                   evidence=str(self.layout.logs / "kube-apiserver.log"))

    def _kubectl(self, *args: str, stdin: str | None = None, timeout_s: float = 120) -> str:
        argv = [str(self.binaries.kubectl), f"--kubeconfig={self.layout.admin_kubeconfig}", *args]
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise InfrastructureError(f"kubectl {' '.join(args[:3])} failed",
                                      evidence=(proc.stderr or proc.stdout).strip().splitlines()[-1:][0]
                                      if (proc.stderr or proc.stdout).strip() else "no output")
        return proc.stdout

    def _apply(self, objects: list[dict[str, Any]]) -> None:
        self._kubectl("apply", "--server-side", "--field-manager=serve-chaos-k8s", "-f", "-",
                      stdin="\n---\n".join(json.dumps(o) for o in objects))

    # ------------------------------------------------------------------ nodes
    def _agent_config(self, node: NodeSpec) -> dict[str, Any]:
        serving = self.cp.node_serving(node.name)
        return {"home": str(self.layout.home), "label": self.layout.label, "subnet": str(self.layout.network),
                "node": node.to_dict(), "kubeconfig": str(self.layout.kubeconfig(f"node-{node.name}")),
                "nodeserver": str(self.binaries.path("nodeserver")), "version": self.binaries.kubernetes_version,
                "operators": {self.binaries.kuberay_version: str(self.binaries.kuberay_operator)},
                "serving_cert": str(serving.cert), "serving_key": str(serving.key),
                "ca": str(self.layout.pki / "ca.crt")}

    def _start_agent(self, node: NodeSpec) -> None:
        argv = [sys.executable, "-m", "serve_chaos.runtime.k8s.agent.main", "--config", json.dumps(self._agent_config(node))]
        self.agents[node.name] = self._spawn(f"agent-{node.name}", argv, f"agent:{node.name}")

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise ServeChaosError(f"no node named {name!r}", hint=f"nodes: {', '.join(n.name for n in self.nodes)}")

    def _node_group(self, name: str, root: Path | None) -> Path | None:
        return root / self.layout.run.cgroup_name / name if root is not None else None

    def lose_node(self, node: str, owner: int | None = None) -> dict[str, Any]:
        """kind's node loss (``docker network disconnect``, ``docker kill``): the node's pods fall
        silent (every packet dropped in their namespaces), then every process of the node is
        killed -- its agent (no more heartbeats), its nodeserver and its pods."""
        t0 = time.time()
        with self.mutex:
            spec = self.node(node)
            agent = self.agents.get(node)
            if agent is None or agent.poll() is not None:
                raise ServeChaosError(f"node {node} is not running (lost already?)")
            prefix = f"sc-{self.layout.label}-{spec.index}-"
            silent = netns.list_netns(prefix)
            for name in silent:
                netns.partition(name)
            t_cut = time.time()
            marked = procs.marked_processes(self.layout.label)
            mine = [pid for pid, env in marked.items()
                    if env.get(procs.ROLE_ENV) in (f"agent:{node}", f"nodeserver:{node}")]
            procs.kill_and_wait([agent.pid, *mine], timeout_s=5)
            agent.wait(timeout=5)
            for root in (cgroups.cgroup2_root(),):
                group = self._node_group(node, root)
                if group is not None:
                    cgroups.kill(group)
            self.lost[node] = silent
        self.log(f"node {node} lost: {len(silent)} pod network(s) silent, agent PID {agent.pid} killed")
        return {"node": node, "t_start": t0, "t_network_cut": t_cut, "t_end": time.time(), "pods": silent}

    def heal_node(self, node: str, owner: int | None = None) -> dict[str, Any]:
        """The lost node comes back (kind's ``docker start``): its old pod networks are removed
        and a fresh agent registers the node again."""
        t0 = time.time()
        with self.mutex:
            spec = self.node(node)
            for name in self.lost.pop(node, []):
                netns.delete_netns(name)
            for link in netns.list_links(f"s{self.layout.label}h"):
                if int(link[-3:], 16) // 256 == spec.index and not self._link_in_use(link):
                    netns.delete_link(link)
            for root in (cgroups.cgroup2_root(), *(cgroups.v1_root(c) for c in cgroups.V1_CONTROLLERS)):
                group = self._node_group(node, root)
                if group is not None:
                    cgroups.remove(group, timeout_s=5)
            shutil.rmtree(self.layout.node_dir(node), ignore_errors=True)
            agent = self.agents.get(node)
            if agent is None or agent.poll() is not None:
                self._start_agent(spec)
        return {"node": node, "t_start": t0, "t_end": time.time()}

    @staticmethod
    def _link_in_use(link: str) -> bool:
        try:
            return (Path("/sys/class/net") / link / "master").exists()
        except OSError:
            return False

    # ------------------------------------------------------------------ the control API
    def state(self, owner: int | None = None) -> dict[str, Any]:
        return {"label": self.layout.label, "pid": os.getpid(), "api": self.layout.api_url,
                "kubeconfig": str(self.layout.admin_kubeconfig), "kubectl": str(self.binaries.kubectl),
                "subnet": str(self.layout.network), "failed": self.failed,
                "components": {n: p.poll() is None for n, p in self.components.items()},
                "agents": {n: p.poll() is None for n, p in self.agents.items()},
                "lost": sorted(self.lost), "nodes": [n.to_dict() | {"ip": self.layout.node_ip(n.index)}
                                                      for n in self.nodes],
                "binaries": {k: str(v) for k, v in asdict(self.binaries).items()}}

    def shutdown(self, owner: int | None = None) -> dict[str, Any]:
        self.stop.set()
        return {"stopping": True}

    def _serve_control(self) -> None:
        server = control.serve(self, self.token, lambda path, tb: self.log(f"control {path}: {tb}"), routes=ROUTES)
        threading.Thread(target=server.serve_forever, daemon=True, name="control").start()
        self.layout.control_file.write_text(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}",
                                                        "token": self.token, "pid": os.getpid()}))
        self.layout.control_file.chmod(0o600)

    # ------------------------------------------------------------------ bring-up and teardown
    def setup(self) -> None:
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        procs.become_subreaper()
        self.ip_forward = network.setup(self.layout, [n.index for n in self.nodes])
        (self.layout.root / "ip_forward.orig").write_text(self.ip_forward)
        self.cp.prepare(self.nodes)
        self._start(self.cp.etcd())
        self._start(self.cp.apiserver())
        self._wait_api()
        self._start(self.cp.controller_manager())
        self._start(self.cp.scheduler())
        proxy_config = str(self.layout.kubeconfig("kube-proxy"))
        proxy = ServiceProxy(self.layout, proxy_config, lambda: [self.layout.node_ip(n.index) for n in self.nodes],
                             self.stop, self.log)
        proxy.start()
        self.dns = dns.serve(self.layout.gateway, lambda: proxy.records)
        HostPathProvisioner(self.layout, str(self.layout.admin_kubeconfig), self.stop, self.log).start()
        self._apply([storage_class()])
        for node in self.nodes:
            self._start_agent(node)
        self._mark_control_plane()
        kuberay.install(self._kubectl, self._apply, self.binaries, self.settings.extra.get("operator_node_selector"))
        self._serve_control()
        self.log(f"cluster {self.layout.label} up: API {self.layout.api_url}")

    def _mark_control_plane(self) -> None:
        """kubeadm's mark-control-plane phase: the role label (a node may not set it on itself,
        NodeRestriction) once the node has registered."""
        for node in self.nodes:
            if "node-role.kubernetes.io/control-plane" not in node.labels:
                continue

            def registered(name: str = node.name) -> None:
                try:
                    self._kubectl("get", "node", name, "-o", "name")
                except InfrastructureError:
                    raise NotYet(f"node {name} has not registered") from None

            wait_until(registered, 60, 0.5, what=f"node {node.name} to register", retry_on=(NotYet,),
                       evidence=str(self.layout.logs / f"agent-{node.name}.log"))
            self._kubectl("label", "node", node.name, "--overwrite", "node-role.kubernetes.io/control-plane=")

    def _watch(self) -> None:
        owner = self.settings.owner_pid
        while not self.stop.wait(LOOP_S):
            for name, proc in self.components.items():
                if proc.poll() is not None and self.failed is None:
                    self.failed = f"{name} exited with code {proc.returncode}"
                    self.log(self.failed)
            if owner and not procs.alive(owner):
                self.log(f"the process that started the cluster (PID {owner}) is gone: tearing down")
                self.stop.set()

    def teardown(self) -> None:
        self.log("tearing down")
        for server in getattr(self, "dns", []):
            server.stop()
        agents = [p.pid for p in self.agents.values() if p.poll() is None]
        procs.signal_pids(agents, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(procs.alive(p) for p in agents):
            time.sleep(0.1)
        root2 = cgroups.cgroup2_root()
        base = root2 / self.layout.run.cgroup_name if root2 is not None else None
        if base is not None:
            cgroups.kill(base)
        others = [pid for pid in procs.marked_processes(self.layout.label) if pid != os.getpid()]
        procs.kill_and_wait(others + [p.pid for p in self.components.values()] + agents, timeout_s=10)
        for proc in list(self.components.values()) + list(self.agents.values()):
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        for root in [root2, *(cgroups.v1_root(c) for c in cgroups.V1_CONTROLLERS)]:
            if root is not None:
                cgroups.remove(root / self.layout.run.cgroup_name, timeout_s=5)
        for name in netns.list_netns(f"sc-{self.layout.label}-"):
            netns.delete_netns(name)
        for link in netns.list_links(f"s{self.layout.label}"):
            netns.delete_link(link)
        network.teardown(self.layout, self.ip_forward)
        shutil.rmtree(self.layout.root, ignore_errors=True)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stop.set())
        code = 0
        try:
            self.setup()
            self._watch()
        except Exception as err:  # noqa: BLE001 - must reach teardown and say why
            code = 1
            message = err.one_line() if isinstance(err, ServeChaosError) else f"{type(err).__name__}: {err}"
            self.log(f"failed: {message}\n{traceback.format_exc()}")
            kept = self.layout.home / f"{self.layout.label}.logs"
            shutil.copytree(self.layout.logs, kept, dirs_exist_ok=True)
            (self.layout.home / f"{self.layout.label}.failed").write_text(f"{message} (logs kept in {kept})\n")
        finally:
            self.stop.set()
            self.teardown()
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve-chaos k8s target supervisor")
    parser.add_argument("--settings", required=True, help="Settings as JSON")
    args = parser.parse_args(argv)
    settings = Settings(**json.loads(args.settings))
    Path(settings.home, settings.label).mkdir(parents=True, exist_ok=True)
    return Supervisor(settings).run()


if __name__ == "__main__":
    sys.exit(main())
