"""The HTML report: one self-contained page (plots are embedded PNGs, no JavaScript).

It reads top-down: the summary line, the settings every run shared, the verdict
table (only what differs per run), what would help each broken or deviating run,
trends across nights, then one section per run: its details, timeline (requests,
latency bands, latency, replica PIDs), latency before vs during each fault, and
every check with its value and bound.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

from serve_chaos.harness.report.latency import latency_rows
from serve_chaos.harness.report.artifacts import json_short, load_verdict
from serve_chaos.harness.report.view import ReportView, Row, view
from serve_chaos.harness.report.symptoms import beyond, symptom
from serve_chaos.harness.report.verdicts import (ACCEPTED, BROKEN, KEPT, KNOWN, SHARED_SETTINGS_LABEL, fmt, primary_endpoint,
                              settings_text)

esc = html.escape

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} .kept,.pass{background:#e6f4e6} .broken,.fail{background:#fbe3e3}
.other,.unknown{background:#fff3cd} .known{background:#fde9d3}
.summary{font-size:18px;font-weight:600;padding:10px 12px;border-left:6px solid #888;background:#f7f7f7}
.summary.bad{border-color:#c62828} .summary.good{border-color:#2e7d32}
.reg{color:#b00;font-weight:bold} img{max-width:100%} .small{font-size:12px;color:#555}
h2{margin-top:36px;border-bottom:1px solid #ddd} li{margin:4px 0}
"""


def outcome_class(outcome: str) -> str:
    return {KEPT: "kept", KNOWN: "known", BROKEN: "broken"}.get(outcome, "other")


def prose(text: str) -> str:
    """Escaped text whose `backticked` words become code."""
    parts = esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _png(data: bytes, alt: str) -> str:
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"


def _head(report: ReportView, verdicts: list[dict[str, Any]], title: str) -> list[str]:
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    bad = any(n for outcome, n in report.summary.counts.items() if outcome not in ACCEPTED)
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
           f"<style>{CSS}</style></head><body>", f"<h1>{esc(title)}</h1>",
           f"<p class='summary {'bad' if bad else 'good'}'>{esc(report.summary.line())}</p>"]
    if report.settings.shared:
        out.append(f"<p class='small'><b>{SHARED_SETTINGS_LABEL}:</b> {esc(settings_text(report.settings.shared))}</p>")
    first = verdicts[0] if verdicts else {}
    out.append(f"<p class='small'>generated {generated}; git {esc(str(first.get('git_revision', '?')))}</p>")
    return out


def _verdict_table(report: ReportView) -> list[str]:
    out = ["<h2>Verdicts</h2><table><tr><th>scenario</th><th>verdict</th><th>availability</th>"
           "<th>longest outage</th><th>longest degraded</th><th>recovery</th><th>churn</th>"
           "<th>settings that differ</th><th>detail</th></tr>"]
    for r in report.rows:
        out.append(
            f"<tr class='{outcome_class(r.outcome)}'><td><a href='#{esc(r.run_id)}'>{esc(r.scenario)}</a></td>"
            f"<td>{esc(r.outcome)}</td><td>{fmt(r.availability, '.4f')}</td>"
            f"<td>{fmt(r.longest_outage_s, '.2f', ' s')}</td><td>{fmt(r.longest_degraded_s, '.1f', ' s')}</td>"
            f"<td>{fmt(r.recovery_s, '.1f', ' s')}</td><td>{esc(r.churn)}</td>"
            f"<td class='small'>{esc(settings_text(r.settings))}</td>"
            f"<td class='small'>{esc(r.details[0]) if r.details else ''}</td></tr>")
    out.append("</table>")
    return out


