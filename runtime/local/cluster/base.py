"""The local cluster as the harness sees it, through the supervisor's control API: state, pods, nodes,
endpoints, settings, status."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import requests

from serve_chaos.runtime.cluster import Capabilities, ClusterStatus, Endpoints, NodeInfo, PodInfo
from serve_chaos.runtime.errors import ClusterLost, InfrastructureError, ServeChaosError
from serve_chaos.runtime.local import cgroups, control, netns
from serve_chaos.runtime.local.cluster.preflight import _delay_support, resolve_isolation
from serve_chaos.runtime.local.config import LocalClusterConfig
from serve_chaos.runtime.local.rayenv import Progress
from serve_chaos.runtime.ray_compat import FEATURE_SINCE, features


class LocalClusterBase:
    """The local cluster as the harness sees it, through the supervisor's control API: state, pods,
    nodes, endpoints, settings, status."""

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

    def settings(self) -> dict[str, Any]:
        return self.state()["settings"]

    def serve_config(self) -> dict[str, Any]:
        return self.state()["serve_config"]

    @property
    def capabilities(self) -> Capabilities:
        netns_mode = (self.mode or resolve_isolation(self.config.isolation)) == "netns"
        why = "needs network namespaces (run as root)"
        v1 = {c: netns_mode and cgroups.v1_root(c) is not None for c in cgroups.V1_CONTROLLERS}
        delay_ok, delay_why = _delay_support()
        ray = features(self.config.ray_version)
        return Capabilities(
            kill_pod=True,
            kill_node=netns_mode,
            partition_pod=netns_mode and netns.nft_available(),
            kill_actor=True,
            kill_redis=True,
            switch_gcs_ft=True,
            gcs_rocksdb=ray.gcs_rocksdb,
            serve_haproxy=ray.serve_haproxy and netns_mode,
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
                "gcs_rocksdb": f"Ray {ray.version} has no RocksDB GCS backend (first in "
                               f"{FEATURE_SINCE['gcs_rocksdb']})",
                "serve_haproxy": (f"Serve's HAProxy ingress {why}: each node's HAProxy binds fixed ports on every "
                                  "address" if ray.serve_haproxy else
                                  f"Ray {ray.version} has no HAProxy ingress (first in {FEATURE_SINCE['serve_haproxy']})"),
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
