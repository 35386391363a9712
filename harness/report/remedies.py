"""What would help: one table of remedies, keyed by scenario and check, with their evidence.

Each remedy is what the Serve fault-tolerance guide (or, where the guide stops
at "the pod is killed", our own measurements) says to change, which setting of
the user's own config it is about, the scenario that demonstrates it, and a
figure we measured (README, Ray 2.60, the 2-core CI machine).  ``advice`` turns
a broken or deviating verdict into lines naming the remedy, the user's current
setting and the figure this run measured; ``serve_chaos.harness.app.advise`` uses the same
remedies to read a config before anything runs.  Pure functions of verdict dicts.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from serve_chaos.harness.app.settings import DeploymentSettings
from serve_chaos.harness.report.symptoms import parse_check, symptom, value_line
from serve_chaos.harness.report.verdicts import BROKEN, KNOWN, UNKNOWN, classify

GUIDE = "Serve guide \"Add End-to-End Fault Tolerance\""


@dataclass(frozen=True)
class Remedy:
    """``change``: what to do; ``settings``: the keys of the user's config (deployment
    options, ``gcs_ft``, ``request_timeout_s``, ``replica_start_s``) it is about;
    ``scenario``: the one that demonstrates it; ``measured``: what we measured
    (README); ``source``: where the remedy comes from."""

    key: str
    change: str
    settings: tuple[str, ...]
    scenario: str
    measured: str
    source: str


REMEDIES: dict[str, Remedy] = {r.key: r for r in (
    Remedy("gcs_ft", "turn GCS fault tolerance on (an external Redis; KubeRay `gcsFaultToleranceOptions`)",
           ("gcs_ft",), "head_failure_no_gcs_ft",
           "without it a lost head restarted the whole cluster: a 20-26 s front-door outage and every replica "
           "replaced; with it 0.07 s and the workers kept their replicas",
           f"{GUIDE}, \"Head node recovery: Ray GCS fault tolerance\""),
    Remedy("spread", "set `max_replicas_per_node` so that one node's loss cannot take every replica "
           "(1 spreads strictly)", ("num_replicas", "max_replicas_per_node"), "strict_spreading",
           "soft spreading placed 6 replicas 4/2/0, 3/2/1 and 6/0/0 here; with max_replicas_per_node=1 a node "
           "loss cost one replica and capacity never fell below 2 of 3",
           f"{GUIDE}, \"Spreading replicas across nodes\""),
    Remedy("spare_replicas", "run at least 2 replicas (`num_replicas`, or autoscaling `min_replicas`) so that "
           "losing one is not an outage until its replacement starts", ("num_replicas",), "replica_failure",
           "with 6 replicas a killed replica failed 0 requests; its replacement served after 13-22 s",
           f"{GUIDE}, \"Replica health-checking\" and \"Worker node recovery\" (replicas on healthy nodes keep "
           "serving while others respawn)"),
    Remedy("replica_start", "make a replica start faster (its constructor) or keep spare replicas: recovery "
           "waits for a replacement to start", ("replica_start_s", "num_replicas"), "replica_failure",
           "SleepyPid's 10 s constructor made a replacement serve after 13-22 s",
           f"{GUIDE}, \"Replica health-checking\" (Serve kills and restarts the replica)"),
    Remedy("health_check", "lower `health_check_period_s` and `health_check_timeout_s` (Serve's defaults 10 s "
           "and 30 s) so that an unhealthy or frozen replica is found sooner",
           ("health_check_period_s", "health_check_timeout_s"), "health_check_raise_default",
           "a replica whose check raised was killed after 33 s with Serve's defaults, 6 s at 1 s / 2 s",
           f"{GUIDE}, \"Replica health-checking\""),
    Remedy("graceful_shutdown", "set `graceful_shutdown_timeout_s` near your slowest request (Serve's default "
           "20 s): a frozen replica cannot use it, it only delays its replacement",
           ("graceful_shutdown_timeout_s",), "replica_hang",
           "a frozen replica was stopped ~27 s after the freeze: 8 s to fail 3 health checks, then the 20 s "
           "graceful shutdown", "Serve deployment option graceful_shutdown_timeout_s (measured by replica_hang)"),
    Remedy("handle_timeout", "give every DeploymentHandle call a timeout (`await asyncio.wait_for("
           "handle.remote(...), T)` or `response.result(timeout_s=T)`) and set `http_options.request_timeout_s`, "
           "so that a call to a lost or frozen downstream replica fails fast instead of holding the ingress",
           ("request_timeout_s",), "downstream_replica_hang",
           "two-apps example: /pipeline fell to 3-16 % for ~25 s through healthy pods while one Scorer's pod was "
           "cut off (network_partition); calls to killed downstream replicas waited until the client's 5 s "
           "timeout (downstream_all_replicas_kill: outage 4.3-9.3 s)",
           f"{GUIDE} (a parent deployment is not restarted when its child fails); Serve API "
           "DeploymentResponse.result(timeout_s), http_options.request_timeout_s"),
    Remedy("client_retry", "retry failed requests at the client, with a timeout and back-off, and route only to "
           "pods whose proxy passes `/-/healthz`", (), "proxy_failure",
           "a pod whose proxy was killed refused connections for ~26-29 s until the controller started a new "
           "proxy (Ray does not restart it: ProxyActor max_restarts=0)",
           "Serve docs \"Best practices in production\", client-side HTTP requests (retries)"),
    Remedy("node_detection", "expect a silent node to be declared dead only after health_check_failure_threshold "
           "x (health_check_timeout_ms + health_check_period_ms) -- 65 s with Ray's defaults; keep enough "
           "replicas elsewhere to carry the load meanwhile",
           ("health_check_period_ms", "health_check_timeout_ms", "health_check_failure_threshold"),
           "worker_node_failure", "Ray declared the silent node dead after 62-65 s; recovered in ~76-78 s",
           "Ray GCS node health checks (src/ray/common/ray_config_def.h)"),
    Remedy("redis_ha", "use a highly available Redis for GCS fault tolerance", ("gcs_ft",), "gcs_store_lost",
           "with Redis down 10 s, Ray's GCS exited after ~4 s and the head restarted; the workers served 100 %; "
           "recovered ~26 s after Redis returned", f"{GUIDE}, \"Step 1: Add external Redis server\""),
    Remedy("stale_proxies", "nothing in your config fixes it in Ray 2.60: after a Serve controller is replaced, "
           "proxies keep their subscription to the dead one (ray-project/ray#63784) -- restart the proxies (roll "
           "the Ray pods) after a controller replacement", (), "controller_failure",
           "after the follow-up replica kill every request timed out until the heal killed the proxies and the "
           "controller; back in ~12 s", "ray-project/ray#63784"),
    Remedy("head_proxy_early", "with Serve's Python proxies a restarted head's proxy passes `/-/healthz` ~14 s "
           "before it can route (ray-project/ray#46938): retry timed-out requests at the client, or run Serve's "
           "HAProxy ingress (`RAY_SERVE_ENABLE_HA_PROXY=1`, Ray >= 2.55; `--ingress haproxy` tries it), whose "
           "restarted head took no request it could not route", (), "head_failure_gcs_ft",
           "workers served 100 % while the head was away; requests the restarted head's proxy accepted hung; "
           "head_failure_haproxy: the front door kept 100 % in 2 runs of 2",
           "ray-project/ray#46938, #62213, #62751"),
    Remedy("reconfigure", "keep `reconfigure()` quick and idempotent: Serve calls it on every running replica "
           "for a `user_config` change, and a replica that raises there is replaced", ("user_config",),
           "inplace_update", "max_ongoing_requests 5 -> 6 reached all 6 SleepyPid replicas in place in 1.5-1.6 s "
           "with 0 failed requests and no replica replaced",
           "Serve docs \"Updating Applications In-Place\" (lightweight config updates)"),
    Remedy("surge", "set `max_surge_percent` (Ray 2.60) so old replicas serve until their replacements run, or "
           "keep enough headroom for a rollout batch (`rolling_update_percentage`, default 20 %) to be missing",
           ("max_surge_percent", "rolling_update_percentage", "num_replicas"), "rolling_update_composed",
           "with max_surge_percent 0 a rollout takes one batch of every deployment out at once: the composed "
           "example at 45 req/s on 2 cores timed out 21 % of requests while rolled (p50 2-8 s); at 24 req/s "
           "0 failed",
           "Serve DeploymentConfig rolling_update_percentage and max_surge_percent (serve/_private/config.py)"),
    Remedy("graceful_drain", "set `graceful_shutdown_timeout_s` above your slowest request and keep "
           "`graceful_shutdown_wait_loop_s` short: a stopping replica leaves the routers, then finishes what it "
           "holds", ("graceful_shutdown_timeout_s", "graceful_shutdown_wait_loop_s"), "scale_down",
           "6 -> 2 SleepyPid replicas with half the requests doing 250 ms of work: 0 failed, the 4 stopping "
           "replicas gone after 2.6-3.3 s; a rolling update of 6 replicas: 0 failed in 89-98 s",
           "Serve deployment options graceful_shutdown_wait_loop_s / graceful_shutdown_timeout_s"),
    Remedy("drain_room", "leave room for a drained node's replicas elsewhere (`max_replicas_per_node` x the "
           "other nodes >= `num_replicas`) and give preemption notice longer than a replica start plus "
           "`graceful_shutdown_timeout_s`", ("num_replicas", "max_replicas_per_node", "graceful_shutdown_timeout_s"),
           "node_drain", "with room (3 per node) and a 45 s notice the replacements served 12-17 s after the drain, "
           "the drained replicas were gone at 18-25 s, 0 requests failed; with every other node full "
           "(2 per node) the drained node's replicas were not replaced (ray-facts.md)",
           "Serve safe draining (ray-project/ray#43228, deployment_state.py migrate_replicas_on_draining_nodes)"),
    Remedy("readiness", "keep the front door's readiness check tight (KubeRay: period 5 s, 1 failure) and give "
           "clients a timeout and a retry: a pod that still answers its health check stays in rotation however "
           "slow it is", ("request_timeout_s",), "cpu_starvation",
           "a pod held to 5 % of a core failed front-door requests for 7.6 s until its readiness check dropped "
           "it; at 20 % / 50 % packet loss the pod stayed in rotation and the front door answered 97.7 % / 84 %",
           "Kubernetes readiness probes; KubeRay's serve readiness probe (common/pod.go)"),
    Remedy("memory_headroom", "size the pod's memory limit above its peak, and expect Ray's memory monitor "
           "(RAY_memory_usage_threshold 0.95) to kill replicas -- and the node's Serve proxy -- first",
           (), "memory_pressure",
           "a hog growing to a worker's 2 GiB limit: the memory monitor killed both replicas and the ProxyActor "
           "on the pod at 95 %, the kernel then killed the hog, the raylet survived; the pod's own proxy "
           "refused connections until Serve replaced it",
           "Ray docs \"Out-Of-Memory Prevention\""),
    Remedy("slow_replica", "Serve's router compares requests in flight, not latency: lower "
           "`max_ongoing_requests` so a slow replica's queue fills and it is avoided, and time requests out",
           ("max_ongoing_requests",), "replica_slow",
           "a replica stalled 0.9 s of every 1 s got 7.7 % of the traffic (fair 16.7 %); one stalled 90 ms of "
           "every 100 ms kept 15.6 % (z = -1.0): its queue never grew",
           "Serve request router (power of two choices, request_router/pow_2_router.py)"),
    Remedy("bad_version", "gate a rollout (a canary or a staging deploy) and watch for DEPLOY_FAILED: Serve "
           "stops a version whose replicas fail to start `min(max_constructor_retry_count (20), 3 x num_replicas)` times, keeps the old replicas "
           "it still runs (one batch short) until the next deploy, and redeploying the last good config brings the "
           "rest back", ("num_replicas", "rolling_update_percentage"), "bad_rollout_constructor",
           "a constructor that raised: DEPLOY_FAILED after 20 s with 3 replicas (45 s with 6), all but one batch "
           "of old replicas served, 0 failed; every replica RUNNING 5.3 s after the good config",
           "Ray 2.60 serve/_private/constants.py RAY_SERVE_STOP_FAILED_ROLLING_UPDATES, deployment_state.py"),
    Remedy("controller_restart", "let Ray restart the Serve controller (it is detached with `max_restarts=-1`; "
           "never `ray.kill(..., no_restart=True)` it): a restarted controller keeps its actor and resumes from its "
           "checkpoint, where a new actor leaves the proxies subscribed to the old one", (),
           "controller_restart_during_rollout", "killed 15 s into a rolling update and restarted by Ray in 4 s: "
           "the rollout resumed, 0 failed, 6 new replicas; at rest the proxies followed the restarted controller",
           "Ray 2.60 serve/_private/default_impl.py get_controller_impl; ray-project/ray#63784"),
    Remedy("poison_request", "make one request unable to kill its replica (validate input, catch errors in the "
           "model, bound memory per request) and do not retry a request whose replica died: each retry takes "
           "another replica with it", ("max_ongoing_requests",), "query_of_death",
           "each poison request killed exactly one replica (2 of 2, the client saw HTTP 500 in ~40 ms), 2 other "
           "requests in flight failed, the replicas were replaced in 22.9 s",
           "Ray 2.60 serve/_private/router.py _handle_actor_died_error"),
    Remedy("crash_loop", "make a replica's start independent of what can be down (load the model from a "
           "replica-local cache, retry the config service inside the constructor with a deadline) and alert on a "
           "deployment UNHEALTHY with \"A replica failed to start\": once a version has run, Serve retries a "
           "failing start for ever, with no backoff, one replica short meanwhile", ("num_replicas",), "crash_loop",
           "6 starts refused in 25 s (Serve retried every ~4 s), UNHEALTHY from 10 s after the kill, never "
           "DEPLOY_FAILED, 0 failed; the replica count back 9.1 s after the cause went away",
           "Ray 2.60 serve/_private/deployment_state.py _failed_to_start_threshold, record_replica_startup_failure"),
    Remedy("health_timeout_room", "keep `health_check_timeout_s` x 3 above your network's longest blip (a "
           "timed-out check counts, 3 in a row replace a live replica), and know that on Ray 2.60 a *refused* "
           "connection replaces it at once (ray-project/ray#65985): keep firewalls and sidecars from rejecting "
           "Ray's ports while pods run, and restart a node's proxy after such a blip (it may keep a stale "
           "replica set)", ("health_check_timeout_s",), "health_check_reject",
           "4 s of TCP resets on a worker pod: both its replicas replaced within 2 s (3 runs of 3), and that "
           "pod's proxy then never routed to their replacements; silent drops of 15 s (`network_partition`) "
           "replaced nothing; with a 2 s timeout a 4 s blip replaced both after 3 timed-out checks",
           "Ray 2.60 serve/_private/deployment_state.py _check_active_health_check; ray-project/ray#65985"),
    Remedy("drain_first", "drain a node before its pod goes (`ray drain-node --reason DRAIN_NODE_REASON_PREEMPTION "
           "--deadline-remaining-seconds N`, as KubeRay's autoscaler does on scale-down): a plain pod delete runs the "
           "preStop `ray stop`, which ends the pod's replicas and proxy with their requests in flight; a drain "
           "moves the replicas first", (), "pod_delete_long_requests",
           "2 s requests on every endpoint: 5 of the 16 in flight failed (those through the deleted pod's proxy), "
           "none of the 160 sent after the delete; `node_drain` lost none",
           "Ray 2.60 serve/_private/deployment_state.py migrate_replicas_on_draining_nodes; ray-project/ray#43228"),
    Remedy("autoscale_lag", "budget a load step's first seconds: the autoscaler decides within the look-back "
           "and `upscale_delay_s`, but the new replicas start one after another, each a replica start; keep "
           "`min_replicas` at the load you must absorb at once, shorten `look_back_period_s` / `upscale_delay_s`, "
           "and make the constructor fast", ("autoscaling_config", "replica_start_s"), "autoscaling_step",
           "2 -> 18-20 requests/s (0.5 s each): the target decided 5.6-5.8 s after the step, 5 replicas RUNNING "
           "after 12-19 s, back to 2 15-17 s after the step ended; the target kept across an in-place update; "
           "0 failed",
           "Ray 2.60 serve/_private/autoscaling_state.py, serve/config.py AutoscalingConfig"),
    Remedy("upgrade_room", "leave room for a second Ray cluster during a RayService upgrade (KubeRay brings the "
           "new cluster up beside the old one and switches the Serve Service once its Serve is ready), and keep "
           "the old one's deletion delay above your clients' longest request",
           (), "rayservice_upgrade", "on the k8s target (real KubeRay v1.6.2): 0 failed requests; the new cluster "
           "served 46 s after the change, the old one's delete came 61 s after the switch and it was gone 36 s "
           "later (its Redis cleanup Job); 146-155 s in all",
           "KubeRay rayservice_controller.go (zero-downtime upgrade, RayClusterDeletionDelayDuration 60 s)"),
)}

def _deployments(verdict: dict[str, Any]) -> list[DeploymentSettings] | None:
    app = verdict.get("app_config")
    if not app:
        return None
    return [DeploymentSettings.from_dict(d) for d in app.get("deployments") or []]


def _single_replica(verdict: dict[str, Any]) -> bool:
    """A deployment may run a single replica (True when the config is not known)."""
    deployments = _deployments(verdict)
    return deployments is None or any(d.min_replicas < 2 for d in deployments)


def _spread_risk(verdict: dict[str, Any]) -> bool:
    """A deployment's replicas may all share a node: no hard spread below its replica count
    (True when the config is not known)."""
    deployments = _deployments(verdict)
    return deployments is None or any(
        d.min_replicas >= 2 and (d.max_replicas_per_node is None or d.max_replicas_per_node >= d.min_replicas)
        for d in deployments)


def _composed(verdict: dict[str, Any]) -> bool:
    """The app calls deployments through handles (an application with several deployments)."""
    return bool((verdict.get("app_config") or {}).get("composed"))


#: When a row applies, beyond its scenario and check (``verdict -> bool``).
CONDITIONS = {"always": lambda verdict: True, "single_replica": _single_replica, "composed": _composed,
              "spread_risk": _spread_risk}

#: (scenario pattern, check metric pattern, condition) -> remedies.  For each failed check
#: the first matching row gives its remedies (fnmatch patterns), most specific first.
MATCHES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("head_failure_no_gcs_ft", "*", "always", ("gcs_ft",)),
    ("head_failure_gcs_ft", "*", "always", ("head_proxy_early",)),
    ("head_failure_gcs_rocksdb", "*", "always", ("head_proxy_early",)),
    ("head_failure_haproxy", "*", "always", ("client_retry",)),
    ("ingress_crash", "*", "always", ("client_retry",)),
    ("controller_failure", "*", "always", ("stale_proxies",)),
    ("proxy_failure", "*", "always", ("client_retry",)),
    ("network_partition", "front_door_drop_s", "always", ("client_retry",)),
    ("network_partition", "*", "composed", ("handle_timeout",)),
    ("network_partition", "*", "always", ("client_retry",)),
    ("gcs_store_lost", "*", "composed", ("handle_timeout", "redis_ha")),
    ("gcs_store_lost", "*", "always", ("redis_ha",)),
    ("worker_node_failure", "recovery_s", "spread_risk", ("node_detection", "spread")),
    ("worker_node_failure", "recovery_s", "always", ("node_detection",)),
    ("worker_node_failure", "fault_effect_s", "always", ("node_detection",)),
    ("worker_*_failure", "*", "composed", ("handle_timeout", "spread")),
    ("worker_*_failure", "*", "spread_risk", ("spread",)),
    ("worker_*_failure", "*", "always", ("client_retry",)),
    ("strict_spreading", "*", "always", ("spread",)),
    ("health_check_reject", "*", "always", ("health_timeout_room", "readiness")),
    ("health_check_*", "*", "always", ("health_check",)),
    ("replica_hang", "*", "always", ("health_check", "graceful_shutdown")),
    ("downstream_*", "*", "always", ("handle_timeout",)),
    ("chained_*", "*", "always", ("handle_timeout", "client_retry")),
    ("replica_failure", "recovery_s", "always", ("replica_start",)),
    ("replica_failure", "*", "single_replica", ("spare_replicas",)),
    ("replica_failure", "*", "always", ("client_retry",)),
    ("inplace_update", "*", "always", ("reconfigure",)),
    ("rolling_update*", "*", "composed", ("surge", "graceful_drain", "handle_timeout")),
    ("rolling_update*", "*", "always", ("surge", "graceful_drain")),
    ("scale_down", "*", "always", ("graceful_drain",)),
    ("node_drain*", "*", "always", ("drain_room",)),
    ("pod_delete_long_requests", "*", "always", ("drain_first", "client_retry")),
    ("cpu_starvation", "*", "always", ("readiness", "client_retry")),
    ("packet_loss_*", "*", "composed", ("readiness", "handle_timeout")),
    ("packet_loss_*", "*", "always", ("readiness", "client_retry")),
    ("network_latency", "*", "always", ("readiness", "handle_timeout")),
    ("memory_pressure", "*", "always", ("memory_headroom",)),
    ("replica_slow", "*", "always", ("slow_replica",)),
    ("rayservice_upgrade", "*", "always", ("upgrade_room",)),
    ("bad_rollout_*", "*", "always", ("bad_version",)),
    ("controller_restart*", "*", "always", ("controller_restart",)),
    ("query_of_death", "*", "always", ("poison_request",)),
    ("crash_loop", "*", "always", ("crash_loop", "spare_replicas")),
    ("autoscaling_*", "*", "always", ("autoscale_lag",)),
    # GCS FT is on in these scenarios (the crash is survivable only so): turning it on is no advice.
    ("gcs_crash*", "*", "always", ("client_retry",)),
    ("node_loss_during_rollout", "*", "always", ("client_retry", "node_detection")),
    ("replica_kill_during_drain", "*", "always", ("drain_room", "client_retry")),
    ("health_fail_during_inplace", "*", "always", ("health_check", "reconfigure")),
    ("*", "recovery_s", "always", ("replica_start",)),
)


def remedies_for(verdict: dict[str, Any], metric: str) -> list[Remedy]:
    """The remedies of one failed check of ``verdict`` (none when the table has no row for it)."""
    scenario = str(verdict.get("scenario", ""))
    for pattern, metric_pattern, condition, remedies in MATCHES:
        if fnmatch.fnmatchcase(scenario, pattern) and fnmatch.fnmatchcase(metric, metric_pattern) \
                and CONDITIONS[condition](verdict):
            return [REMEDIES[k] for k in remedies]
    return []


# ---------------------------------------------------------------------- the user's config
def config_text(remedy: Remedy, verdict: dict[str, Any]) -> str:
    """The user's current value of each setting the remedy is about."""
    settings = verdict.get("settings") or {}
    app = verdict.get("app_config") or {}
    deployments = _deployments(verdict) or []
    parts: list[str] = []
    per_deployment = [k for k in remedy.settings if k in ("num_replicas", "max_replicas_per_node", "num_cpus")]
    if per_deployment and deployments:
        parts += [f"{d.ref} " + " ".join(d.shown(k) for k in per_deployment) for d in deployments]
    for key in remedy.settings:
        if key in per_deployment:
            continue
        if key == "request_timeout_s":
            value = app.get("request_timeout_s") if app else None
            parts.append(f"http_options.request_timeout_s={value}" if value is not None
                         else "http_options.request_timeout_s unset (no timeout)")
        elif key in settings:
            parts.append(f"{key}={settings[key]}")
    where = app.get("source") if app else None
    return ("; ".join(parts) + (f" (in {where})" if where and parts else "")) if parts else ""


