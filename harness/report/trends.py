"""A history store of verdicts across runs, and regression flags against a recent baseline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serve_chaos.runtime.errors import ConfigError

STORE_FILE = "verdicts.jsonl"
#: How many earlier runs of a scenario form its baseline.
BASELINE_RUNS = 7
#: Noise floors: changes smaller than these are never regressions.
MIN_AVAILABILITY_DROP = 0.001
MIN_RECOVERY_RISE_S = 3.0
RECOVERY_RISE_FRACTION = 0.25


@dataclass(frozen=True)
class TrendPoint:
    """One run of one scenario, as kept across nights.  Times are epoch s / s."""

    run_id: str
    scenario: str
    status: str
    started_at: float
    availability: float | None
    availability_during_fault: float | None
    recovery_s: float | None
    longest_outage_s: float | None
    ray_version: str
    gcs_ft: bool | None
    target: str
    git_revision: str
    seed: int | None

    @classmethod
    def from_verdict(cls, verdict: dict[str, Any]) -> "TrendPoint":
        metrics = verdict.get("metrics") or {}
        spec = verdict.get("scenario_spec") or {}
        primary = (metrics.get("endpoints") or {}).get((spec.get("slo") or {}).get("primary_endpoint", "front"), {})
        return cls(
            run_id=verdict["run_id"],
            scenario=verdict["scenario"],
            status=verdict["status"],
            started_at=verdict["started_at"],
            availability=primary.get("availability"),
            availability_during_fault=primary.get("availability_during_fault"),
            recovery_s=metrics.get("recovery_s"),
            longest_outage_s=primary.get("longest_outage_s"),
            ray_version=verdict.get("ray_version", "unknown"),
            gcs_ft=(verdict.get("settings") or {}).get("gcs_ft"),
            target=verdict.get("target", "local"),
            git_revision=verdict.get("git_revision", "unknown"),
            seed=verdict.get("seed"),
        )


class HistoryStore:
    """Verdict summaries in ``<directory>/verdicts.jsonl``, one line per run, de-duplicated by run id."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(f"history store {self.directory} is a file, not a directory",
                              hint="pass a directory for --history-dir")
        self.path = self.directory / STORE_FILE

    def add(self, verdict: dict[str, Any]) -> bool:
        """Record a run; False if it was recorded before."""
        self.directory.mkdir(parents=True, exist_ok=True)
        point = TrendPoint.from_verdict(verdict)
        if point.run_id in set(self.frame().get("run_id", [])):
            return False
        with self.path.open("a") as fh:
            fh.write(json.dumps(asdict(point)) + "\n")
        return True

    def frame(self) -> pd.DataFrame:
        """Every recorded run; a damaged line is named in one ConfigError line."""
        rows = []
        needed = set(TrendPoint.__dataclass_fields__)
        lines = self.path.read_text(errors="replace").splitlines() if self.path.exists() else []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not needed <= set(row):
                lacking = sorted(needed - set(row)) if isinstance(row, dict) else ["(not a JSON object)"]
                raise ConfigError(f"history store {self.path} line {number} is damaged: lacks {', '.join(lacking)}",
                                  hint="fix or delete that line")
            rows.append(row)
        df = pd.DataFrame(rows)
        if not df.empty:
            df = df.sort_values("started_at").reset_index(drop=True)
        return df


def _mad(values: pd.Series) -> float:
    return float((values - values.median()).abs().median() * 1.4826)


def flag_regressions(df: pd.DataFrame, baseline_runs: int = BASELINE_RUNS) -> pd.DataFrame:
    """Add ``regression`` (bool) and ``why`` to each row, per scenario, oldest first.

    A run regresses when its availability falls below the median of the
    previous ``baseline_runs`` runs (same scenario, target, GCS FT setting and Ray release)
    by more than 3 robust standard deviations (and at least 0.001), or its
    recovery time rises above that median by more than 3 robust standard
    deviations (and at least max(3 s, 25 %)), or it stops recovering at all.
    At least two earlier runs are needed to judge.
    """
    if df.empty:
        return df.assign(regression=[], why=[])
    out = df.copy()
    out["regression"] = False
    out["why"] = ""
    # A night on another Ray release is no baseline: a matrix nightly runs several.
    keys = [k for k in ("scenario", "target", "gcs_ft", "ray_version") if k in out.columns]
    for _, group in out.groupby(keys, dropna=False, sort=False):
        idx = list(group.index)
        for pos, i in enumerate(idx):
            base = out.loc[idx[max(0, pos - baseline_runs):pos]]
            if len(base) < 2:
                continue
            reasons = []
            avail = out.at[i, "availability"]
            base_avail = base["availability"].dropna()
            if avail is not None and pd.notna(avail) and len(base_avail) >= 2:
                floor = base_avail.median() - max(3 * _mad(base_avail), MIN_AVAILABILITY_DROP)
                if avail < floor:
                    reasons.append(f"availability {avail:.4f} < baseline {base_avail.median():.4f}")
            rec = out.at[i, "recovery_s"]
            base_rec = base["recovery_s"].dropna()
            if len(base_rec) >= 2:
                median = base_rec.median()
                if rec is None or pd.isna(rec):
                    reasons.append(f"no recovery (baseline {median:.1f} s)")
                else:
                    ceiling = median + max(3 * _mad(base_rec), MIN_RECOVERY_RISE_S, RECOVERY_RISE_FRACTION * median)
                    if rec > ceiling:
                        reasons.append(f"recovery {rec:.1f} s > baseline {median:.1f} s")
            if reasons:
                out.at[i, "regression"] = True
                out.at[i, "why"] = "; ".join(reasons)
    return out
