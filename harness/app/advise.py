"""``serve-chaos advise``: a Serve config read against the fault-tolerance guide before anything runs.

Each finding is one line: what in the config (or the target) leaves a promise
open, what to set, why -- the figure we measured where the guide stops at "the
pod is killed" -- and the scenario that demonstrates it.  Pure functions of the
Serve config, the target's shape, the app's code (read, never imported) and,
when given, the latency earlier runs measured.  Severity: ``severe`` (one
fault is an outage of the app), ``warn`` (a fault costs more than it must),
``info`` (what could not be checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serve_chaos.harness.app.settings import DeploymentSettings, deployment_settings, request_timeout_s
from serve_chaos.harness.bounds import unhealthy_kill_bound_s
from serve_chaos.harness.app.handlecalls import BLIND_SPOTS, modules_of, scan
from serve_chaos.harness.report.remedies import REMEDIES, Remedy

SEVERE, WARN, INFO = "severe", "warn", "info"
SEVERITIES = (SEVERE, WARN, INFO)
#: An unhealthy replica stopped later than this (s) after its check starts failing is a
#: finding: stated, not from the guide (a minute of a broken replica in the rotation).
UNHEALTHY_LIMIT_S = 60.0
#: graceful_shutdown_timeout_s above this many times the p99 latency, and above 10 s, only
#: delays the replacement of a frozen replica (stated, not from the guide).
GRACEFUL_SLACK = 20.0


@dataclass(frozen=True)
class TargetShape:
    """The cluster the app would run on: whether GCS FT is on, and the logical CPUs Ray can
    give replicas on each node (``(node, cpus)``, the head first)."""

    target: str
    gcs_ft: bool
    nodes: tuple[tuple[str, float], ...]

    def describe(self) -> str:
        cpus = sorted({c for _, c in self.nodes})
        each = f"{cpus[0]:g} CPU each" if len(cpus) == 1 else "CPUs " + "/".join(f"{c:g}" for _, c in self.nodes)
        return f"{self.target} target, GCS FT {'on' if self.gcs_ft else 'off'}, {len(self.nodes)} nodes ({each})"


@dataclass(frozen=True)
class Finding:
    """One line of advice.  ``where``: ``cluster``, ``app/deployment``, an app, or ``file:line``."""

    severity: str
    where: str
    what: str
    remedy: Remedy | None = None
    because: str = ""
    scenario: str = ""

    def line(self) -> str:
        text = f"{self.severity:<6} {self.where}: {self.what}"
        if self.remedy is not None:
            text += f"; {self.remedy.change}"
        if self.because:
            text += f", because we measured: {self.because}"
        if self.scenario:
            text += f" (shown by `serve-chaos run {self.scenario}`)"
        return text


def _finding(severity: str, where: str, what: str, remedy_key: str | None, because: str | None = None,
             scenario: str | None = None) -> Finding:
    remedy = REMEDIES[remedy_key] if remedy_key else None
    return Finding(severity, where, what, remedy,
                   because if because is not None else (remedy.measured if remedy else ""),
                   scenario if scenario is not None else (remedy.scenario if remedy else ""))


# ---------------------------------------------------------------------- the cluster
def gcs_findings(shape: TargetShape) -> list[Finding]:
    if shape.gcs_ft:
        return []
    return [_finding(SEVERE, "cluster", f"GCS fault tolerance is off on the {shape.target} target: losing the head "
                     "restarts the whole cluster and replaces every replica", "gcs_ft")]


# ---------------------------------------------------------------------- replicas and placement
def replica_findings(deployments: list[DeploymentSettings]) -> list[Finding]:
    out = []
    for dep in deployments:
        if dep.min_replicas == 0:
            out.append(_finding(WARN, dep.ref, "autoscaling may scale it to zero replicas: the first request after "
                                "that waits for a replica to start, and a lone replica's failure is an outage",
                                "spare_replicas"))
        elif dep.min_replicas == 1:
            how = "autoscaling_config.min_replicas is 1" if dep.autoscaling else dep.shown("num_replicas")
            out.append(_finding(SEVERE, dep.ref, f"it may run a single replica ({how}): losing it is an outage "
                                "until its replacement starts", "spare_replicas"))
        if dep.autoscaling and dep.initial_replicas is not None:
            out.append(_finding(INFO, dep.ref, f"autoscaling_config.initial_replicas={dep.initial_replicas}: every "
                                "redeploy that changes this deployment's config resets its target to that many, "
                                "whatever the load at the time (Ray 2.60 autoscaling_state.py register; by design "
                                "since ray-project/ray#30464; read in the source, not measured: autoscaling_redeploy "
                                "measured the unset case, where the target kept) -- leave it unset to keep the "
                                "autoscaled count", None, because="", scenario=""))
    return out


def per_node_capacity(dep: DeploymentSettings, cpus: float) -> float:
    """How many of ``dep``'s replicas one node with ``cpus`` logical CPUs can hold (inf: any)."""
    by_cpu = float("inf") if dep.num_cpus <= 0 else float(int(cpus // dep.num_cpus))
    return min(by_cpu, float(dep.max_replicas_per_node or float("inf")))


def placement_findings(deployments: list[DeploymentSettings], shape: TargetShape) -> list[Finding]:
    """Replicas that can all land on one node, and replicas that cannot be placed at all.

    Only CPUs and ``max_replicas_per_node`` are counted (not memory, GPUs or custom
    resources), on the target's nodes as they are (no autoscaler adding nodes)."""
    out = []
    for dep in deployments:
        if dep.max_replicas <= 1:
            continue
        capacities = [per_node_capacity(dep, cpus) for _, cpus in shape.nodes]
        room = sum(capacities)
        if room < dep.min_replicas:
            out.append(_finding(SEVERE, dep.ref, f"{dep.min_replicas} replicas do not fit on the {len(shape.nodes)} "
                                f"nodes of the {shape.target} target (room for {room:g}: {dep.shown('num_cpus')}, "
                                f"{dep.shown('max_replicas_per_node')}); Serve leaves the rest pending",
                                "spread", scenario="strict_spreading"))
        elif max(capacities) >= dep.min_replicas:
            why = (f"{dep.shown('max_replicas_per_node')} and num_cpus={dep.num_cpus:g}, so one node can hold "
                   f"{'any number' if max(capacities) == float('inf') else f'{max(capacities):g}'}")
            out.append(_finding(WARN, dep.ref, f"all {dep.min_replicas} replicas may land on one node ({why}): "
                                "that node's loss takes every replica", "spread"))
    return out


def drain_findings(deployments: list[DeploymentSettings], shape: TargetShape) -> list[Finding]:
    """Replicas a drained worker node cannot hand over: Serve starts a draining node's
    replacements elsewhere and stops the drained ones once they run, or at the deadline minus
    ``graceful_shutdown_timeout_s`` (Ray 2.60 ``migrate_replicas_on_draining_nodes``) -- with no
    room on the other nodes, capacity drops before the node goes.  Counted as
    ``placement_findings`` counts (CPUs and ``max_replicas_per_node``), for the worker node whose
    loss leaves the least room; replicas that do not fit at all are ``placement_findings``'."""
    if len(shape.nodes) < 2:
        return []  # a head alone: no worker to drain
    out = []
    for dep in deployments:
        capacities = [per_node_capacity(dep, cpus) for _, cpus in shape.nodes]
        room = sum(capacities)
        left = room - max(capacities[1:])  # the head comes first
        if left < dep.min_replicas <= room:
            out.append(_finding(WARN, dep.ref, f"a drained worker node's replicas have nowhere to go: without it the "
                                f"other nodes hold {left:g} of {dep.min_replicas} ({dep.shown('max_replicas_per_node')}, "
                                f"num_cpus={dep.num_cpus:g}), so Serve stops them at the drain's deadline before "
                                "replacements run", "drain_room"))
    return out


def rollout_findings(deployments: list[DeploymentSettings]) -> list[Finding]:
    """Deployments a rolling update (or a bad version, which stops there) leaves a third or more
    short: with ``max_surge_percent`` 0 Serve stops a batch of ``max(int(rolling_update_percentage
    x target), 1)`` old replicas before their replacements start (Ray 2.60 ``deployment_state.py``
    ``_stop_or_update_outdated_version_replicas``), and a version that cannot start keeps it so
    until the next deploy (``RAY_SERVE_STOP_FAILED_ROLLING_UPDATES``).  One replica is
    ``replica_findings``'."""
    out = []
    for dep in deployments:
        target = dep.min_replicas
        if target < 2 or dep.max_surge_percent > 0:
            continue
        batch = max(int(dep.rolling_update_percentage * target), 1)
        if batch * 3 >= target:
            out.append(_finding(WARN, dep.ref, f"a rolling update stops {batch} of its {target} replicas before "
                                f"their replacements start (rolling_update_percentage={dep.rolling_update_percentage:g}, "
                                f"max_surge_percent unset: 0), so {target - batch} of {target} serve meanwhile -- "
                                "and until the next deploy when the new version cannot start", "surge"))
    return out


# ---------------------------------------------------------------------- health checks and shutdown
def health_findings(deployments: list[DeploymentSettings]) -> list[Finding]:
    out = []
    for dep in deployments:
        settings = {"health_check_period_s": dep.health_check_period_s,
                    "health_check_timeout_s": dep.health_check_timeout_s,
                    "graceful_shutdown_timeout_s": dep.graceful_shutdown_timeout_s}
        raising, hanging = unhealthy_kill_bound_s(settings, "raise"), unhealthy_kill_bound_s(settings, "hang")
        if hanging <= UNHEALTHY_LIMIT_S:
            continue
        what = (f"with {dep.shown('health_check_period_s')}, {dep.shown('health_check_timeout_s')} and "
                f"{dep.shown('graceful_shutdown_timeout_s')}, an unhealthy replica is stopped up to {raising:.0f} s "
                f"after its check starts failing, {hanging:.0f} s when the check (or the replica) hangs")
        out.append(_finding(WARN, dep.ref, what, "health_check"))
    return out


def graceful_findings(deployments: list[DeploymentSettings], p99_ms: float | None, runs: int) -> list[Finding]:
    if p99_ms is None:
        if any(d.max_replicas > 0 for d in deployments):
            return [Finding(INFO, "app", "request latency is not known, so graceful_shutdown_timeout_s was not "
                            "compared with it (pass --runs with earlier run directories)")]
        return []
    out = []
    for dep in deployments:
        grace = dep.graceful_shutdown_timeout_s
        if grace * 1000.0 < p99_ms:
            out.append(_finding(WARN, dep.ref, f"{dep.shown('graceful_shutdown_timeout_s')} is shorter than the p99 "
                                f"latency {p99_ms:.0f} ms of {runs} earlier run(s): requests in flight are cut when a "
                                "replica stops (scale-down, update, drain)", "graceful_shutdown", because=""))
        elif grace > 10.0 and grace * 1000.0 > GRACEFUL_SLACK * p99_ms:
            out.append(_finding(INFO, dep.ref, f"{dep.shown('graceful_shutdown_timeout_s')} is far above the p99 "
                                f"latency {p99_ms:.0f} ms of {runs} earlier run(s): a frozen replica cannot use it, "
                                "it only delays its replacement", "graceful_shutdown"))
    return out


# ---------------------------------------------------------------------- composed apps
def handle_findings(serve_config: dict[str, Any], files: dict[str, str], code_source: str) -> list[Finding]:
    """Handle calls without a timeout in the code each application's import path loads.

    ``code_source`` says where the code is (``--app-dir src``, ``an image``); with no
    files, every application with several deployments gets an info line instead."""
    out: list[Finding] = []
    timeout = request_timeout_s(serve_config)
    for app in serve_config.get("applications") or []:
        name = str(app.get("name", "default"))
        composed = len(app.get("deployments") or []) > 1
        modules = modules_of(str(app.get("import_path", "")), files) if files else []
        if not modules:
            if composed:
                out.append(Finding(INFO, name, f"its code is not readable here ({code_source}), so its handle calls "
                                   "were not checked for timeouts"))
            continue
        found = scan({path: files[path] for path in modules})
        out += [Finding(INFO, path, "not Python this interpreter can parse; not checked") for path in found.unreadable]
        for call in found.without_timeout:
            bounded = (f"; only http_options.request_timeout_s={timeout:g} bounds it end to end" if timeout is not None
                       else "; http_options.request_timeout_s is unset too")
            assumed = " (an unannotated constructor argument, taken for a DeploymentHandle)" if call.assumed else ""
            out.append(_finding(WARN, f"{name} {call.where}", f"handle call `{call.code}` in {call.cls} has no "
                                f"timeout{assumed}{bounded}", "handle_timeout"))
        if found.calls:
            out.append(Finding(INFO, name, f"read {len(found.calls)} handle call(s) in {', '.join(modules)}; not "
                               f"seen: {', '.join(BLIND_SPOTS)}"))
    return out


# ---------------------------------------------------------------------- all of it
def advise(serve_config: dict[str, Any], shape: TargetShape, files: dict[str, str], code_source: str,
           p99_ms: float | None = None, runs: int = 0) -> list[Finding]:
    """Every finding, severe first, in the order the guide's sections come."""
    deployments = deployment_settings(serve_config)
    findings = (gcs_findings(shape) + replica_findings(deployments) + placement_findings(deployments, shape)
                + drain_findings(deployments, shape) + rollout_findings(deployments)
                + health_findings(deployments) + handle_findings(serve_config, files, code_source)
                + graceful_findings(deployments, p99_ms, runs))
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


def tally(findings: list[Finding]) -> str:
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    return f"{len(findings)} finding(s): " + ", ".join(f"{n} {s}" for s, n in counts.items())


def measured_p99_ms(verdicts: list[dict[str, Any]]) -> float | None:
    """The highest p99 latency (ms) of successful requests through the primary endpoint of
    the runs that reached their fault (skipped and killed runs have none)."""
    from serve_chaos.harness.report.verdicts import primary_endpoint

    values = []
    for verdict in verdicts:
        endpoint = ((verdict.get("metrics") or {}).get("endpoints") or {}).get(primary_endpoint(verdict)) or {}
        p99 = (endpoint.get("latency") or {}).get("p99_ms")
        if p99 is not None:
            values.append(float(p99))
    return max(values) if values else None
