"""What every report shows, computed once from verdicts: the terminal, HTML, Markdown and JUnit
render the same summary line, the same shared settings and the same rows.

A report reads top-down: one summary line (how many runs kept their promises,
were known deviations, broke, were skipped; the worst availability and the
slowest recovery), the settings every run shared, then one row per run with
only what differs, the detail that explains its outcome and what would help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serve_chaos.harness.checks.results import CheckResult
from serve_chaos.harness.checks.testbed import doubt_line
from serve_chaos.harness.report.comparisons import Comparison, comparisons
from serve_chaos.harness.report.remedies import Advice, advice
from serve_chaos.harness.report.symptoms import beyond, symptom
from serve_chaos.harness.report.verdicts import (ABORTED, BROKEN, ERROR, INCONCLUSIVE, INTERRUPTED, KNOWN, SKIPPED, UNKNOWN, SettingsSplit, Summary,
                              churn_text, classify, headline, known_in_play, split_settings, summarize)


def check_line(check: dict[str, Any]) -> str:
    """``name = value (bound b): detail``, as the engine's one-line violations read."""
    fields = {k: check.get(k) for k in ("name", "status", "value", "bound", "unit", "detail")}
    fields["unit"], fields["detail"] = fields["unit"] or "", fields["detail"] or ""
    return CheckResult(**fields).line()


def details(verdict: dict[str, Any]) -> list[str]:
    """The lines that explain a run's outcome.

    A known deviation names its symptom as the history shows it (what the requests of
    the failing check's phase did; ``known_reasons`` says why Ray does it); a broken run
    each check that failed, with its symptom; skipped, error, interrupted and aborted
    runs their reason."""
    classified = classify(verdict)
    checks = {c["name"]: c for c in verdict.get("checks") or []}
    if classified.outcome == KNOWN:
        return [f"{name}: {symptom(verdict, checks[name])}" for name in classified.known if name in checks]
    if verdict.get("partial"):
        return [f"partial run: {verdict.get('error') or 'it left no verdict'}"]
    if classified.outcome in (SKIPPED, ERROR, INTERRUPTED, ABORTED):
        return [str(verdict.get("error") or classified.outcome)]
    testbed = (verdict.get("metrics") or {}).get("testbed") or {}
    lines = [doubt_line(testbed)] if classified.outcome == INCONCLUSIVE else []
    for name in classified.unexpected:
        check = checks.get(name)
        if check is None:
            continue
        line = check_line(check)
        more = beyond(line, symptom(verdict, check))
        lines.append(f"{line} [{check.get('status')}]" + (f" -- {more}" if more else ""))
    for name in classified.stale:
        check = checks.get(name)
        seen = f"{check_line(check)} [{check.get('status')}]" if check else "not evaluated"
        lines.append(f"known deviation {name} no longer reproduces -- remove it from known_broken ({seen})")
    if not lines and classified.outcome in (BROKEN, UNKNOWN):
        lines.append(str(verdict.get("error") or "no check judged this run"))
    return lines


def known_reasons(verdict: dict[str, Any]) -> list[str]:
    """Why Ray is known to break each promise a known deviation failed (``check: why``)."""
    classified = classify(verdict)
    if classified.outcome != KNOWN:
        return []
    why = {**(verdict.get("known_intermittent") or {}), **known_in_play(verdict)}
    return [f"{name}: {why[name]}" for name in classified.known if name in why]


@dataclass(frozen=True)
class Row:
    """One run as every report shows it.  Availability is a ratio, times seconds."""

    scenario: str
    outcome: str
    run_id: str
    availability: float | None
    longest_outage_s: float | None
    longest_degraded_s: float | None
    first_success_s: float | None
    recovery_s: float | None
    churn: str
    settings: dict[str, Any]
    details: tuple[str, ...]
    known_reasons: tuple[str, ...]
    advice: tuple[Advice, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "status": self.outcome, "availability": self.availability,
                "longest_outage_s": self.longest_outage_s, "longest_degraded_s": self.longest_degraded_s,
                "first_success_s": self.first_success_s, "recovery_s": self.recovery_s, "churn": self.churn,
                "settings": self.settings, "run_id": self.run_id, "details": list(self.details),
                "known_reasons": list(self.known_reasons),
                "advice": [a.line() for a in self.advice]}


def row(verdict: dict[str, Any], settings: dict[str, Any] | None = None) -> Row:
    figures = headline(verdict)
    return Row(
        scenario=str(verdict.get("scenario", "?")), outcome=classify(verdict).outcome,
        run_id=str(verdict.get("run_id", "?")), availability=figures["availability"],
        longest_outage_s=figures["longest_outage_s"], longest_degraded_s=figures["longest_degraded_s"],
        first_success_s=figures["first_success_s"], recovery_s=figures["recovery_s"],
        churn=churn_text((verdict.get("metrics") or {}).get("churn")),
        settings=dict(settings if settings is not None else {}),
        details=tuple(details(verdict)), known_reasons=tuple(known_reasons(verdict)),
        advice=tuple(advice(verdict)))


@dataclass(frozen=True)
class ReportView:
    """A set of runs, ready to render: ``summary.line()`` first, ``settings.shared`` once,
    then ``rows`` in run order."""

    summary: Summary
    settings: SettingsSplit
    rows: tuple[Row, ...] = field(default_factory=tuple)
    #: planned and unplanned losses of the same thing, side by side (``serve_chaos.harness.report.comparisons``)
    comparisons: tuple[Comparison, ...] = ()

    @property
    def needs_help(self) -> tuple[Row, ...]:
        """Rows that say what would help (broken, deviating or unknown runs with a remedy)."""
        return tuple(r for r in self.rows if r.advice)


def view(verdicts: list[dict[str, Any]]) -> ReportView:
    split = split_settings(verdicts)
    rows = tuple(row(v, split.differing[i]) for i, v in enumerate(verdicts))
    return ReportView(summarize(verdicts), split, rows, comparisons(verdicts))