# ---------------------------------------------------------------------- advice per verdict
@dataclass(frozen=True)
class Advice:
    """One remedy for one run: what to change, the user's setting, and the evidence."""

    remedy: Remedy
    checks: tuple[str, ...]
    measured: str
    config: str

    def line(self) -> str:
        text = self.remedy.change
        if self.config:
            text += f". Yours: {self.config}"
        text += f". Measured in this run: {self.measured}"
        if self.remedy.measured:
            text += f". Measured before ({self.remedy.scenario}): {self.remedy.measured}"
        return text + f" [source: {self.remedy.source}]"


def measured(verdict: dict[str, Any], check: dict[str, Any]) -> str:
    """A failed check's figure against its bound, and the behaviour behind it."""
    line, seen = value_line(check), symptom(verdict, check)
    return line if seen == line else f"{line} -- {seen}"


def advice(verdict: dict[str, Any]) -> list[Advice]:
    """What would help a broken, deviating or unknown run, one Advice per remedy, in the
    order of the checks that call for it; nothing for a kept or skipped one."""
    classified = classify(verdict)
    if classified.outcome not in (BROKEN, KNOWN, UNKNOWN):
        return []
    metrics = verdict.get("metrics") or {}
    followups = set((metrics.get("followups") or {}).keys())
    endpoints = set((metrics.get("endpoints") or {}).keys())
    checks = {c["name"]: c for c in verdict.get("checks") or []}
    found: dict[str, list[str]] = {}
    evidence: dict[str, str] = {}
    for name in [*classified.unexpected, *classified.known]:
        check = checks.get(name)
        if check is None:
            continue
        metric = parse_check(name, followups, endpoints).metric
        for remedy in remedies_for(verdict, metric):
            found.setdefault(remedy.key, []).append(name)
            evidence.setdefault(remedy.key, measured(verdict, check))
    return [Advice(REMEDIES[key], tuple(names), evidence[key], config_text(REMEDIES[key], verdict))
            for key, names in found.items()]
