"""Run artifacts: the verdict JSON next to the raw history, under ``reports/<run-id>/``."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.checks import Evaluation
from harness.deviations import in_play, ranges
from harness.faults import FaultPlan
from harness.history import FAULTS_FILE, REQUESTS_FILE, History

VERDICT_FILE = "verdict.json"
SCENARIO_FILE = "scenario.json"


def ray_version() -> str:
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_revision(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=cwd or Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def verdict(
    *,
    scenario: Any,
    run_id: str,
    status: str,
    seed: int,
    settings: dict[str, Any],
    started: float,
    finished: float,
    evaluation: Evaluation | None,
    history: History,
    plans: list[FaultPlan],
    t_gate: float | None,
    error: str,
    cluster_healthy: bool,
    t_recovered_live: list[float | None],
    target: str,
) -> dict[str, Any]:
    """Everything a reader needs to judge the run without the raw files."""
    metrics = evaluation.metrics if evaluation else {}
    checks = [c.to_dict() for c in evaluation.checks] if evaluation else []
    violations = [f"{c.line()} [{c.status}]" for c in evaluation.violations()] if evaluation else []
    return {
        "run_id": run_id,
        "scenario": scenario.name,
        "title": scenario.title,
        "promise": scenario.promise,
        "status": status,
        "error": error,
        "target": target,
        "seed": seed,
        "git_revision": git_revision(),
        "ray_version": settings.get("ray_version", ray_version()),
        "started_at": started,
        "finished_at": finished,
        "wall_s": round(finished - started, 2),
        "t_gate": t_gate,
        "ray_recovery_s": metrics.get("recovery_s"),
        "settings": settings,
        "plans": [{"fault": p.fault, "description": p.description, "victims": p.victims, "params": p.params}
                  for p in plans],
        "faults": [f.to_dict() for f in history.faults],
        "metrics": metrics,
        "checks": checks,
        "violations": violations,
        # The deviations in play for the Ray this run ran (harness/deviations.py), and every range.
        "known_broken": in_play(scenario.known_broken, settings.get("ray_version")),
        "known_intermittent": in_play(getattr(scenario, "known_intermittent", {}) or {}, settings.get("ray_version")),
        "known_ranges": ranges({**(getattr(scenario, "known_intermittent", {}) or {}), **scenario.known_broken}),
        "cluster_healthy_after": cluster_healthy,
        "t_recovered_live": t_recovered_live,
        "scenario_spec": scenario.describe(),
    }


def write_run(run_dir: Path, history: History, verdict_data: dict[str, Any]) -> None:
    history.save(run_dir)
    (run_dir / VERDICT_FILE).write_text(json.dumps(verdict_data, indent=2, default=str))


#: What every verdict.json holds; a file without them is not one.
VERDICT_FIELDS = ("run_id", "scenario", "status", "started_at")


def load_verdict(run_dir: Path) -> dict[str, Any]:
    """The run's verdict; a run killed before it wrote one gets a partial verdict from what it left.

    A verdict file that is not JSON, empty, not an object or short of the fields
    every verdict has is named in one ConfigError line."""
    from runtime.errors import ConfigError

    path = run_dir / VERDICT_FILE
    if not path.exists():
        return partial_verdict(run_dir)
    text = path.read_text(errors="replace")
    if not text.strip():
        raise ConfigError(f"{path} is empty", hint="the run was killed while writing it; remove it to render "
                                                   "the run as partial")
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{path} is not valid JSON ({err})",
                          hint="remove it to render the run as partial, or restore it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a verdict: a JSON object is expected, found {type(data).__name__}")
    missing = [f for f in VERDICT_FIELDS if f not in data]
    if missing:
        raise ConfigError(f"{path} is not a complete verdict: it lacks {', '.join(missing)}",
                          hint="remove it to render the run as partial, or restore it")
    return data


def partial_verdict(run_dir: Path) -> dict[str, Any]:
    """What a run killed before its verdict leaves: its requests, probes and faults, marked partial."""
    from harness.history import read_jsonl

    reqs = read_jsonl(run_dir / REQUESTS_FILE)
    started = min((r.get("t", 0.0) for r in reqs), default=run_dir.stat().st_mtime)
    name = run_dir.name.split("-", 1)[1].rsplit("-", 1)[0] if run_dir.name.count("-") >= 2 else run_dir.name
    try:
        faults = json.loads((run_dir / FAULTS_FILE).read_text())
    except (OSError, ValueError):
        faults = []
    return {"run_id": run_dir.name, "scenario": name, "status": "partial", "partial": True, "started_at": started,
            "error": f"the run stopped before writing {VERDICT_FILE} (killed?); shown with what it left: "
                     f"{len(reqs)} requests, {len(faults)} faults",
            "metrics": {}, "checks": [], "violations": [], "settings": {}, "faults": faults, "known_broken": {}}


# ---------------------------------------------------------------------- reading runs
def is_run_dir(path: Path) -> bool:
    """A run directory: it holds a verdict, or at least the requests of a run that was killed."""
    return path.is_dir() and ((path / VERDICT_FILE).is_file() or (path / REQUESTS_FILE).is_file())


def collect_runs(paths: list[Path]) -> list[Path]:
    """Run directories named directly or found one level below (e.g. ``reports/``), oldest first."""
    from runtime.errors import ConfigError

    if not paths:
        raise ConfigError("no run directory given", hint="pass reports/<run-id> or reports/")
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path} does not exist", hint="pass a run directory such as reports/<run-id>")
        if is_run_dir(path):
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p)) if path.is_dir() else []
        if not children:
            raise ConfigError(f"{path} is not a run directory (no {VERDICT_FILE} or {REQUESTS_FILE} in it or below it)",
                              hint="pass a directory written by `serve-chaos run` or pytest scenarios/")
        found.extend(children)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return sorted(unique, key=lambda p: load_verdict(p).get("started_at", 0))


# ---------------------------------------------------------------------- HTML
def _fmt(value: Any, spec: str = ".2f", unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec) + unit
    return f"{value}{unit}"


def _churn_text(churn: dict[str, Any] | None) -> str:
    if not churn:
        return "-"
    parts = [f"{role} -{len(c['left'])}+{len(c['appeared'])}" for role, c in churn.items() if c["left"] or c["appeared"]]
    return ", ".join(parts) or "none"


def _settings_text(settings: dict[str, Any]) -> str:
    keys = ("gcs_ft", "health_check_period_s", "health_check_timeout_s", "max_replicas_per_node",
            "gcs_rpc_server_reconnect_timeout_s_workers", "health_check_timeout_ms", "health_check_period_ms",
            "health_check_failure_threshold", "readiness_period_s", "node_replacement_delay_s", "ray_version")
    return ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)


def verdict_row(verdict: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one run (the verdict table's columns)."""
    metrics = verdict.get("metrics") or {}
    spec = verdict.get("scenario_spec") or {}
    primary = (metrics.get("endpoints") or {}).get((spec.get("slo") or {}).get("primary_endpoint", "front"), {})
    known = set(verdict.get("known_broken") or {})
    sometimes = set(verdict.get("known_intermittent") or {})
    failing = {c["name"] for c in verdict.get("checks", []) if c["status"] != "pass"}
    status = verdict["status"]
    # A known deviation counts only while every one of them still fails; an intermittent
    # one whenever it is what failed.
    if status == "fail" and failing and failing <= known | sometimes and known <= failing:
        status = "fail (known Ray deviation)"
    return {
        "scenario": verdict["scenario"],
        "status": status,
        "availability": primary.get("availability"),
        "longest_outage_s": primary.get("longest_outage_s"),
        "longest_degraded_s": primary.get("longest_degraded_s"),
        "recovery_s": metrics.get("recovery_s"),
        "churn": _churn_text(metrics.get("churn")),
        "settings": _settings_text(verdict.get("settings") or {}),
        "run_id": verdict["run_id"],
    }