def _side_by_side(report: ReportView) -> list[str]:
    out = []
    for comp in report.comparisons:
        out.append(f"<h2>Side by side: {esc(comp.pair.title)}</h2><table><tr><th></th>"
                   f"<th>{esc(comp.pair.planned)}</th><th>{esc(comp.pair.unplanned)}</th></tr>")
        out += [f"<tr><td>{esc(m)}</td><td>{esc(p)}</td><td>{esc(u)}</td></tr>" for m, p, u in comp.rows]
        out.append("</table>")
    return out


def _advice_list(r: Row) -> list[str]:
    out = ["<ul>"]
    for a in r.advice:
        out.append(f"<li><b>{prose(a.remedy.change)}</b>"
                   + (f"<br>Yours: {prose(a.config)}" if a.config else "")
                   + f"<br>Measured in this run: {esc(a.measured)}"
                   + (f"<br>Measured before ({esc(a.remedy.scenario)}): {esc(a.remedy.measured)}"
                      if a.remedy.measured else "")
                   + f"<br><span class='small'>source: {esc(a.remedy.source)}</span></li>")
    out.append("</ul>")
    return out


def _what_would_help(report: ReportView) -> list[str]:
    rows = report.needs_help
    if not rows:
        return []
    out = ["<h2>What would help</h2>"]
    for r in rows:
        out.append(f"<p><a href='#{esc(r.run_id)}'><b>{esc(r.scenario)}</b></a> ({esc(r.outcome)})</p>")
        out += _advice_list(r)
    return out


def _trends(store: Any) -> list[str]:
    from serve_chaos.harness.report import plots
    from serve_chaos.harness.report.trends import flag_regressions

    df = flag_regressions(store.frame())
    if df.empty:
        return []
    out = ["<h2>Trends across runs</h2>"]
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
        pts["label"] = [time.strftime("%m-%d %H:%M", time.gmtime(t)) for t in pts["started_at"]]
        out.append(_png(plots.trend(pts.reset_index(drop=True), str(scenario)), f"trend {scenario}"))
    return out


def _latency_table(history: Any, verdict: dict[str, Any]) -> list[str]:
    endpoint = primary_endpoint(verdict)
    rows = latency_rows(history.requests, verdict.get("metrics") or {}, endpoint)
    if not rows:
        return []
    out = [f"<p class='small'>Latency through {esc(endpoint)} (successful requests), before each fault and "
           "from the fault to its recovery (or deadline):</p>"
           "<table><tr><th>phase</th><th>window</th><th>requests</th><th>failed</th><th>p50</th>"
           "<th>p95</th><th>p99</th><th>max</th></tr>"]
    for r in rows:
        out.append(f"<tr><td>{esc(r.phase)}</td><td>{r.when} the fault</td><td>{r.requests}</td><td>{r.failed}</td>"
                   + "".join(f"<td>{fmt(v, '.1f', ' ms')}</td>" for v in (r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms))
                   + "</tr>")
    out.append("</table>")
    return out


def _checks_table(verdict: dict[str, Any]) -> list[str]:
    known = {**(verdict.get("known_intermittent") or {}), **(verdict.get("known_broken") or {})}
    out = ["<table><tr><th>check</th><th>status</th><th>value</th><th>bound</th><th>detail</th></tr>"]
    for check in verdict.get("checks") or []:
        detail = check.get("detail") or ""
        if check["status"] == "fail":
            # The behaviour first; the test's own reason after it.
            seen = symptom(verdict, check)
            more = beyond(detail, seen)
            if not detail or (more and more == seen):
                detail = f"{seen} (the check: {detail})" if detail else seen
            elif more:
                detail = f"{detail}; {more}"
        note = f" [known: {known[check['name']]}]" if check["name"] in known else ""
        out.append(f"<tr class='{esc(check['status'])}'><td>{esc(check['name'])}</td><td>{esc(check['status'])}</td>"
                   f"<td>{esc(json_short(check.get('value')))}</td><td>{esc(str(check.get('bound') or ''))}</td>"
                   f"<td class='small'>{esc(detail + note)}</td></tr>")
    out.append("</table>")
    return out


