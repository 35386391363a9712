"""Run artifacts: the verdict JSON next to the raw history, under ``reports/<run-id>/``."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.checks import Evaluation
from harness.faults import FaultPlan
from harness.history import History

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
        "known_broken": dict(scenario.known_broken),
        "cluster_healthy_after": cluster_healthy,
        "t_recovered_live": t_recovered_live,
        "scenario_spec": scenario.describe(),
    }


def write_run(run_dir: Path, history: History, verdict_data: dict[str, Any]) -> None:
    history.save(run_dir)
    (run_dir / VERDICT_FILE).write_text(json.dumps(verdict_data, indent=2, default=str))


def load_verdict(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / VERDICT_FILE).read_text())
