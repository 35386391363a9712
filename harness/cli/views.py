"""Tables and plans the run commands print (nothing here touches a cluster)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.table import Table

from serve_chaos.harness.cli.common import console
from serve_chaos.runtime.errors import ServeChaosError


def _f(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_verdicts(results: list, report_dir: Path) -> None:
    """The summary line, the settings every run shared, the verdict table in the words of
    ``serve_chaos.harness.report.verdicts``, and per run that is not kept what explains it and what would help."""
    from serve_chaos.harness.report.text import explanation_lines
    from serve_chaos.harness.report.view import view
    from serve_chaos.harness.report.verdicts import SHARED_SETTINGS_LABEL, settings_text

    report = view([res.verdict for res in results])
    console.print(report.summary.line(), style="bold", markup=False, highlight=False, soft_wrap=True)
    if report.settings.shared:
        console.print(f"{SHARED_SETTINGS_LABEL}: {settings_text(report.settings.shared)}", markup=False,
                      highlight=False, soft_wrap=True)
    table = Table(title="serve-chaos verdicts")
    for col in ("scenario", "verdict", "availability", "longest outage s", "longest degraded s", "first success s",
                "recovery s", "churn", "differs", "run dir"):
        table.add_column(col)
    for res, r in zip(results, report.rows):
        table.add_row(r.scenario, r.outcome, _f(r.availability, ".4f"), _f(r.longest_outage_s, ".2f"),
                      _f(r.longest_degraded_s, ".1f"), _f(r.first_success_s, ".2f"), _f(r.recovery_s, ".2f"),
                      r.churn, settings_text(r.settings), str(res.run_dir))
    console.print(table)
    for line in explanation_lines(report):
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"artifacts: {report_dir.resolve()}")


def print_repeat_summary(results: list) -> None:
    from serve_chaos.harness.report.verdicts import classify

    table = Table(title="repeatability")
    for col in ("scenario", "runs", "verdicts", "class", "availability min/med/max", "recovery s min/med/max"):
        table.add_column(col)
    by: dict[str, list] = {}
    for res in results:
        by.setdefault(res.scenario.name, []).append(res)

    def spread(values: list) -> str:
        vals = [v for v in values if v is not None]
        return "-" if not vals else f"{min(vals):.3f} / {statistics.median(vals):.3f} / {max(vals):.3f}"

    for name, runs in by.items():
        outcomes = [classify(r.verdict).outcome for r in runs]
        avail = [((r.evaluation.metrics.get("endpoints") or {}).get("front") or {}).get("availability")
                 for r in runs if r.evaluation]
        rec = [r.evaluation.metrics.get("recovery_s") for r in runs if r.evaluation]
        table.add_row(name, str(len(runs)), ", ".join(outcomes), "stable" if len(set(outcomes)) == 1 else "flaky",
                      spread(avail), spread(rec))
    console.print(table)


def ray_options_line(options: Any) -> str:
    """GCS FT, its backend and Serve's ingress as a scenario asks for them (None: the run's)."""
    if not options.gcs_ft:
        gcs = "GCS FT off"
    else:
        gcs = f"GCS FT on {options.gcs_backend}" if options.gcs_backend else "GCS FT on (the run's backend)"
    return f"{gcs}; ingress {options.ingress or 'as the run has it'}"


def print_plan(chosen: list, seed: int | None, cluster: Any | None, abort_below: float | None = None,
               abort_after: float = 30.0, app: Any = None) -> None:
    """The dry-run plan; with a live ``cluster`` and a seed, the victims the real run would pick.
    ``app`` (an AppUnderTest): the app each scenario would deploy, or why it would be skipped."""
    from serve_chaos.harness.app.selection import AppUnderTest, ScenarioSkipped
    from serve_chaos.harness.cli.common import snapshot
    from serve_chaos.harness.scenario import scenario_rng

    app = app or AppUnderTest()
    snap = snapshot(cluster) if cluster is not None else None
    pods = cluster.pods() if cluster is not None else []
    for sc in chosen:
        console.rule(f"[bold]{sc.name}[/bold] (dry run: nothing is touched)")
        try:
            deployed = app.app_for(sc)
        except ScenarioSkipped as err:
            console.print(f"skipped: {err.what}", markup=False, highlight=False)
            continue
        fault = sc.fault.for_app(deployed, app.deployment)
        console.print(f"app:     {deployed.label()} ({deployed.desired_replicas()} replicas)")
        console.print(f"cluster: {ray_options_line(sc.ray_options)}")
        console.print(f"promise: {sc.promise}")
        console.print(f"fault:   {fault.describe()}")
        if snap is not None and seed is not None:
            try:
                plan = fault.plan(snap, pods, scenario_rng(seed, sc.name))
                console.print(f"victims: {plan.description}")
            except ServeChaosError as err:
                console.print(f"victims: none available now ({err.what})")
        else:
            console.print("victims: chosen at run time from the live cluster"
                          + (f" with seed {seed}" if seed is not None else " (random seed, recorded)"))
        t = sc.describe()["timing"]
        console.print(f"schedule: load {sc.load.rate:g} req/s on {', '.join(sc.load.endpoints)}; warm-up "
                      f"{t['warmup_s']:g} s; gate <= {t['gate_timeout_s']:g} s; inject once; observe >= "
                      f"{t['min_observe_s']:g} s, deadline {t['deadline_s']:g} s; heal always")
        slo = {k: v for k, v in sc.describe()["slo"].items() if v not in (None, {}, "front")}
        console.print(f"SLOs: {slo}")
        console.print(f"expected churn: {sc.expected_churn}")
        for follow in sc.followups:
            console.print(f"then:    {follow.name}: {follow.fault.describe()} once recovered")
        if sc.known_broken or sc.known_intermittent:
            from serve_chaos.harness.deviations import ranges

            known = ranges({**sc.known_intermittent, **sc.known_broken})
            console.print("known Ray deviations: " + "; ".join(f"{k} ({v})" for k, v in known.items()),
                          markup=False, highlight=False)
        if abort_below is not None:
            console.print(f"abort: halt, heal and report if front-door availability stays below "
                          f"{abort_below} for {abort_after:g} s")
        else:
            console.print("abort: none (Ctrl-C heals the cluster and still reports)")

