"""Observation over HTTP only: Serve REST API + State API on the dashboard, and the cluster's pods.

A ``Prober`` takes a ``Snapshot`` about once a second: every replica, proxy and
controller (actor id, PID, node, state), the Ray nodes, and the pods.  It
never imports Ray and never talks to a Ray process except through the
dashboard, so it works the same against the local cluster and KubeRay.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from serve_chaos.harness.observe.hostcpu import HostCpu
from serve_chaos.runtime.ray_compat import app_topology

SERVE_DETAILS = "/api/serve/applications/"
ACTORS_ALIVE = (
    "/api/v0/actors?detail=1&limit=10000"
    "&filter_keys=state&filter_predicates=%3D&filter_values=ALIVE"
)
NODES = "/api/v0/nodes?limit=1000"

#: With Serve's HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY=1``) each node's proxy is an
#: ``HAProxyManager`` actor under the usual name (Ray 2.60 ``serve/_private/haproxy.py``).
ROLE_BY_CLASS = {"ServeController": "controller", "ProxyActor": "proxy", "HAProxyManager": "proxy"}
#: ... and the head also runs a ProxyActor named ``SERVE_PROXY_ACTOR-fallback-<node id>`` that only
#: HAProxy talks to (``proxy.py`` "the head-node fallback behind HAProxy"): not a node's ingress.
FALLBACK_PROXY_MARK = "-fallback-"


def actor_role(class_name: str, name: str | None = None) -> str | None:
    if class_name.startswith("ServeReplica:"):
        return "replica"
    if class_name == "ProxyActor" and FALLBACK_PROXY_MARK in (name or ""):
        return None
    return ROLE_BY_CLASS.get(class_name)


@dataclass
class Snapshot:
    """What the cluster looked like at ``t`` (epoch s; the probe took until ``t_end``).

    ``actors`` holds one dict per live Serve actor: role, actor_id, name, pid,
    node_ip, pod, state (Serve's replica state for replicas, the proxy status
    for proxies, ALIVE for the controller); a replica also its ``app``,
    ``deployment``, ``replica_id``, ``ingress`` (it receives HTTP) and
    ``log_file`` (its Serve log, relative to the node's Ray log directory).
    ``apps``: per application its status, message, route prefix, ingress
    deployment and the deployments other deployments call (``downstream``).
    ``controller_log``: the Serve controller's log file (relative), on ``controller_node``.
    ``serve_ok`` / ``actors_ok`` say whether the dashboard answered; when not,
    ``errors`` says why.  ``host_cpu_busy``: the fraction of the harness host's CPUs busy since
    the previous snapshot (``serve_chaos.harness.observe.hostcpu``).
    """

    t: float
    t_end: float = 0.0
    serve_ok: bool = False
    actors_ok: bool = False
    nodes_ok: bool = False
    pods_ok: bool = False
    app_status: str | None = None
    replicas_running: int | None = None
    actors: list[dict[str, Any]] = field(default_factory=list)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    controller_log: str | None = None
    controller_node: str | None = None
    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    host_cpu_busy: float | None = None

    @property
    def ok(self) -> bool:
        return self.serve_ok and self.actors_ok

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Snapshot":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _get_json(session: requests.Session, url: str, timeout_s: float) -> Any:
    resp = session.get(url, timeout=timeout_s)
    if resp.status_code != 200:
        raise RuntimeError(f"HTTP {resp.status_code}")
    return resp.json()


def build_snapshot(
    t: float,
    serve: dict[str, Any] | None,
    actors: list[dict[str, Any]] | None,
    nodes: list[dict[str, Any]] | None,
    pods: list[dict[str, Any]] | None,
    errors: dict[str, str],
) -> Snapshot:
    """Join the raw API answers into one Snapshot (pure; tested on canned answers)."""
    snap = Snapshot(t=t, errors=dict(errors))
    pod_by_ip = {p.get("ip"): p.get("name") for p in pods or [] if p.get("ip")}
    node_ip = {n["node_id"]: n.get("node_ip") for n in nodes or []}
    if nodes is not None:
        snap.nodes_ok = True
        snap.nodes = [
            {"node_id": n["node_id"], "ip": n.get("node_ip"), "state": n.get("state"),
             "is_head": bool(n.get("is_head_node")), "pod": pod_by_ip.get(n.get("node_ip"))}
            for n in nodes
        ]
    if pods is not None:
        snap.pods_ok = True
        snap.pods = pods
    replicas: dict[str, dict[str, Any]] = {}
    proxy_status: dict[str, str] = {}
    if serve is not None:
        snap.serve_ok = True
        apps = serve.get("applications") or {}
        statuses = sorted({a.get("status", "?") for a in apps.values()})
        snap.app_status = ",".join(statuses) if statuses else "NONE"
        snap.apps = {name: app_summary(app) for name, app in apps.items()}
        controller = serve.get("controller_info") or {}
        snap.controller_log, snap.controller_node = controller.get("log_file_path"), controller.get("node_id")
        running = 0
        for name, app in apps.items():
            ingress = snap.apps[name]["ingress"]
            for dep_name, dep in (app.get("deployments") or {}).items():
                for rep in dep.get("replicas") or []:
                    replicas[rep.get("actor_id", "")] = {
                        "state": rep.get("state", "?"), "app": name, "deployment": dep_name,
                        "replica_id": rep.get("replica_id"), "log_file": rep.get("log_file_path"),
                        # Ray < 2.60 does not say (ray_compat): unknown, judged from the access lines.
                        "ingress": None if ingress is None else dep_name == ingress}
                    running += rep.get("state") == "RUNNING"
                    if rep.get("node_ip"):
                        node_ip.setdefault(rep.get("node_id", ""), rep["node_ip"])
        snap.replicas_running = running
        for node_id, proxy in (serve.get("proxies") or {}).items():
            proxy_status[proxy.get("actor_id", "")] = proxy.get("status", "?")
            node_ip.setdefault(node_id, proxy.get("node_ip"))
    if actors is not None:
        snap.actors_ok = True
        for actor in actors:
            role = actor_role(actor.get("class_name", ""), actor.get("name"))
            if role is None:
                continue
            aid = actor.get("actor_id")
            ip = node_ip.get(actor.get("node_id"))
            extra: dict[str, Any] = {}
            if role == "replica":
                known = {k: v for k, v in (replicas.get(aid) or {}).items() if v is not None}
                extra = {"state": "UNKNOWN", "ingress": None, **replica_name_parts(actor.get("name")), **known}
                state = extra.pop("state")
            elif role == "proxy":
                state = proxy_status.get(aid, "UNKNOWN")
            else:
                state = "ALIVE"
            snap.actors.append(
                {
                    "role": role,
                    "actor_id": aid,
                    "name": actor.get("name"),
                    "pid": actor.get("pid"),
                    "node_id": actor.get("node_id"),
                    "node_ip": ip,
                    "pod": pod_by_ip.get(ip),
                    "state": state,
                    **extra,
                }
            )
    return snap


def replica_name_parts(name: str | None) -> dict[str, Any]:
    """App, deployment and replica id from a replica actor's name
    (``SERVE_REPLICA::<app>#<deployment>#<id>``, Ray's ``ReplicaID.to_full_id_str``)."""
    parts = (name or "").removeprefix("SERVE_REPLICA::").split("#")
    if not (name or "").startswith("SERVE_REPLICA::") or len(parts) not in (2, 3):
        return {}
    app, deployment, replica_id = parts if len(parts) == 3 else ("", *parts)
    return {"app": app, "deployment": deployment, "replica_id": replica_id}


def app_summary(app: dict[str, Any]) -> dict[str, Any]:
    """What the checks need of one application in ``GET /api/serve/applications/``: its
    status, routes, topology (``downstream`` is None where this Ray does not say which deployment
    calls which), and per deployment the config Serve deployed (``deployment_config``, the
    operator-action faults' evidence) and its target replica count."""
    topology = app_topology(app)
    deployments = {name: {"config": dep.get("deployment_config") or {},
                          "target_num_replicas": dep.get("target_num_replicas"), "status": dep.get("status"),
                          "message": (dep.get("message") or "")[:500]}
                   for name, dep in (app.get("deployments") or {}).items()}
    return {"status": app.get("status"), "message": (app.get("message") or "")[:500],
            "route_prefix": app.get("route_prefix"), "ingress": topology.ingress,
            "downstream": list(topology.downstream) if topology.known else None, "deployments": deployments}


class Prober:
    """Snapshots in a background thread, every ``period_s`` seconds, into memory and JSONL."""

    def __init__(self, dashboard: str, pods_fn: Callable[[], list[dict[str, Any]]],
                 out_path: Path | None = None, period_s: float = 1.0, timeout_s: float = 2.0) -> None:
        self.dashboard = dashboard.rstrip("/")
        self.pods_fn = pods_fn
        self.out_path = out_path
        self.period_s = period_s
        self.timeout_s = timeout_s
        self.snapshots: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe")
        self._sessions = [requests.Session() for _ in range(3)]
        self._host = HostCpu()

    def snapshot(self) -> Snapshot:
        t = time.time()
        errors: dict[str, str] = {}

        def fetch(kind: str, fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - an unreachable API is an observation
                errors[kind] = f"{type(err).__name__}: {str(err)[:200]}"
                return None

        base = self.dashboard
        futures = {
            "serve": self._pool.submit(fetch, "serve", lambda: _get_json(self._sessions[0], base + SERVE_DETAILS, self.timeout_s)),
            "actors": self._pool.submit(fetch, "actors", lambda: _get_json(self._sessions[1], base + ACTORS_ALIVE, self.timeout_s)["data"]["result"]["result"]),
            "nodes": self._pool.submit(fetch, "nodes", lambda: _get_json(self._sessions[2], base + NODES, self.timeout_s)["data"]["result"]["result"]),
            "pods": self._pool.submit(fetch, "pods", self.pods_fn),
        }
        results = {k: f.result() for k, f in futures.items()}
        snap = build_snapshot(t, results["serve"], results["actors"], results["nodes"], results["pods"], errors)
        snap.t_end = time.time()
        snap.host_cpu_busy = self._host.busy()
        return snap

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            snap = self.snapshot()
            with self._lock:
                self.snapshots.append(snap)
            if self.out_path is not None:
                with self.out_path.open("a") as fh:
                    fh.write(json.dumps(snap.to_dict(), default=str) + "\n")
            self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="prober")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def copy(self) -> list[Snapshot]:
        with self._lock:
            return list(self.snapshots)
