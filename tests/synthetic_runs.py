"""Run directories built from crafted timelines (test doubles for reports: no cluster).

Each builder evaluates a crafted History with the real checks and the real
scenario objects (or a scenario shaped like one) and writes the run directory
``serve-chaos run`` would write: ``verdict.json`` and the raw history.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from serve_chaos.harness.report import artifacts as report
from serve_chaos.harness.catalog import load_scenarios
from serve_chaos.harness.checks import SLO, evaluate_phases
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import COMPOSED_APP, SCENARIO_APP
from serve_chaos.runtime.app.spec import AppSpec
from tests import synthetic as syn

RATE = 10.0  # req/s
#: What a local cluster records (trimmed to the keys reports show).
SETTINGS = {"target": "local", "isolation": "netns", "gcs_ft": True, "workers": 2, "ray_version": "2.60.0",
            "health_check_period_s": 10.0, "health_check_timeout_s": 30.0, "graceful_shutdown_timeout_s": 20.0,
            "health_check_period_ms": 3000, "health_check_timeout_ms": 10000, "health_check_failure_threshold": 5,
            "readiness_period_s": 5.0, "front_door_lag_s": 8.0, "app": "sleepy_pid", "replica_start_s": 10.2,
            "app_code": "files:abc"}


def write(root: Path, run_id: str, started: float, scenario: Scenario, history: History,
          settings: dict[str, Any] | None = None, app: AppSpec | None = SCENARIO_APP) -> Path:
    """Judge ``history`` as ``scenario`` and write its run directory under ``root``."""
    settings = {**SETTINGS, **(settings or {})}
    ev = evaluate_phases(history, scenario.phases(), scenario.hold_s, settings)
    verdict = report.verdict(scenario=scenario, run_id=run_id, status=ev.status, seed=7, settings=settings,
                             started=started, finished=started + 80.0, evaluation=ev, history=history, plans=[],
                             t_gate=None, error="", cluster_healthy=True, t_recovered_live=[], target="local",
                             app=app)
    run_dir = root / run_id
    report.write_run(run_dir, history, verdict)
    return run_dir


def skipped(root: Path, run_id: str, started: float, scenario: Scenario, reason: str) -> Path:
    """What the engine writes for a scenario that does not apply."""
    history = History.build([])
    verdict = report.verdict(scenario=scenario, run_id=run_id, status="skipped", seed=7, settings={"app": "x"},
                             started=started, finished=started, evaluation=None, history=history, plans=[],
                             t_gate=None, error=reason, cluster_healthy=True, t_recovered_live=[], target="local")
    run_dir = root / run_id
    report.write_run(run_dir, history, verdict)
    return run_dir


# ---------------------------------------------------------------------- one replica killed
VICTIM = syn.replica(103, "worker-1")
NEW = syn.replica(107, "worker-1")


def _replicas_at(t: float) -> list[dict]:
    others = [r for r in syn.BASE_REPLICAS if r["pid"] != 103]
    if t < 23:
        return syn.BASE_REPLICAS
    if t < 33:
        return others + [dict(NEW, state="STARTING")]
    return others + [NEW]


def _pid_at(i: int, t: float) -> int:
    running = [r for r in _replicas_at(t) if r["state"] == "RUNNING"]
    if 20 <= t < 23:
        running = [r for r in running if r["pid"] != 103]
    return syn.pid_local(i, t, running)


def replica_kill_history(fail: Callable[[float], str | None] = lambda t: None,
                         latency: Callable[[float], float] | None = None) -> History:
    """A replica killed at 20 s, replaced and RUNNING at 33 s; load 0-60 s at 10 req/s."""
    reqs = syn.requests(0, 60, RATE, fail=fail, pid_of=_pid_at, pod_of=syn.pod_of_round_robin)
    if latency is not None:
        for r in reqs:
            r["latency_ms"] = latency(r["t"])
    snaps = [syn.snapshot(t + 0.5, _replicas_at(t + 0.5) + syn.BASE_SYSTEM) for t in range(60)]
    fault = FaultRecord("replica_kill", 20.0, 20.1, victims=[dict(VICTIM)])
    return syn.history(reqs, snaps, [fault], t_load_start=0.0, t_load_stop=60.0)


def shaped(name: str, **changes: Any) -> Scenario:
    """A catalogue scenario judged like a replica kill: its name, title and promise, one
    fault, recovery within 30 s and only the victim replaced (plus ``changes``)."""
    sc = load_scenarios()[name]
    base = dict(slo=SLO(max_recovery_s=30.0, max_outage_s=1.0), expected_churn={"replica": "victims"},
                followups=(), known_broken={}, known_intermittent={}, bounds=None, extra_checks=(),
                extra_metrics=())
    return replace(sc, **{**base, **changes})


# ---------------------------------------------------------------------- the controller, then every replica
OLD_CONTROLLER, NEW_CONTROLLER = syn.controller(300), syn.controller(301)
REPLACEMENTS = [syn.replica(pid, pod) for pid, pod in zip(range(111, 117), ("head", "head", "worker-1", "worker-1",
                                                                            "worker-2", "worker-2"))]


def _controller_actors(t: float) -> list[dict]:
    system = syn.BASE_SYSTEM[:3] + ([OLD_CONTROLLER] if t < 20 else [NEW_CONTROLLER] if t >= 24 else [])
    replicas = syn.BASE_REPLICAS if t < 40 else REPLACEMENTS if t >= 50 else []
    return replicas + system


def controller_failure_history() -> History:
    """ray-project/ray#63784 as the history shows it: the controller killed at 20 s and back at
    24 s without a failed request; every replica killed at 40 s; the replacements RUNNING from
    50 s, yet every request times out from 40 s on (the proxies route to the dead set); from
    70 s the dashboard stops answering (the heal restarting the controller)."""
    reqs = syn.requests(0, 80, RATE, fail=lambda t: "timeout" if t >= 40 else None,
                        pid_of=syn.pid_local, pod_of=syn.pod_of_round_robin)
    for r in reqs:
        if not r["ok"]:
            r["latency_ms"] = 5000.0
    snaps = [syn.snapshot(t / 2, _controller_actors(t / 2), ok=t / 2 < 70) for t in range(160)]
    faults = [FaultRecord("controller_kill", 20.0, 20.1, victims=[dict(OLD_CONTROLLER)]),
              FaultRecord("all_replicas_kill", 40.0, 40.1, victims=[dict(r) for r in syn.BASE_REPLICAS],
                          phase="replicas_after_recovery")]
    return syn.history(reqs, snaps, faults, t_load_start=0.0, t_load_stop=80.0)


def controller_failure_run(root: Path, run_id: str = "r-controller_failure", started: float = 1000.0) -> Path:
    return write(root, run_id, started, load_scenarios()["controller_failure"], controller_failure_history())


# ---------------------------------------------------------------------- a night of CI
def ci_night(root: Path) -> list[Path]:
    """16 runs shaped like one CI night: 11 kept, 3 known deviations (one of them the
    controller's), 1 broken, 1 skipped -- with a slow replica during one fault."""
    runs: list[Path] = []
    t = 1000.0
    slow = lambda s: 600.0 if 20 <= s < 26 else 3.0 + (s % 1) * 10  # noqa: E731 - a short latency spike
    kept = ["replica_failure", "worker_pod_failure", "health_check_raise_fast", "health_check_hang_fast",
            "replica_hang", "health_check_raise_default", "gcs_store_lost",
            "downstream_replica_failure", "downstream_all_replicas_kill", "downstream_replica_hang",
            "head_failure_no_gcs_ft"]
    for i, name in enumerate(kept):
        settings = {"gcs_ft": False} if name == "head_failure_no_gcs_ft" else {}
        app = COMPOSED_APP if name.startswith("downstream_") else SCENARIO_APP
        history = replica_kill_history(latency=slow if name == "replica_hang" else None)
        runs.append(write(root, f"r{i:02d}-{name}", t + i, shaped(name), history, settings, app))
    refused = lambda s: "refused" if 20 <= s < 22 else None  # noqa: E731
    known = {"proxy_failure": "a new ProxyActor after ~26-29 s; the pod refuses connections meanwhile",
             "head_failure_gcs_ft": "the restarted head's proxy passes /-/healthz ~14 s before it routes"}
    for j, (name, why) in enumerate(known.items()):
        runs.append(write(root, f"r2{j}-{name}", t + 20 + j,
                          shaped(name, known_broken={"front.longest_outage_s": why}),
                          replica_kill_history(fail=refused)))
    runs.append(controller_failure_run(root, "r30-controller_failure", t + 30))
    runs.append(write(root, "r31-worker_node_failure", t + 31, shaped("worker_node_failure"),
                      replica_kill_history(fail=lambda s: "timeout" if 20 <= s < 23.5 else None)))
    runs.append(skipped(root, "r32-strict_spreading", t + 32, load_scenarios()["strict_spreading"],
                        "strict_spreading does not apply to your app: it reshapes the deployment"))
    return runs
