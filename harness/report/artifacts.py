"""Run artifacts: the verdict JSON next to the raw history, under ``reports/<run-id>/``."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from serve_chaos.harness.checks import Evaluation
from serve_chaos.harness.deviations import in_play, ranges
from serve_chaos.harness.faults import FaultPlan
from serve_chaos.harness.observe.history import FAULTS_FILE, REQUESTS_FILE, History

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
    app: Any | None = None,
) -> dict[str, Any]:
    """Everything a reader needs to judge the run without the raw files.

    ``app`` (an ``AppSpec``): the app the run deployed; its deployments' settings are
    kept (``app_config``) so that the report can name the setting a remedy is about.
    ``outcome`` is the run's verdict in the one vocabulary of ``serve_chaos.harness.report.verdicts``."""
    from serve_chaos.harness.app.settings import app_summary
    from serve_chaos.harness.report.verdicts import classify

    metrics = evaluation.metrics if evaluation else {}
    checks = [c.to_dict() for c in evaluation.checks] if evaluation else []
    violations = [f"{c.line()} [{c.status}]" for c in evaluation.violations()] if evaluation else []
    data: dict[str, Any] = {
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
        "known_broken": in_play(scenario.known_broken, settings.get("ray_version"), settings.get("target")),
        "known_intermittent": in_play(getattr(scenario, "known_intermittent", {}) or {}, settings.get("ray_version"),
                                      settings.get("target")),
        "known_ranges": ranges({**(getattr(scenario, "known_intermittent", {}) or {}), **scenario.known_broken}),
        "cluster_healthy_after": cluster_healthy,
        "t_recovered_live": t_recovered_live,
        "scenario_spec": scenario.describe(),
        "app_config": app_summary(app.to_serve_config(), app.source) if app is not None else None,
    }
    data["outcome"] = classify(data).outcome
    return data


def write_run(run_dir: Path, history: History, verdict_data: dict[str, Any]) -> None:
    history.save(run_dir)
    (run_dir / VERDICT_FILE).write_text(json.dumps(verdict_data, indent=2, default=str))


#: What every verdict.json holds; a file without them is not one.
VERDICT_FIELDS = ("run_id", "scenario", "status", "started_at")


def load_verdict(run_dir: Path) -> dict[str, Any]:
    """The run's verdict; a run killed before it wrote one gets a partial verdict from what it left.

    A verdict file that is not JSON, empty, not an object or short of the fields
    every verdict has is named in one ConfigError line."""
    from serve_chaos.runtime.errors import ConfigError

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
    from serve_chaos.harness.observe.history import read_jsonl

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
    from serve_chaos.runtime.errors import ConfigError

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


def json_short(value: Any, limit: int = 300) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