def render_html(run_dirs: list[Path], store: Any | None = None, title: str = "serve-chaos resilience report") -> str:
    """A self-contained page: verdict table, one timeline per run, trends from the store."""
    import base64
    import html
    import time as _time

    from harness import plots
    from harness.trends import flag_regressions

    esc = html.escape
    verdicts = [load_verdict(d) for d in run_dirs]
    rows = [verdict_row(v) for v in verdicts]
    generated = _time.strftime("%Y-%m-%d %H:%M:%S UTC", _time.gmtime())
    css = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} .pass{background:#e6f4e6} .fail{background:#fbe3e3}
.unknown,.aborted,.interrupted,.skipped,.error{background:#fff3cd} .known{background:#fde9d3}
.reg{color:#b00;font-weight:bold} img{max-width:100%} .small{font-size:12px;color:#555}
h2{margin-top:36px;border-bottom:1px solid #ddd}
"""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
           f"<style>{css}</style></head><body>",
           f"<h1>{esc(title)}</h1>",
           f"<p class='small'>generated {generated}; {len(verdicts)} run(s); "
           f"Ray {esc(str(verdicts[0].get('ray_version', '?')) if verdicts else '?')}; "
           f"git {esc(str(verdicts[0].get('git_revision', '?')) if verdicts else '?')}</p>",
           "<h2>Verdicts</h2><table><tr><th>scenario</th><th>verdict</th><th>availability</th>"
           "<th>longest outage</th><th>longest degraded</th><th>recovery</th><th>churn</th>"
           "<th>Ray settings</th></tr>"]
    for row in rows:
        cls = "known" if "known" in row["status"] else row["status"].split()[0]
        out.append(
            f"<tr class='{esc(cls)}'><td><a href='#{esc(row['run_id'])}'>{esc(row['scenario'])}</a></td>"
            f"<td>{esc(row['status'])}</td><td>{_fmt(row['availability'], '.4f')}</td>"
            f"<td>{_fmt(row['longest_outage_s'], '.2f', ' s')}</td><td>{_fmt(row['longest_degraded_s'], '.1f', ' s')}</td>"
            f"<td>{_fmt(row['recovery_s'], '.1f', ' s')}</td>"
            f"<td>{esc(row['churn'])}</td><td class='small'>{esc(row['settings'])}</td></tr>")
    out.append("</table>")

    if store is not None:
        df = flag_regressions(store.frame())
        if not df.empty:
            out.append("<h2>Trends across runs</h2>")
            latest = df.groupby("scenario").tail(1)
            flagged = latest[latest["regression"]]
            if len(flagged):
                out.append("<p class='reg'>Regressions tonight: " + esc("; ".join(
                    f"{r.scenario}: {r.why}" for r in flagged.itertuples())) + "</p>")
            else:
                out.append("<p>No regression against the recent baseline.</p>")
            for scenario, points in df.groupby("scenario", sort=True):
                if len(points) < 2:
                    continue
                pts = points.copy()
                pts["label"] = [_time.strftime("%m-%d %H:%M", _time.gmtime(t)) for t in pts["started_at"]]
                png = plots.trend(pts.reset_index(drop=True), str(scenario))
                out.append(f"<img alt='trend {esc(str(scenario))}' src='data:image/png;base64,"
                           f"{base64.b64encode(png).decode()}'>")

    from harness.history import History

    for run_dir, verdict in zip(run_dirs, verdicts):
        metrics = verdict.get("metrics") or {}
        out.append(f"<h2 id='{esc(verdict['run_id'])}'>{esc(verdict['scenario'])}: {esc(verdict['status'])}</h2>")
        out.append(f"<p><b>{esc(verdict.get('title', ''))}</b><br>Promise: {esc(verdict.get('promise', ''))}</p>")
        plans = verdict.get("plans") or []
        out.append("<p class='small'>" + "<br>".join(esc(p["description"]) for p in plans) +
                   f"<br>seed {verdict.get('seed')}, run {esc(verdict['run_id'])}, wall {verdict.get('wall_s')} s"
                   + (f"<br><b>{esc(verdict['error'])}</b>" if verdict.get("error") else "") + "</p>")
        try:
            history = History.load(run_dir)
            png = plots.timeline(history, metrics, f"{verdict['scenario']} ({verdict['run_id']})")
            out.append(f"<img alt='timeline' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
        except (OSError, ValueError, KeyError) as err:
            out.append(f"<p class='small'>no timeline: {esc(str(err))}</p>")
        out.append("<table><tr><th>check</th><th>status</th><th>value</th><th>bound</th><th>detail</th></tr>")
        known = {**(verdict.get("known_intermittent") or {}), **(verdict.get("known_broken") or {})}
        for check in verdict.get("checks", []):
            value = check["value"]
            shown = json_short(value)
            note = f" [known: {known[check['name']]}]" if check["name"] in known else ""
            out.append(f"<tr class='{esc(check['status'])}'><td>{esc(check['name'])}</td><td>{esc(check['status'])}</td>"
                       f"<td>{esc(shown)}</td><td>{esc(str(check.get('bound') or ''))}</td>"
                       f"<td class='small'>{esc(check.get('detail', '') + note)}</td></tr>")
        out.append("</table>")
        out.extend(_routes_table(metrics))
        extra = metrics.get("extra") or {}
        if extra:
            out.append("<p class='small'>" + esc(json_short(extra, 2000)) + "</p>")
        out.append(f"<p class='small'>settings: {esc(_settings_text(verdict.get('settings') or {}))}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def _routes_table(metrics: dict[str, Any]) -> list[str]:
    """Availability per route of the app, and who served the requests (Serve's logs vs the body)."""
    import html

    esc = html.escape
    routes = metrics.get("routes") or {}
    if not routes:
        return []
    rows = ["<table><tr><th>route</th><th>requests</th><th>availability</th><th>during fault</th>"
            "<th>longest outage s</th></tr>"]
    for route, m in sorted(routes.items()):
        rows.append(f"<tr><td>{esc(route)}</td><td>{m.get('requests')}</td><td>{_fmt(m.get('availability'), '.4f')}"
                    f"</td><td>{_fmt(m.get('availability_during_fault'), '.4f')}</td>"
                    f"<td>{_fmt(m.get('longest_outage_s'), '.2f')}</td></tr>")
    rows.append("</table>")
    served = metrics.get("served_by") or {}
    if served:
        rows.append(f"<p class='small'>served-by from Serve's logs: {served.get('unattributed', 0)} successful "
                    f"requests unattributed; {served.get('agree', 0)} of {served.get('both', 0)} with a PID in the "
                    "body named the same replica</p>")
    return rows


def json_short(value: Any, limit: int = 300) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------- Markdown and JUnit
def render_markdown(run_dirs: list[Path]) -> str:
    lines = ["## serve-chaos verdicts", "",
             "| scenario | verdict | availability | longest outage | longest degraded | recovery | churn |",
             "|---|---|---|---|---|---|---|"]
    for d in run_dirs:
        row = verdict_row(load_verdict(d))
        lines.append(f"| {row['scenario']} | {row['status']} | {_fmt(row['availability'], '.4f')} | "
                     f"{_fmt(row['longest_outage_s'], '.2f', ' s')} | {_fmt(row['longest_degraded_s'], '.1f', ' s')} | "
                     f"{_fmt(row['recovery_s'], '.1f', ' s')} | "
                     f"{row['churn']} |")
    for d in run_dirs:
        verdict = load_verdict(d)
        if verdict.get("violations"):
            lines += ["", f"**{verdict['scenario']}**:"] + [f"- `{v}`" for v in verdict["violations"]]
    return "\n".join(lines) + "\n"


def render_junit(run_dirs: list[Path]) -> str:
    from xml.sax.saxutils import escape, quoteattr

    cases = []
    failures = errors = skipped = 0
    for d in run_dirs:
        verdict = load_verdict(d)
        row = verdict_row(verdict)
        body = ""
        if row["status"].startswith("fail (known"):
            skipped += 1
            known = {**(verdict.get("known_intermittent") or {}), **(verdict.get("known_broken") or {})}
            reasons = "; ".join(f"{k}: {v}" for k, v in known.items()
                                if k in {c["name"] for c in verdict.get("checks", []) if c["status"] != "pass"})
            body = f"<skipped message={quoteattr('known Ray deviation (strict xfail): ' + reasons)}/>"
        elif verdict["status"] == "fail":
            failures += 1
            text = "\n".join(verdict.get("violations") or [])
            body = f"<failure message={quoteattr((verdict.get('violations') or ['fail'])[0])}>{escape(text)}</failure>"
        elif verdict["status"] in ("error", "unknown", "aborted", "interrupted"):
            errors += 1
            message = verdict.get("error") or verdict["status"]
            body = f"<error message={quoteattr(message)}/>"
        elif verdict["status"] == "skipped":
            skipped += 1
            body = f"<skipped message={quoteattr(verdict.get('error') or 'skipped')}/>"
        cases.append(f'<testcase classname="serve-chaos" name={quoteattr(verdict["scenario"])} '
                     f'time="{verdict.get("wall_s", 0)}">{body}</testcase>')
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<testsuite name="serve-chaos" tests="{len(cases)}" failures="{failures}" errors="{errors}" '
            f'skipped="{skipped}">' + "".join(cases) + "</testsuite>\n")
