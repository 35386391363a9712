"""Bad rollouts under load: a new version that cannot start, that fails its health checks, or
whose ``reconfigure`` raises on a ``user_config`` change.

What Ray 2.60 promises (``serve/_private/constants.py`` RAY_SERVE_STOP_FAILED_ROLLING_UPDATES,
on by default: "Stop rolling updates at the startup failure threshold, including health check
failures. Keep surviving replicas until a deploy changes the target";
``deployment_state.py`` ``_mark_rolling_update_failed_if_needed``, ``check_curr_status``):
replicas of the new version that fail to start -- constructor raising, initial health check
failing, ``reconfigure`` raising while UPDATING -- count toward ``min(max_constructor_retry_count
(20 by default), RAY_SERVE_MAX_PER_REPLICA_RETRY_COUNT (3) x target)`` failures; at that count the rollout stops, the deployment is
DEPLOY_FAILED, and the old replicas still running keep serving until the next deploy.

The bad version is the bundled SleepyPid's (``runtime/app/sleepy_pid.py``): the env var
``SERVE_CHAOS_BAD_VERSION`` in its runtime_env makes the constructor raise (``constructor``) or
``check_health`` fail from the start, with no model load before (``health``: each retry fails
fast, as the constructor's does), and ``user_config``
``{"serve_chaos_fail_reconfigure": true}`` makes ``reconfigure`` raise.  The fault lasts until
Serve has reported the failure for a while (``done_early``), at most ``duration_s``; its end puts
the good config back (the heal), and recovery is judged from then.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from serve_chaos.harness.checks import CheckResult
from serve_chaos.harness.checks.results import FAIL, PASS, UNKNOWN
from serve_chaos.harness.faults.base import FaultPlan
from serve_chaos.harness.faults.operator import ROLLOUT_ENV, Change, ConfigChange
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import ActionRecord, Cluster, PodInfo

#: The env var SleepyPid reads for a deliberately bad version (``runtime/app/sleepy_pid.py``).
BAD_VERSION_ENV = "SERVE_CHAOS_BAD_VERSION"
#: The ``user_config`` key that makes SleepyPid's ``reconfigure`` raise.
FAIL_RECONFIGURE_KEY = "serve_chaos_fail_reconfigure"
BAD_MODES = ("constructor", "health", "reconfigure")
#: What Serve reports for a rollout it stopped (``common.py``: the ROLLING_UPDATE_FAILED trigger maps
#: to DEPLOY_FAILED; ``deployment_state.py`` check_curr_status fires it).
FAILED_STATUS = "DEPLOY_FAILED"
ENV_OPTION = "ray_actor_options.runtime_env.env_vars"


@dataclass(frozen=True)
class BadRollout(ConfigChange):
    """Roll out a version of the aimed deployments that fails (``mode``) and keep it deployed until
    Serve has said so for ``settle_s`` seconds (at most ``duration_s``), then put the good one back."""

    name: ClassVar[str] = "bad_rollout"
    summary: ClassVar[str] = "roll out a bad version"
    mode: str = "constructor"
    duration_s: float = 150.0
    settle_s: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in BAD_MODES:
            raise ValueError(f"bad rollout mode must be one of {BAD_MODES}, got {self.mode!r}")

    def describe(self) -> str:
        what = {"constructor": "whose constructor raises", "health": "whose check_health always fails",
                "reconfigure": "whose reconfigure raises on a user_config change"}[self.mode]
        return f"roll out a bad version ({what}) under load; the good config back once Serve reports it" + \
            self.aim_text()

    def change_of(self, app: str, name: str, dep: dict[str, Any], rng: random.Random) -> Change:
        config = dep.get("config") or {}
        if self.mode == "reconfigure":
            user = config.get("user_config")
            old = user if isinstance(user, dict) else None
            return Change(app, name, "user_config", old, {**(old or {}), FAIL_RECONFIGURE_KEY: True})
        env = dict(((config.get("ray_actor_options") or {}).get("runtime_env") or {}).get("env_vars") or {})
        bad = {**env, BAD_VERSION_ENV: self.mode, ROLLOUT_ENV: f"bad{rng.randrange(10**6):06d}"}
        return Change(app, name, ENV_OPTION, env or None, bad)

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        plan = super().plan(snap, pods, rng)
        # Recovered once Serve runs the good option again: the victim is the bad value.
        plan.victims = [{**v, "old": v["new"], "new": v["old"], "bad": True} for v in plan.victims]
        running = [a for a in snap.actors if a["role"] == "replica" and a.get("state") == "RUNNING"]
        plan.params["old_replicas"] = dict(Counter(f"{a.get('app')}/{a.get('deployment')}" for a in running))
        # Ray 2.60 deployment_state.py _rollout_size: max(int(rolling_update_percentage x target), 1).
        plan.params["batches"] = {f"{app}/{name}": max(int(float((dep.get("config") or {}).get(
            "rolling_update_percentage") or 0.2) * int(dep.get("target_num_replicas") or 1)), 1)
            for app, name, dep in self.targets(snap)}
        plan.params["old_replica_ids"] = sorted(str(a["actor_id"]) for a in running)
        return plan

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        good = copy.deepcopy(cluster.serve_config())
        out = super().inject(cluster, plan)
        out.params["good_config"] = good
        return out

    def end(self, cluster: Cluster, record: FaultRecord) -> list[ActionRecord]:
        """Deploy the good config again, as an operator would (a plain update: the old replicas
        still running are of that version and stay; the stopped batch is started again)."""
        return [cluster.update_serve_config(record.params["good_config"], "the good version back")]

    def done_early(self, history: History, record: FaultRecord) -> bool:
        """Serve has reported the failed rollout for ``settle_s``: enough of the bad version."""
        first = first_failed(history, record)
        return first is not None and history.snapshots[-1].t - first >= self.settle_s

    def verify(self, history: History, record: FaultRecord) -> CheckResult:
        return serve_reported_failure(history, record)


def _changed(record: FaultRecord) -> list[tuple[str, str]]:
    return [(c["app"], c["deployment"]) for c in record.params.get("changes", [])]


def first_failed(history: History, record: FaultRecord) -> float | None:
    """When Serve first reported every changed deployment DEPLOY_FAILED (epoch s), before the end."""
    for snap in history.snapshots_in_effect(record):
        if snap.serve_ok and all(
                _status(snap, app, dep) == FAILED_STATUS for app, dep in _changed(record)):
            return snap.t
    return None


def _status(snap: Snapshot, app: str, dep: str) -> str | None:
    return (((snap.apps.get(app) or {}).get("deployments") or {}).get(dep) or {}).get("status")


def serve_reported_failure(history: History, record: FaultRecord) -> CheckResult:
    """The bad version took effect: Serve marked every changed deployment DEPLOY_FAILED while it
    was deployed (value: seconds from the rollout to that status)."""
    name = "fault.took_effect"
    t = first_failed(history, record)
    if t is not None:
        return CheckResult(name, PASS, round(t - record.t_inject, 3), "DEPLOY_FAILED", "s",
                           "Serve stopped the rollout and reported the deployment DEPLOY_FAILED")
    seen = sorted({str(_status(s, a, d)) for s in history.snapshots if s.t >= record.t_inject and s.serve_ok
                   for a, d in _changed(record)})
    if not seen:
        return CheckResult(name, UNKNOWN, bound="DEPLOY_FAILED", detail="no Serve status after the rollout")
    return CheckResult(name, FAIL, None, "DEPLOY_FAILED", detail=f"Serve never reported the bad version failed "
                                                                 f"(statuses seen: {', '.join(seen)})")


def old_replicas_kept(history: History, record: FaultRecord) -> CheckResult:
    """While the bad version was deployed, the old replicas kept serving: per deployment at most
    one rollout batch of them stopped (``max(int(rolling_update_percentage x target), 1)``, from the
    config Serve deployed), the others RUNNING throughout."""
    name = "bad_rollout.old_replicas_kept"
    old_ids = set(record.params.get("old_replica_ids") or [])
    counts: dict[str, int] = record.params.get("old_replicas") or {}
    window = [s for s in history.snapshots_in_effect(record) if s.serve_ok and s.actors_ok]
    if not window or not counts:
        return CheckResult(name, UNKNOWN, detail="no probe while the bad version was deployed")
    worst: tuple[int, str, int] | None = None
    for key, before in counts.items():
        app, _, dep = key.partition("/")
        floor = before - int((record.params.get("batches") or {}).get(key) or max(int(0.2 * before), 1))
        low = min(sum(1 for a in s.actors if a["role"] == "replica" and a.get("actor_id") in old_ids
                      and a.get("state") == "RUNNING" and (a.get("app"), a.get("deployment")) == (app, dep))
                  for s in window)
        if worst is None or low - floor < worst[0] - worst[2]:
            worst = (low, key, floor)
    assert worst is not None
    low, key, floor = worst
    return CheckResult(name, PASS if low >= floor else FAIL, low, f">= {floor}", "replicas",
                       f"{key}: fewest old replicas RUNNING while the bad version was deployed")


def failure_timeline(history: History, record: FaultRecord) -> dict[str, Any]:
    """Reported, not judged: when Serve said DEPLOY_FAILED, what its message said, and the fewest
    replicas RUNNING while the bad version was deployed."""
    t = first_failed(history, record)
    window = [s for s in history.snapshots_in_effect(record) if s.serve_ok]
    message = ""
    for snap in reversed(window):
        message = next((m for a, d in _changed(record) if (m := str(((((snap.apps.get(a) or {}).get(
            "deployments") or {}).get(d) or {}).get("message")) or ""))), "")
        if message:
            break
    return {"bad_rollout": {"deploy_failed_after_s": None if t is None else round(t - record.t_inject, 1),
                            "min_replicas_running": min((s.replicas_running or 0 for s in window), default=None),
                            "serve_message": message[:300]}}
