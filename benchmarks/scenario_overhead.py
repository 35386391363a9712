"""Per scenario: wall time next to the time Ray itself took to recover.

Usage: python benchmarks/scenario_overhead.py REPORT_DIR

Reads every ``verdict.json`` under REPORT_DIR (a ``pytest scenarios/`` or
``serve-chaos run`` output) and prints, per run: wall time, the experiment's
own time -- from the first fault to the last recovery, a fault's set duration
(20 s of CPU starvation, a drain's 45 s notice) and the gaps between follow-ups
included, since that is Ray's recovery and what the scenario asks for, not the
harness's; to the heal when a phase never recovered -- their ratio, and where
the rest went: preparing the cluster (config switches, restarts), the
steady-state gate, observing after recovery, and healing.  The last line sums
the set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def experiment_s(faults: list[dict], recovered: list[float | None], t_heal_start: float | None) -> float | None:
    """From the first fault to the last recovery (s); to the heal if a phase never recovered."""
    if not faults:
        return None
    end = t_heal_start if None in recovered else max(recovered)
    return (end - faults[0]["t_inject"]) if end else None


def phases(verdict: dict, run_dir: Path) -> dict[str, float | None]:
    start, end = verdict["started_at"], verdict["finished_at"]
    try:
        meta = json.loads((run_dir / "history.json").read_text())
    except (OSError, ValueError):
        meta = {}
    t_load_stop = meta.get("t_load_stop")
    faults = verdict.get("faults") or []
    metrics = verdict.get("metrics") or {}
    t_inject = faults[0]["t_inject"] if faults else None
    t_rec = metrics.get("t_recovered")
    followups = metrics.get("followups") or {}
    recovered = [t_rec] + [f.get("t_recovered") for f in followups.values()]
    last_rec = max([r or 0.0 for r in recovered]) or None
    return {
        "prepare_s": (verdict["t_gate"] - start) if verdict.get("t_gate") else None,
        "gate_to_fault_s": (t_inject - verdict["t_gate"]) if t_inject and verdict.get("t_gate") else None,
        "ray_recovery_s": experiment_s(faults, recovered, meta.get("t_heal_start")),
        "after_recovery_s": ((t_load_stop or end) - last_rec) if last_rec else None,
        "heal_s": (end - t_load_stop) if t_load_stop else None,
        "wall_s": end - start,
    }


def fmt(value: float | None, spec: str = "7.1f") -> str:
    return " " * (int(spec.split(".")[0]) - 1) + "-" if value is None else format(value, spec)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python benchmarks/scenario_overhead.py REPORT_DIR", file=sys.stderr)
        return 2
    runs = sorted(((json.loads(p.read_text()), p.parent) for p in Path(argv[0]).glob("*/verdict.json")),
                  key=lambda vr: vr[0]["started_at"])
    verdicts = [v for v, _ in runs]
    if not verdicts:
        print(f"no verdict.json under {argv[0]}", file=sys.stderr)
        return 1
    print(f"{'scenario':<28} {'wall_s':>7} {'exp_s':>7} {'ratio':>6} {'prepare':>8} {'to_fault':>8} "
          f"{'rec->stop':>9} {'heal':>7}  status")
    total_wall = total_ray = 0.0
    for v, run_dir in runs:
        p = phases(v, run_dir)
        ratio = p["wall_s"] / p["ray_recovery_s"] if p["ray_recovery_s"] else None
        total_wall += p["wall_s"]
        total_ray += p["ray_recovery_s"] or 0.0
        print(f"{v['scenario']:<28} {fmt(p['wall_s'])} {fmt(p['ray_recovery_s'])} {fmt(ratio, '6.2f')} "
              f"{fmt(p['prepare_s'], '8.1f')} {fmt(p['gate_to_fault_s'], '8.1f')} {fmt(p['after_recovery_s'], '9.1f')} "
              f"{fmt(p['heal_s'])}  {v['status']}")
    first, last = verdicts[0]["started_at"], verdicts[-1]["finished_at"]
    print(f"{'all':<28} {total_wall:7.1f} {total_ray:7.1f} {total_wall / total_ray if total_ray else 0:6.2f}"
          f"  span {last - first:.0f} s from the first start to the last finish")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
