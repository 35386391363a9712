"""A query of death: a request that makes the replica serving it exit (a model that segfaults on
one input, an OOM-kill on one payload), sent through the front door like any client's.

The bundled SleepyPid exits on ``GET /?serve_chaos_exit=1`` (``runtime/app/sleepy_pid.py``).
Which replica dies is Serve's routing choice, so the victims are known only afterwards: the fault
records the replicas RUNNING before it, and ``verify`` finds which of them went.  ``sends`` > 1 is
a client that retries the poison request (each retry may take another replica with it).

What Ray 2.60 does with the dead replica (``serve/_private/router.py``
``_handle_actor_died_error``): the first router whose call fails with ActorDiedError drops the
replica from its routing set at once ("will not be considered for future requests"), before the
controller's health check would notice; the controller then replaces it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from serve_chaos.harness.checks import CheckResult
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN
from serve_chaos.harness.faults.base import Fault, FaultPlan
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo

#: The query SleepyPid exits on (the same name as in ``runtime/app/sleepy_pid.py``).
EXIT_QUERY = "serve_chaos_exit"
#: How long a poison request may take to fail (s): the replica exits at once.
POISON_TIMEOUT_S = 10.0
#: How long after the last poison request its victims must be gone from Serve's view (s).
DEATH_NOTICED_S = 15.0


@dataclass(frozen=True)
class QueryOfDeath(Fault):
    """Send the poison request ``sends`` times through the front door, ``gap_s`` apart."""

    name: ClassVar[str] = "query_of_death"
    summary: ClassVar[str] = "send a request that makes its replica exit"
    sends: int = 1
    gap_s: float = 1.0

    def describe(self) -> str:
        retried = f", retried {self.sends - 1}x as a client would" if self.sends > 1 else ""
        return f"{self.summary} (GET /?{EXIT_QUERY}=1{retried})"

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        running = sorted(str(a["actor_id"]) for a in snap.actors
                         if a["role"] == "replica" and a.get("state") == "RUNNING")
        return FaultPlan(self.name, self.describe(), [],
                         {"path": f"/?{EXIT_QUERY}=1", "sends": self.sends, "replicas_before": running})

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        url = cluster.endpoints().front_door.rstrip("/") + plan.params["path"]
        t0 = time.time()
        answers = []
        for i in range(int(plan.params["sends"])):
            if i:
                time.sleep(self.gap_s)
            answers.append(_send(url))
        action = ActionRecord("query_of_death", "front", t0, time.time(), {"answers": answers})
        return FaultRecord(plan.fault, t0, action.t_end, [], action.to_dict(), plan.params)

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        return replicas_killed(history, record)


def _send(url: str) -> dict[str, Any]:
    """One poison request: what the client saw and when (epoch s)."""
    t = time.time()
    try:
        resp = requests.get(url, timeout=POISON_TIMEOUT_S, headers={"X-Request-Id": f"poison-{int(t * 1000)}"})
        return {"t": t, "status": resp.status_code, "latency_ms": round((time.time() - t) * 1000, 1),
                "body": resp.text[:200]}
    except requests.RequestException as err:
        return {"t": t, "status": None, "latency_ms": round((time.time() - t) * 1000, 1),
                "error": type(err).__name__}


def dead_replicas(history: History, record: FaultRecord) -> list[str]:
    """Replicas RUNNING before the poison that Serve no longer lists as alive afterwards."""
    before = set(record.params.get("replicas_before") or [])
    end = record.t_end + DEATH_NOTICED_S
    after = [s for s in history.snapshots if record.t_end <= s.t <= end and s.actors_ok]
    if not after:
        return []
    last = after[-1]
    alive = {str(a["actor_id"]) for a in last.actors if a["role"] == "replica"}
    return sorted(before - alive)


def replicas_killed(history: History, record: FaultRecord) -> CheckResult:
    """The poison took effect: at least one replica that was RUNNING before it is gone (value: how many)."""
    name = "fault.took_effect"
    if not any(s.t >= record.t_end and s.actors_ok for s in history.snapshots):
        return CheckResult(name, UNKNOWN, detail="no usable probe after the poison request")
    dead = dead_replicas(history, record)
    if not dead:
        return CheckResult(name, FAIL, 0, ">= 1", "replicas", "no replica died of the poison request")
    return CheckResult(name, PASS, len(dead), ">= 1", "replicas", f"{len(dead)} replica(s) died of the poison request")


def one_replica_per_poison(history: History, record: FaultRecord) -> CheckResult:
    """No cascade inside Serve: each poison request took at most one replica with it (Serve does
    not retry a request whose replica died while running it on another one)."""
    name = "query_of_death.no_cascade"
    sends = int(record.params.get("sends") or 1)
    dead = dead_replicas(history, record)
    ok = len(dead) <= sends
    return CheckResult(name, PASS if ok else FAIL, len(dead), f"<= {sends}", "replicas",
                       f"{len(dead)} replica(s) died of {sends} poison request(s)")


def poison_answers(history: History, record: FaultRecord) -> dict[str, Any]:
    """Reported: what the client that sent the poison saw, and which replicas died."""
    answers = (record.action.get("details") or {}).get("answers") or []
    return {"query_of_death": {"answers": [{k: v for k, v in a.items() if k != "t"} for a in answers],
                               "replicas_died": len(dead_replicas(history, record))}}
