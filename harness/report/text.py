"""Markdown (a CI job summary) and JUnit XML from run directories, in the words of ``serve_chaos.harness.report.verdicts``.

Both read top-down like the HTML page: the summary line, the settings shared by
every run, one row per run with only what differs, then what would help.  In
JUnit a known deviation is a ``skipped`` testcase whose message names its
symptom (JUnit has no "expected failure"), never a ``failure``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from serve_chaos.harness.report.artifacts import load_verdict
from serve_chaos.harness.report.view import ReportView, Row, row, view
from serve_chaos.harness.report.verdicts import (ABORTED, BROKEN, ERROR, INCONCLUSIVE, INTERRUPTED, KEPT, KNOWN, SHARED_SETTINGS_LABEL, SKIPPED,
                              UNKNOWN, fmt, settings_text)


def verdict_row(verdict: dict[str, Any]) -> dict[str, Any]:
    """One run's table columns as a dict (``status`` is its outcome: kept, known deviation, ...)."""
    return row(verdict).to_dict()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(run_dirs: list[Path]) -> str:
    verdicts = [load_verdict(d) for d in run_dirs]
    report = view(verdicts)
    lines = ["## serve-chaos verdicts", "", f"**{report.summary.line()}**", ""]
    if report.settings.shared:
        lines += [f"{SHARED_SETTINGS_LABEL}: {_md_cell(settings_text(report.settings.shared))}", ""]
    lines += ["| scenario | verdict | availability | longest outage | longest degraded | recovery | churn | "
              "differs | detail |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report.rows:
        lines.append(f"| {r.scenario} | {r.outcome} | {fmt(r.availability, '.4f')} | "
                     f"{fmt(r.longest_outage_s, '.2f', ' s')} | {fmt(r.longest_degraded_s, '.1f', ' s')} | "
                     f"{fmt(r.recovery_s, '.1f', ' s')} | {r.churn} | {_md_cell(settings_text(r.settings))} | "
                     f"{_md_cell(r.details[0]) if r.details else ''} |")
    helped = report.needs_help
    if helped:
        lines += ["", "### What would help", ""]
        for r in helped:
            lines += [f"**{r.scenario}** ({r.outcome}):", ""] + [f"- {_md_cell(a.line())}" for a in r.advice] + [""]
    for comp in report.comparisons:
        lines += ["", f"### Side by side: {comp.pair.title}", "",
                  f"| | {comp.pair.planned} | {comp.pair.unplanned} |", "|---|---|---|"]
        lines += [f"| {m} | {_md_cell(p)} | {_md_cell(u)} |" for m, p, u in comp.rows]
    explained = [r for r in report.rows if len(r.details) > 1 or r.known_reasons]
    if explained:
        lines += ["", "### Details", ""]
        for r in explained:
            lines += [f"**{r.scenario}** ({r.outcome}):", ""] + [f"- `{d}`" for d in r.details]
            lines += [f"- known: {_md_cell(k)}" for k in r.known_reasons] + [""]
    return "\n".join(lines) + "\n"


def _testcase_body(r: Row) -> tuple[str, str]:
    """(JUnit element, counter it adds to) of one row."""
    detail = "\n".join(r.details)
    help_text = "\n".join("what would help: " + a.line() for a in r.advice)
    if r.outcome == KNOWN:
        message = "known deviation: " + "; ".join(r.details) + " (known: " + "; ".join(r.known_reasons) + ")"
        return f"<skipped message={quoteattr(message)}/>", "skipped"
    if r.outcome == SKIPPED:
        return f"<skipped message={quoteattr('skipped: ' + '; '.join(r.details))}/>", "skipped"
    if r.outcome == BROKEN:
        first = r.details[0] if r.details else BROKEN
        body = escape("\n".join(x for x in (detail, help_text) if x))
        return f"<failure message={quoteattr('broken: ' + first)}>{body}</failure>", "failures"
    if r.outcome in (ERROR, UNKNOWN, ABORTED, INTERRUPTED, INCONCLUSIVE):
        return f"<error message={quoteattr(r.outcome + ': ' + '; '.join(r.details))}/>", "errors"
    return "", ""


def render_junit(run_dirs: list[Path]) -> str:
    verdicts = [load_verdict(d) for d in run_dirs]
    report = view(verdicts)
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    cases = []
    for verdict, r in zip(verdicts, report.rows):
        body, counter = _testcase_body(r)
        if counter:
            counts[counter] += 1
        cases.append(f'<testcase classname="serve-chaos" name={quoteattr(r.scenario)} '
                     f'time="{verdict.get("wall_s", 0)}">{body}</testcase>')
    summary = report.summary.line()
    shared = settings_text(report.settings.shared)
    properties = (f'<properties><property name="summary" value={quoteattr(summary)}/>'
                  f'<property name="settings" value={quoteattr(shared)}/></properties>')
    out = escape(summary + (f"\n{SHARED_SETTINGS_LABEL}: {shared}" if shared else ""))
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<testsuite name="serve-chaos" tests="{len(cases)}" failures="{counts["failures"]}" '
            f'errors="{counts["errors"]}" skipped="{counts["skipped"]}">{properties}' + "".join(cases)
            + f"<system-out>{out}</system-out></testsuite>\n")


# ---------------------------------------------------------------------- the terminal
def explanation_lines(report: ReportView) -> list[str]:
    """Under a terminal table: per run that is not kept, what explains it, why Ray is known to
    do it, and what would help (one line each, prefixed with the scenario); then planned and
    unplanned losses side by side."""
    lines = []
    for r in report.rows:
        if r.outcome == KEPT:
            continue
        lines += [f"{r.scenario}: {r.outcome}: {d}" for d in r.details]
        lines += [f"{r.scenario}: known: {k}" for k in r.known_reasons]
        lines += [f"{r.scenario}: what would help: {a.line()}" for a in r.advice]
    for comp in report.comparisons:
        lines += comp.lines()
    return lines


def plain_table(report: ReportView) -> list[str]:
    """The verdict table in fixed-width text (the pytest terminal summary)."""
    lines = [f"{'scenario':<28} {'verdict':<15} {'avail':>8} {'outage_s':>9} {'degraded_s':>10} {'first_ok_s':>10} "
             f"{'recovery_s':>10}  {'churn':<24} differs"]
    for r in report.rows:
        lines.append(f"{r.scenario:<28} {r.outcome:<15} {fmt(r.availability, '.4f'):>8} "
                     f"{fmt(r.longest_outage_s, '.2f'):>9} {fmt(r.longest_degraded_s, '.1f'):>10} "
                     f"{fmt(r.first_success_s, '.2f'):>10} {fmt(r.recovery_s, '.2f'):>10}  {r.churn:<24} "
                     f"{settings_text(r.settings)}".rstrip())
    return lines