def _routes_table(metrics: dict[str, Any]) -> list[str]:
    """Availability per route of the app, and who served the requests (Serve's logs vs the body)."""
    routes = metrics.get("routes") or {}
    if not routes:
        return []
    rows = ["<table><tr><th>route</th><th>requests</th><th>availability</th><th>during fault</th>"
            "<th>longest outage s</th></tr>"]
    for route, m in sorted(routes.items()):
        rows.append(f"<tr><td>{esc(route)}</td><td>{m.get('requests')}</td><td>{fmt(m.get('availability'), '.4f')}"
                    f"</td><td>{fmt(m.get('availability_during_fault'), '.4f')}</td>"
                    f"<td>{fmt(m.get('longest_outage_s'), '.2f')}</td></tr>")
    rows.append("</table>")
    served = metrics.get("served_by") or {}
    if served:
        rows.append(f"<p class='small'>served-by from Serve's logs: {served.get('unattributed', 0)} successful "
                    f"requests unattributed; {served.get('agree', 0)} of {served.get('both', 0)} with a PID in the "
                    "body named the same replica</p>")
    return rows


def _run_section(run_dir: Path, verdict: dict[str, Any], r: Row) -> list[str]:
    from serve_chaos.harness.report import plots
    from serve_chaos.harness.observe.history import History

    metrics = verdict.get("metrics") or {}
    out = [f"<h2 id='{esc(r.run_id)}'>{esc(r.scenario)}: {esc(r.outcome)}</h2>",
           f"<p><b>{esc(verdict.get('title', ''))}</b><br>Promise: {esc(verdict.get('promise', ''))}</p>"]
    plans = verdict.get("plans") or []
    out.append("<p class='small'>" + "<br>".join(esc(p["description"]) for p in plans) +
               f"<br>seed {verdict.get('seed')}, run {esc(r.run_id)}, wall {verdict.get('wall_s')} s"
               + (f"<br>settings that differ: {esc(settings_text(r.settings))}" if r.settings else "") + "</p>")
    if r.details and r.outcome != KEPT:
        out.append("<ul>" + "".join(f"<li>{esc(d)}</li>" for d in r.details)
                   + "".join(f"<li>known: {esc(k)}</li>" for k in r.known_reasons) + "</ul>")
    if r.advice:
        out.append("<p><b>What would help</b></p>")
        out += _advice_list(r)
    try:
        history = History.load(run_dir)
        out.append(_png(plots.timeline(history, metrics, f"{r.scenario} ({r.run_id})"), "timeline"))
        out += _latency_table(history, verdict)
    except (OSError, ValueError, KeyError) as err:
        out.append(f"<p class='small'>no timeline: {esc(str(err))}</p>")
    out += _checks_table(verdict)
    out += _routes_table(metrics)
    workers = metrics.get("load_workers") or {}
    if workers:
        out.append("<p class='small'>load sent by Locust workers: " + ", ".join(
            f"worker {esc(k)}: {w['requests']} requests ({w['failed']} failed)" for k, w in sorted(workers.items()))
                   + "</p>")
    extra = metrics.get("extra") or {}
    if extra:
        out.append("<p class='small'>" + esc(json_short(extra, 2000)) + "</p>")
    return out


def render_html(run_dirs: list[Path], store: Any | None = None, title: str = "serve-chaos resilience report") -> str:
    """A self-contained page from run directories; with a history ``store``, trends too."""
    verdicts = [load_verdict(d) for d in run_dirs]
    report = view(verdicts)
    out = _head(report, verdicts, title) + _verdict_table(report) + _what_would_help(report) + _side_by_side(report)
    if store is not None:
        out += _trends(store)
    for run_dir, verdict, r in zip(run_dirs, verdicts, report.rows):
        out += _run_section(run_dir, verdict, r)
    out.append("</body></html>")
    return "\n".join(out)
