"""What would help: one table of remedies, keyed by scenario and check, with their evidence.

Each remedy is what the Serve fault-tolerance guide (or, where the guide stops
at "the pod is killed", our own measurements) says to change, which setting of
the user's own config it is about, the scenario that demonstrates it, and a
figure we measured (README, Ray 2.60, the 2-core CI machine).  ``advice`` turns
a broken or deviating verdict into lines naming the remedy, the user's current
setting and the figure this run measured; ``harness.advise`` uses the same
remedies to read a config before anything runs.  Pure functions of verdict dicts.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from harness.appsettings import DeploymentSettings
from harness.symptoms import parse_check, symptom, value_line
from harness.verdicts import BROKEN, KNOWN, UNKNOWN, classify

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
    Remedy("head_proxy_early", "nothing in your config fixes it in Ray 2.60: a restarted head's proxy passes "
           "`/-/healthz` ~14 s before it can route (ray-project/ray#46938) -- retry timed-out requests at the "
           "client", (), "head_failure_gcs_ft",
           "workers served 100 % while the head was away; requests the restarted head's proxy accepted hung",
           "ray-project/ray#46938, #62213, #62751"),
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
    ("health_check_*", "*", "always", ("health_check",)),
    ("replica_hang", "*", "always", ("health_check", "graceful_shutdown")),
    ("downstream_*", "*", "always", ("handle_timeout",)),
    ("replica_failure", "recovery_s", "always", ("replica_start",)),
    ("replica_failure", "*", "single_replica", ("spare_replicas",)),
    ("replica_failure", "*", "always", ("client_retry",)),
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
