"""Starting, finding and stopping the k8s target's cluster (its supervisor daemon) from the harness.

``start`` builds the binaries (cached), picks a label and a free /24, starts the supervisor
with the nodes kind-config.yaml describes -- a control-plane node, a node for the Ray head
(with Redis and the operator), one per Ray worker and a spare -- and waits until the API
server, the operator and every node are ready.  ``find`` returns the running one, ``stop``
asks it to tear down and waits; what a killed run left is reaped by label first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests

from serve_chaos.runtime.errors import ConfigError, InfrastructureError, ServeChaosError
from serve_chaos.runtime.k8s import build
from serve_chaos.runtime.k8s.layout import CONTEXT, DEFAULT_HOME, MAX_NODES, K8sLayout, NodeSpec
from serve_chaos.runtime.k8s.network import table_name
from serve_chaos.runtime.local import leftovers, netns, procs
from serve_chaos.runtime.local.commands import run
from serve_chaos.runtime.local.layout import new_label
from serve_chaos.runtime.waiting import NotYet, wait_until

#: kind-config.yaml's role label; ``serve_chaos.runtime.kuberay.manifests.ROLE_LABEL``.
ROLE_LABEL = "serve-chaos/role"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
UP_TIMEOUT_S = 240.0

Progress = Callable[[str], None]


def node_specs(workers: int, labelled: bool = True, name: str = "serve-chaos") -> list[NodeSpec]:
    """kind's node names for kind-config.yaml's nodes: ``<name>-control-plane``, ``<name>-worker``,
    ``<name>-worker2``, ...; the first worker carries the head role, the others the worker role
    (one per Ray worker and a spare).  Unlabelled: no role labels at all, as on any cluster."""
    if workers + 3 > MAX_NODES:
        raise ConfigError(f"{workers} Ray workers need {workers + 3} nodes; the k8s target makes at most {MAX_NODES}")
    specs = [NodeSpec(f"{name}-control-plane", 0, {}, (CONTROL_PLANE_TAINT,))]
    specs[0].labels["node-role.kubernetes.io/control-plane"] = ""
    for i in range(workers + 2):
        suffix = "" if i == 0 else str(i + 1)
        role = "head" if i == 0 else "worker"
        specs.append(NodeSpec(f"{name}-worker{suffix}", i + 1, {ROLE_LABEL: role} if labelled else {}))
    return specs


@dataclass(frozen=True)
class RunningCluster:
    layout: K8sLayout
    control: dict[str, Any]
    state: dict[str, Any]

    @property
    def kubeconfig(self) -> str:
        return str(self.layout.admin_kubeconfig)

    @property
    def kubectl(self) -> str:
        return str(self.state["kubectl"])

    def node_ip(self, name: str) -> str:
        for node in self.state["nodes"]:
            if node["name"] == name:
                return str(node["ip"])
        raise ServeChaosError(f"no node {name!r} in the k8s cluster")

    @property
    def control_plane_ip(self) -> str:
        return str(self.state["nodes"][0]["ip"])

    def call(self, name: str, method: str, path: str, body: dict[str, Any] | None = None,
             timeout_s: float = 60.0) -> Any:
        try:
            answer = requests.request(method, self.control["url"] + path, json=body or {}, timeout=timeout_s,
                                      headers={"X-Serve-Chaos-Token": self.control["token"],
                                               "X-Serve-Chaos-Owner": str(os.getpid())})
        except requests.RequestException as err:
            raise InfrastructureError(f"the k8s target's supervisor does not answer ({type(err).__name__})",
                                      hint="`serve-chaos k8s down`, then up again") from None
        data = answer.json()
        if answer.status_code != 200:
            raise ServeChaosError(data.get("error", f"{name} failed"), hint=data.get("hint", ""))
        return data

    def lose_node(self, node: str) -> dict[str, Any]:
        return self.call("lose_node", "POST", f"/nodes/{node}/lose")

    def heal_node(self, node: str) -> dict[str, Any]:
        return self.call("heal_node", "POST", f"/nodes/{node}/heal")


def _supervisors(home: Path) -> dict[str, int]:
    return {label: pid for label, pid in leftovers.live_supervisors().items()
            if K8sLayout(home, label).control_file.exists() or (home / label / "settings.json").exists()}


def find(home: Path = DEFAULT_HOME) -> RunningCluster | None:
    for label in sorted(_supervisors(home)):
        layout = K8sLayout(home, label)
        control = layout.read_control()
        if control is None:
            continue
        try:
            state = requests.get(control["url"] + "/state", timeout=10,
                                 headers={"X-Serve-Chaos-Token": control["token"]}).json()
        except (requests.RequestException, ValueError):
            continue
        return RunningCluster(K8sLayout(home, label, state["subnet"]), control, state)
    return None


def reap(home: Path = DEFAULT_HOME) -> list[str]:
    """Remove what dead k8s-target runs left (processes, cgroups, namespaces, links, their nftables
    table), restoring ``ip_forward`` as they found it."""
    done = []
    for item in leftovers.find(home):
        orig = home / item.label / "ip_forward.orig"
        run(["nft", "delete", "table", "ip", table_name(item.label)], check=False)
        if orig.exists():
            try:
                Path("/proc/sys/net/ipv4/ip_forward").write_text(orig.read_text().strip())
            except OSError:
                pass
        leftovers.clean(item)
        done.append(item.summary())
    return done


def start(workers: int, labelled: bool = True, home: Path = DEFAULT_HOME, progress: Progress = print,
          owner_pid: int | None = None, operator_node_selector: dict[str, str] | None = None) -> RunningCluster:
    if os.geteuid() != 0:
        raise ConfigError("the k8s target needs root (network namespaces, cgroups and mounts per pod)",
                          hint="run as root, or use --target local --isolation loopback")
    if find(home) is not None:
        raise ConfigError("a k8s-target cluster is running already", hint="`serve-chaos k8s down` first")
    for line in reap(home):
        progress(f"removed what a killed run left: {line}")
    binaries = build.ensure_binaries(progress)
    label = new_label()
    subnet = netns.pick_subnet()
    layout = K8sLayout(home, label, str(subnet))
    layout.root.mkdir(parents=True, exist_ok=True)
    nodes = node_specs(workers, labelled)
    selector = operator_node_selector if operator_node_selector is not None else \
        ({ROLE_LABEL: "head"} if labelled else None)
    settings = {"home": str(home), "label": label, "subnet": str(subnet), "nodes": [n.to_dict() for n in nodes],
                "binaries": {k: str(v) for k, v in binaries.__dict__.items()}, "owner_pid": owner_pid,
                "extra": {"operator_node_selector": selector}}
    (layout.root / "settings.json").write_text(json.dumps(settings))
    env = {**os.environ, procs.RUN_ENV: label, procs.ROLE_ENV: "supervisor"}
    log = open(home / f"{label}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "serve_chaos.runtime.k8s.supervisor", "--settings", json.dumps(settings)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True, cwd=str(layout.root))
    log.close()
    progress(f"starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, {len(nodes)} nodes and "
             f"the KubeRay operator {binaries.kuberay_version} (cluster {label}, {subnet})")

    def up() -> RunningCluster:
        failed = home / f"{label}.failed"
        if failed.exists() or proc.poll() is not None:
            reason = failed.read_text().strip() if failed.exists() else f"exit {proc.poll()}"
            raise InfrastructureError(f"the k8s target did not come up: {reason}", evidence=str(home / f"{label}.log"))
        found = find(home)
        if found is None or found.layout.label != label:
            raise NotYet("the supervisor has not finished bringing the control plane up")
        return found

    t0 = time.monotonic()
    cluster = wait_until(up, UP_TIMEOUT_S, 1.0, what="the k8s target's control plane", retry_on=(NotYet,),
                         evidence=str(home / f"{label}.log"))
    progress(f"control plane and nodes up in {time.monotonic() - t0:.0f} s")
    return cluster


def stop(cluster: RunningCluster, timeout_s: float = 90.0) -> None:
    pid = int(cluster.control["pid"])
    try:
        cluster.call("shutdown", "POST", "/shutdown", timeout_s=10)
    except ServeChaosError:
        pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and procs.alive(pid):
        time.sleep(0.2)
    if procs.alive(pid):
        procs.kill_and_wait([pid], timeout_s=5)
    reap(cluster.layout.home)
