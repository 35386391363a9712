"""The guide's promises across Ray releases: a truth table from run directories, as HTML and Markdown.

Rows are scenarios (the fault-tolerance guide's promises, in the catalogue's order), columns
Ray releases (oldest first), and each cell one run's verdict -- kept, known deviation, broken,
skipped -- with its availability and recovery time.  A cell whose verdict differs from the
release to its left is highlighted: *regressed in X* (kept before, not now), *fixed in X*
(not kept before, kept now), or *changed in X* (a known deviation became an unknown
failure, or the other way).  Pure functions of the verdicts: the same run directories render
the same table, whether ``serve-chaos matrix`` just made them or ``--from`` reads them back.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serve_chaos.harness.checks.testbed import doubt_line
from serve_chaos.harness.report import verdicts
from serve_chaos.harness.report.artifacts import is_run_dir, load_verdict
from serve_chaos.harness.report.text import verdict_row
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.ray_versions import version_key

#: Cell statuses: the report's one vocabulary (``serve_chaos.harness.report.verdicts``), plus a cell with no run.
KEPT, KNOWN, BROKEN, SKIPPED, ERROR, MISSING = (verdicts.KEPT, verdicts.KNOWN, verdicts.BROKEN, verdicts.SKIPPED,
                                                 verdicts.ERROR, "not run")
LABELS = {KEPT: KEPT, KNOWN: KNOWN, BROKEN: BROKEN, SKIPPED: SKIPPED, ERROR: "no verdict", MISSING: MISSING}
#: The CSS class of a cell of each status (statuses hold spaces).
CELL_CLASS = {KEPT: "pass", KNOWN: "known", BROKEN: "fail", SKIPPED: "skipped", ERROR: "error", MISSING: "missing"}
#: Statuses that say whether the promise held, and so can change between releases.
JUDGED = (KEPT, KNOWN, BROKEN)


@dataclass
class Cell:
    """One scenario on one Ray release.  ``availability`` is a ratio, ``recovery_s`` seconds."""

    scenario: str
    version: str
    status: str = MISSING
    availability: float | None = None
    recovery_s: float | None = None
    run_id: str = ""
    runs: int = 0
    detail: str = ""
    #: "" or how it differs from the release to its left: regressed / fixed / changed.
    change: str = ""


@dataclass
class Matrix:
    versions: list[str]
    scenarios: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def cell(self, scenario: str, version: str) -> Cell:
        return self.cells.get((scenario, version)) or Cell(scenario, version)

    def changes(self) -> list[Cell]:
        return [self.cell(s, v) for s in self.scenarios for v in self.versions if self.cell(s, v).change]


def cell_status(verdict: dict[str, Any]) -> str:
    """The outcome of one verdict in the report's words; what did not judge the promise
    (an error, an interrupted run) is a cell with no verdict."""
    outcome = verdicts.classify(verdict).outcome
    return outcome if outcome in (KEPT, KNOWN, BROKEN, SKIPPED) else ERROR


def _detail(verdict: dict[str, Any], status: str) -> str:
    if status == SKIPPED:
        return str(verdict.get("error") or "")
    if status == KNOWN:
        failing = {c["name"] for c in verdict.get("checks", []) if c.get("status") != "pass"}
        known = verdict.get("known_broken") or {}
        return "; ".join(f"{k}: {v}" for k, v in known.items() if k in failing) or "; ".join(known.values())
    if status == BROKEN:
        return str((verdict.get("violations") or [""])[0])
    if status == ERROR and verdict.get("status") == "inconclusive":
        # The testbed could not judge it: no verdict, so no change between releases either.
        return "inconclusive: " + doubt_line((verdict.get("metrics") or {}).get("testbed") or {})
    if status == ERROR:
        return f"{verdict.get('status')}: {verdict.get('error') or ''}".strip(": ")
    return ""


def find_runs(paths: list[Path], depth: int = 3) -> list[Path]:
    """Run directories at or below ``paths`` (a matrix keeps them in ``ray-<version>/``)."""
    if not paths:
        raise ConfigError("no run directory given", hint="pass a matrix directory or reports/")
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"{path} does not exist", hint="pass a directory `serve-chaos matrix` or `run` wrote")
        level = [path]
        for _ in range(depth + 1):
            found += [p for p in level if is_run_dir(p)]
            level = [c for p in level if p.is_dir() and not is_run_dir(p) for c in sorted(p.iterdir()) if c.is_dir()]
    if not found:
        raise ConfigError(f"no run directory in or below {', '.join(map(str, paths))}",
                          hint="pass the directory `serve-chaos matrix` printed, or reports/")
    return sorted(dict.fromkeys(p.resolve() for p in found))


def build(run_dirs: list[Path], order: tuple[str, ...] = ()) -> Matrix:
    """The table of the latest run of each scenario on each release; adjacent changes marked."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run_dir in run_dirs:
        verdict = load_verdict(run_dir)
        version = str(verdict.get("ray_version") or (verdict.get("settings") or {}).get("ray_version") or "unknown")
        by_key.setdefault((verdict["scenario"], version), []).append(verdict)
    versions = sorted({v for _, v in by_key}, key=lambda v: (v == "unknown", version_key(v) if v != "unknown" else 0))
    rank = {name: i for i, name in enumerate(order)}
    scenarios = sorted({s for s, _ in by_key}, key=lambda s: (rank.get(s, len(rank)), s))
    table = Matrix(versions, scenarios)
    for (scenario, version), runs in by_key.items():
        latest = max(runs, key=lambda v: v.get("started_at") or 0)
        row = verdict_row(latest)
        status = cell_status(latest)
        judged = status != SKIPPED  # a skipped run measured nothing
        table.cells[(scenario, version)] = Cell(scenario, version, status,
                                                row.get("availability") if judged else None,
                                                row.get("recovery_s") if judged else None,
                                                latest["run_id"], len(runs), _detail(latest, status))
    mark_changes(table)
    return table


