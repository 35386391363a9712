"""Builders of crafted timelines for the check self-tests (test doubles for pure logic only)."""

from __future__ import annotations

from typing import Any, Callable

from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot

PODS = {"head": "10.0.0.10", "worker-1": "10.0.0.20", "worker-2": "10.0.0.21"}


def requests(
    t0: float,
    t1: float,
    rate: float,
    endpoint: str = "front",
    fail: Callable[[float], str | None] = lambda t: None,
    pid_of: Callable[[int, float], int] | None = None,
    pod_of: Callable[[int, float], str | None] | None = None,
    seq0: int | None = 0,
) -> list[dict[str, Any]]:
    """Requests at exactly ``rate``/s in ``[t0, t1)``; ``fail(t)`` returns an error class or None.

    ``seq0=None`` leaves sequence numbers out (a second endpoint in the same run).
    """
    out = []
    n = int(round((t1 - t0) * rate))
    for i in range(n):
        t = t0 + i / rate
        err = fail(t)
        out.append({
            "seq": None if seq0 is None else seq0 + i,
            "t": t,
            "t_sent": t,
            "endpoint": endpoint,
            "ok": err is None,
            "error": err,
            "status": 200 if err is None else (503 if err == "5xx" else None),
            "pid": None if err else (pid_of(i, t) if pid_of else 100 + i % 6),
            "pod": pod_of(i, t) if pod_of else None,
            "latency_ms": 2.0 + (i % 100) / 10.0,
        })
    return out


def replica(pid: int, pod: str, state: str = "RUNNING") -> dict[str, Any]:
    return {"role": "replica", "actor_id": f"a{pid}", "name": f"SERVE_REPLICA::app#d#{pid}", "pid": pid,
            "node_id": f"n-{pod}", "node_ip": PODS[pod], "pod": pod, "state": state, "app": "app", "deployment": "d",
            "replica_id": str(pid), "ingress": True, "log_file": f"serve/replica_app_d_{pid}.log"}


def proxy(pid: int, pod: str, actor_id: str | None = None, state: str = "HEALTHY") -> dict[str, Any]:
    return {"role": "proxy", "actor_id": actor_id or f"p{pid}", "name": f"SERVE_PROXY_ACTOR-n-{pod}",
            "pid": pid, "node_id": f"n-{pod}", "node_ip": PODS[pod], "pod": pod, "state": state}


def controller(pid: int) -> dict[str, Any]:
    return {"role": "controller", "actor_id": f"c{pid}", "name": "SERVE_CONTROLLER_ACTOR", "pid": pid,
            "node_id": "n-head", "node_ip": PODS["head"], "pod": "head", "state": "ALIVE"}


def pods(uids: dict[str, str] | None = None) -> list[dict[str, Any]]:
    uids = uids or {}
    return [{"name": name, "role": "head" if name == "head" else "worker", "ip": ip, "phase": "Running",
             "ready": True, "uid": uids.get(name, f"uid-{name}"), "node": f"node-{name}", "restarts": 0}
            for name, ip in PODS.items()]


def snapshot(t: float, actors: list[dict[str, Any]], ok: bool = True, pod_list: list | None = None) -> Snapshot:
    running = sum(1 for a in actors if a["role"] == "replica" and a["state"] == "RUNNING")
    return Snapshot(t=t, t_end=t + 0.01, serve_ok=ok, actors_ok=ok, nodes_ok=ok, pods_ok=True,
                    app_status="RUNNING" if ok else None, replicas_running=running if ok else None,
                    actors=actors if ok else [], pods=pod_list if pod_list is not None else pods(),
                    errors={} if ok else {"serve": "ConnectionError"})


#: Six replicas, two per pod, PIDs 101..106.
BASE_REPLICAS = [replica(101, "head"), replica(102, "head"), replica(103, "worker-1"),
                 replica(104, "worker-1"), replica(105, "worker-2"), replica(106, "worker-2")]
BASE_SYSTEM = [proxy(201, "head"), proxy(202, "worker-1"), proxy(203, "worker-2"), controller(300)]


def pod_of_round_robin(i: int, _t: float) -> str:
    return ("head", "worker-1", "worker-2")[i % 3]


def pid_local(i: int, t: float, replicas: list[dict[str, Any]] | None = None) -> int:
    """The PID a proxy with local replicas answers from (Serve prefers its node's replicas)."""
    pod = pod_of_round_robin(i, t)
    local = [r["pid"] for r in (replicas or BASE_REPLICAS) if r["pod"] == pod]
    return local[(i // 3) % len(local)]


def history(reqs: list[dict[str, Any]], snaps: list[Snapshot], faults: list[FaultRecord] | None = None,
            desired: int = 6, **kwargs: Any) -> History:
    return History.build(reqs, snapshots=snaps, faults=faults or [], desired_replicas=desired, **kwargs)
