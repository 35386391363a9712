"""A crash loop: a replica dies and every replacement fails in its constructor for a while (a model
store that is down, a config service that refuses), then the cause goes away.

The bundled SleepyPid refuses to start while its start gate is closed
(``POST /-/chaos/startgate?fail_for_s=N``, ``runtime/app/sleepy_pid.py``; the gate is a key in
Ray's internal KV, so it holds on every pod of either target).  The fault closes the gate, kills
one RUNNING replica, and at its end reads how many starts the gate refused: that count is the
evidence the loop happened.

What Ray 2.60 does (``serve/_private/deployment_state.py``): once a version has had a RUNNING
replica (``_replica_has_started``), constructor failures no longer count toward DEPLOY_FAILED
(``_failed_to_start_threshold`` applies only before that, or during a rolling update); each failed
start is stopped and a new replica started on the next control-loop pass, with no backoff, for as
long as it takes; the deployment's message says "A replica failed to start with exception.
Retrying."  So the promise is: the others keep serving, Serve never gives up, and the count is back
one replica start after the cause went away.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import requests

from serve_chaos.harness.checks import CheckResult
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN
from serve_chaos.harness.faults.actors import ReplicaKill
from serve_chaos.harness.faults.base import FaultPlan
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.runtime.app.spec import HEALTH_ROUTE, AppSpec
from serve_chaos.runtime.cluster import ActionRecord, Cluster
from serve_chaos.runtime.errors import InfrastructureError

#: SleepyPid's gate route (the same name as in ``runtime/app/sleepy_pid.py``).
START_GATE_ROUTE = "/-/chaos/startgate"
#: Terminal colours in the tracebacks Serve puts into its status messages.
ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Fewer refused starts than this is one failure, not a loop.
MIN_REFUSED_STARTS = 2


@dataclass(frozen=True)
class CrashLoop(ReplicaKill):
    """Close SleepyPid's start gate for ``duration_s`` seconds, then kill one RUNNING replica."""

    name: ClassVar[str] = "crash_loop"
    aimable: ClassVar[bool] = False
    summary: ClassVar[str] = "ray.kill one replica while every new replica's constructor fails"
    duration_s: float = 25.0
    #: The app's gate route (its route prefix + START_GATE_ROUTE).
    path: str = START_GATE_ROUTE

    def for_app(self, app: AppSpec, deployment: str | None) -> "CrashLoop":
        toggle = app.health_toggle_path()
        return replace(self, path=toggle[: -len(HEALTH_ROUTE)] + START_GATE_ROUTE) if toggle else self

    def describe(self) -> str:
        return f"{self.summary} for {self.duration_s:g} s (SleepyPid's start gate), then may start again"

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        gate = self._gate(cluster, "POST", self.duration_s)
        out = super().inject(cluster, plan)
        out.params.update({"gate_until": gate.get("until"), "fail_for_s": self.duration_s})
        return out

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """Open the gate (it has expired by now; this makes sure) and read how many starts it refused."""
        t0 = time.time()
        before = self._gate(cluster, "GET", None)
        self._gate(cluster, "POST", 0.0)
        return [ActionRecord("start_gate_read", "start gate", t0, time.time(),
                             {"failed_starts": before.get("failed"), "until": before.get("until")})]

    def heal(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        try:
            self._gate(cluster, "POST", 0.0)
        except InfrastructureError:
            pass  # nothing serves the route: no replica can be refused by the gate either
        return cluster.heal()

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        killed = super().verify(history, record)
        read = next((a for a in reversed(record.heal_actions) if a.get("action") == "start_gate_read"), None)
        failed = ((read or {}).get("details") or {}).get("failed_starts")
        name, bound = "fault.took_effect", f">= {MIN_REFUSED_STARTS} refused starts and the victim gone"
        if failed is None:
            return CheckResult(name, UNKNOWN, bound=bound, detail="the start gate was not read at the fault's end")
        ok = killed.status == PASS and int(failed) >= MIN_REFUSED_STARTS
        detail = (f"{failed} replica start(s) failed in the constructor while the gate was closed "
                  f"({self.duration_s:g} s); the killed replica: {killed.detail or killed.status}")
        return CheckResult(name, PASS if ok else FAIL, int(failed), bound, "starts", detail)

    def _gate(self, cluster: Cluster, method: str, fail_for_s: float | None) -> dict[str, Any]:
        url = cluster.endpoints().front_door.rstrip("/") + self.path
        params = {} if fail_for_s is None else {"fail_for_s": f"{fail_for_s:g}"}
        try:
            reply = requests.request(method, url, params=params, timeout=10)
            body = reply.json()
        except (requests.RequestException, ValueError) as err:
            raise InfrastructureError(f"could not reach SleepyPid's start gate at {url}: {err}") from None
        if not isinstance(body, dict) or "until" not in body:
            raise InfrastructureError(f"{url} is not SleepyPid's start gate (it answered {str(body)[:80]!r})")
        return body


def _loop_window(history: History, record: FaultRecord) -> list[Any]:
    return [s for s in history.snapshots_in_effect(record) if s.serve_ok]


def _victim_deployment(snap: Any, record: FaultRecord) -> dict[str, Any]:
    victim = record.victims[0] if record.victims else {}
    app = snap.apps.get(victim.get("app")) or {}
    return (app.get("deployments") or {}).get(victim.get("deployment")) or {}


def _status_seen(history: History, record: FaultRecord, status: str) -> tuple[list[Any], list[float]]:
    """The loop's probes, and the times of those that saw the victim's deployment in ``status``."""
    window = _loop_window(history, record)
    return window, [s.t for s in window if _victim_deployment(s, record).get("status") == status]


def kept_retrying(history: History, record: FaultRecord) -> CheckResult:
    """Serve never gave up on the deployment while its starts kept failing: no probe in the loop saw
    it DEPLOY_FAILED (the threshold applies only before a version's first RUNNING replica).  With
    the other replicas RUNNING, Ray 2.60 cannot fail this; it is a tripwire for a release that
    counts such failures again."""
    name = "crash_loop.kept_retrying"
    window, failed = _status_seen(history, record, "DEPLOY_FAILED")
    if not window:
        return CheckResult(name, UNKNOWN, detail="no probe while the gate was closed")
    detail = (f"DEPLOY_FAILED {failed[0] - record.t_inject:.1f} s into the loop" if failed
              else f"{len(window)} probes over the loop, none DEPLOY_FAILED")
    return CheckResult(name, FAIL if failed else PASS, len(failed), "== 0", "probes", detail)


def reported_unhealthy(history: History, record: FaultRecord) -> CheckResult:
    """Serve said so while the replacements kept failing: some probe in the loop saw the deployment
    UNHEALTHY (``deployment_state.py``: a target-version replica that died moves a deployment that was
    HEALTHY to UNHEALTHY until the count is back)."""
    name = "crash_loop.reported_unhealthy"
    window, seen = _status_seen(history, record, "UNHEALTHY")
    if not window:
        return CheckResult(name, UNKNOWN, detail="no probe while the gate was closed")
    detail = (f"UNHEALTHY from {seen[0] - record.t_inject:.1f} s into the loop, in {len(seen)} of {len(window)} probes"
              if seen else f"none of {len(window)} probes over the loop saw the deployment UNHEALTHY")
    return CheckResult(name, PASS if seen else FAIL, len(seen), ">= 1", "probes", detail)


def loop_timeline(history: History, record: FaultRecord) -> dict[str, Any]:
    """Reported, not judged: the statuses Serve gave the deployment during the loop and its last message."""
    window = _loop_window(history, record)
    statuses = list(dict.fromkeys(str(_victim_deployment(s, record).get("status")) for s in window))
    message = next((ANSI.sub("", str(m)) for s in reversed(window) if (m := _victim_deployment(s, record).get("message"))), "")
    return {"crash_loop": {"statuses": statuses, "serve_message": message[:300],
                           "min_replicas_running": min((s.replicas_running or 0 for s in window), default=None)}}