def mark_changes(table: Matrix) -> None:
    """Compare each judged cell with the nearest judged release to its left."""
    for scenario in table.scenarios:
        before: Cell | None = None
        for version in table.versions:
            cell = table.cells.get((scenario, version))
            if cell is None or cell.status not in JUDGED:
                continue
            if before is not None and before.status != cell.status:
                kept_then, kept_now = before.status == KEPT, cell.status == KEPT
                cell.change = "regressed" if kept_then else "fixed" if kept_now else "changed"
            before = cell


def change_text(cell: Cell, table: Matrix) -> str:
    left = [v for v in table.versions[:table.versions.index(cell.version)]
            if table.cell(cell.scenario, v).status in JUDGED]
    was = LABELS[table.cell(cell.scenario, left[-1]).status] if left else "?"
    return f"{cell.change} in Ray {cell.version} ({was} in {left[-1] if left else '?'}, {LABELS[cell.status]} now)"


def _figures(cell: Cell) -> str:
    parts = []
    if cell.availability is not None:
        parts.append(f"{cell.availability:.4f}")
    if cell.recovery_s is not None:
        parts.append(f"{cell.recovery_s:.1f} s")
    return " · ".join(parts)


# ---------------------------------------------------------------------- rendering
CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} .pass{background:#e6f4e6} .fail{background:#fbe3e3} .known{background:#fde9d3}
.skipped,.error,.missing{background:#fff3cd} .small{font-size:12px;color:#555}
.change{outline:3px solid #b00;outline-offset:-3px} .chg{color:#b00;font-weight:bold}
h2{margin-top:36px;border-bottom:1px solid #ddd}
"""


def render_html(table: Matrix, title: str = "serve-chaos: the fault-tolerance guide across Ray releases") -> str:
    esc = html.escape
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style>"
           f"</head><body><h1>{esc(title)}</h1>",
           f"<p class='small'>generated {generated}; {len(table.scenarios)} scenarios x {len(table.versions)} Ray "
           f"releases; each cell: verdict, availability (primary endpoint), recovery time. A red frame marks a "
           f"verdict that differs from the release to its left.</p>",
           "<table><tr><th>scenario</th>" + "".join(f"<th>Ray {esc(v)}</th>" for v in table.versions) + "</tr>"]
    for scenario in table.scenarios:
        out.append(f"<tr><td>{esc(scenario)}</td>")
        for version in table.versions:
            cell = table.cell(scenario, version)
            cls = CELL_CLASS[cell.status] + (" change" if cell.change else "")
            note = f"<br><span class='chg'>{esc(change_text(cell, table))}</span>" if cell.change else ""
            runs = f" ({cell.runs} runs, latest shown)" if cell.runs > 1 else ""
            out.append(f"<td class='{esc(cls)}' title='{esc(cell.detail)}'><b>{esc(LABELS[cell.status])}</b>"
                       f"<br>{esc(_figures(cell))}{note}<br><span class='small'>{esc(cell.run_id)}{runs}</span></td>")
        out.append("</tr>")
    out.append("</table>")
    changes = table.changes()
    out.append("<h2>Changes between adjacent releases</h2>")
    out.append("<ul>" + "".join(f"<li><b>{esc(c.scenario)}</b>: {esc(change_text(c, table))}"
                                f"{(': ' + esc(c.detail)) if c.detail else ''}</li>" for c in changes) + "</ul>"
               if changes else "<p>No verdict changes between adjacent releases.</p>")
    notes = [c for s in table.scenarios for v in table.versions for c in [table.cell(s, v)]
             if c.detail and c.status in (KNOWN, BROKEN, SKIPPED, ERROR)]
    if notes:
        out.append("<h2>Why</h2><table><tr><th>scenario</th><th>Ray</th><th>verdict</th><th>detail</th></tr>")
        out += [f"<tr class='{esc(CELL_CLASS[c.status])}'><td>{esc(c.scenario)}</td><td>{esc(c.version)}</td>"
                f"<td>{esc(LABELS[c.status])}</td><td class='small'>{esc(c.detail)}</td></tr>" for c in notes]
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(table: Matrix) -> str:
    lines = ["## The fault-tolerance guide across Ray releases", "",
             "| scenario | " + " | ".join(f"Ray {v}" for v in table.versions) + " |",
             "|---|" + "---|" * len(table.versions)]
    for scenario in table.scenarios:
        cells = []
        for version in table.versions:
            cell = table.cell(scenario, version)
            text = LABELS[cell.status]
            figures = _figures(cell)
            text = f"**{text}** ({cell.change})" if cell.change else text
            cells.append(_md(text + (f" · {figures}" if figures else "")))
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: verdict · availability (primary endpoint) · recovery time; **bold**: differs from the "
                  "release to its left."]
    changes = table.changes()
    if changes:
        lines += ["", "Changes between adjacent releases:"]
        lines += [f"- `{c.scenario}`: {_md(change_text(c, table))}" + (f": {_md(c.detail)}" if c.detail else "")
                  for c in changes]
    return "\n".join(lines) + "\n"
