"""What the data path does while the GCS is away (the head's container restarting after its GCS
crashed): the worker pods' routers keep spreading load over their replicas."""

from __future__ import annotations

from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN, CheckResult
from serve_chaos.harness.load.servedby import served
from serve_chaos.harness.observe.history import FaultRecord, History

#: Requests a worker pod's proxy must have served per local replica before what it reached is judged.
MIN_PER_REPLICA = 5


def head_back_at(history: History, fault: FaultRecord) -> float | None:
    """When the head pod was ready again in a new incarnation (epoch s), from the probes."""
    head = next((v for v in fault.victims if v.get("role") == "pod"), None)
    if head is None:
        return None
    for snap in history.snapshots:
        if snap.t < fault.t_inject or not snap.pods_ok:
            continue
        for pod in snap.pods:
            if pod.get("name") == head["name"] and pod.get("ready") and (
                    pod.get("uid") != head.get("uid") or int(pod.get("restarts") or 0) > int(head.get("restarts") or 0)):
                return snap.t
    return None


def routers_kept_spreading(history: History, fault: FaultRecord) -> CheckResult:
    """While the GCS was away, every worker pod's proxy kept sending to each of the replicas on its
    node (Serve's routers prefer local replicas; they need no GCS to route): none dropped out."""
    name = "gcs_away.routers_kept_spreading"
    local: dict[str, list[str]] = fault.params.get("worker_replicas") or {}
    end = head_back_at(history, fault) or history.t_data_end or float("inf")
    reqs = history.judged_requests()
    if reqs.empty or not local:
        return CheckResult(name, UNKNOWN, detail="no worker replicas or no requests to judge")
    window = reqs[(reqs["t"] >= fault.t_inject) & (reqs["t"] < end) & reqs["ok"]]
    window = window[window["endpoint"].astype(str).str.startswith("pods:worker")]
    by = window.assign(_by=served(window)).dropna(subset=["_by"])
    missing, judged = [], 0
    for pod, replicas in sorted(local.items()):
        mine = by[by["pod"] == pod]
        if len(mine) < MIN_PER_REPLICA * len(replicas):
            continue
        judged += 1
        missing += [f"{r} on {pod}" for r in replicas if r not in set(mine["_by"])]
    if not judged:
        return CheckResult(name, UNKNOWN, detail="too few attributed requests through the worker pods while the "
                                                  "GCS was away")
    return CheckResult(name, FAIL if missing else PASS, len(missing), "0 replicas left out", "",
                       (f"{end - fault.t_inject:.1f} s with the GCS away; " if end != float("inf") else
                        "the head never came back; ")
                       + (f"not reached: {', '.join(missing)}" if missing else f"{judged} worker pods reached "
                                                                               "every local replica"))
