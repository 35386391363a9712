"""``serve-chaos matrix``: the scenarios once per Ray release, and the truth table of the guide's promises.

``--ray-versions A,B,C [SCENARIO...]`` brings a cluster up per release, runs the scenarios,
takes it down, and renders ``matrix.html`` and ``matrix.md`` (``harness/report/matrix.py``) in one
directory that holds every run (``ray-<version>/<run-id>/``) and each release's own report.
``--from DIR...`` renders the table again from such directories, running nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.table import Table

from serve_chaos.harness.cli.common import (AllowContext, AppDir, AppFile, ConfigFile, DeploymentRef, HealthToggle, Image,
                                KubeContext, Locustfile, Namespace, NodeLossHook, RequestsFile, Target, app_options,
                                attached, console, target_options)
from serve_chaos.harness.options import RunOptions, parse_seed
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.ray_versions import TESTED_RAY_VERSIONS, parse_ray_range, parse_ray_versions, releases_between

RayVersions = typer.Option(None, "--ray-versions", help="comma-separated Ray releases, e.g. "
                                                        f"{','.join(TESTED_RAY_VERSIONS)} (the default), or a "
                                                        "range A..B: both ends run, and a verdict that differs is "
                                                        "bisected over the releases between")


def register(app: typer.Typer) -> None:
    app.command("matrix")(matrix)


def matrix(
    scenarios: list[str] = typer.Argument(None, help="scenario names (default: all)"),
    ray_versions: Optional[str] = RayVersions,
    from_dirs: list[Path] = typer.Option([], "--from", help="render from these run directories; run nothing"),
    report_dir: Path = typer.Option(Path("reports"), help="a matrix-<time>/ directory is made here"),
    out: Optional[Path] = typer.Option(None, help="HTML file (default: <matrix dir>/matrix.html; + .md beside it)"),
    seed: Optional[str] = typer.Option(None, help="seed for victims and schedule (default: random, recorded)"),
    config: ConfigFile = None,
    target: Target = "local",
    kube_context: KubeContext = None,
    allow_context: AllowContext = [],
    namespace: Namespace = "serve-chaos",
    node_loss_hook: NodeLossHook = None,
    app: AppFile = None,
    app_dir: AppDir = None,
    image: Image = None,
    requests: RequestsFile = None,
    locustfile: Locustfile = None,
    deployment: DeploymentRef = None,
    health_toggle: HealthToggle = False,
) -> None:
    """Run the scenarios on several Ray releases (a cluster per release) and render the truth table."""
    from serve_chaos.harness.catalog import select

    if from_dirs:
        if scenarios or ray_versions:
            raise ConfigError("--from renders existing runs; it takes no scenario names nor --ray-versions",
                              hint="drop them, or drop --from to run the matrix")
        html = out or Path("matrix.html")
        write_matrix(from_dirs, html)
        return
    span = parse_ray_range(ray_versions) if ray_versions else None
    versions = span or parse_ray_versions(ray_versions or ",".join(TESTED_RAY_VERSIONS))
    chosen = select(list(scenarios or ["all"]))
    spec, under_test = app_options(app, app_dir, image, requests, locustfile, deployment, health_toggle)
    seed_value = parse_seed(seed)
    base = report_dir / f"matrix-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"

    def options_for(version: str) -> RunOptions:
        return RunOptions.build(
            seed=seed_value, report_dir=base / f"ray-{version}", html=base / f"ray-{version}" / "report.html",
            target=target_options(target, config, kube_context, allow_context, namespace, node_loss_hook, app=spec,
                                  ray_version=version),
            app=under_test)

    for version in versions:
        options_for(version)  # every release's options, and its app's config keys, checked before any run
    html = out or base / "matrix.html"
    code = run_matrix(chosen, versions, options_for, "serve-chaos matrix")
    try:
        if span is not None and code != 130:
            from serve_chaos.runtime.local.rayenv import published_ray_releases

            # The index is asked only when a verdict differs between the ends.
            code = max(code, bisect_changes(chosen, lambda: list(releases_between(span[0], span[1],
                                                                                   published_ray_releases())),
                                            options_for, base, span))
    finally:
        if any(base.glob("ray-*/*")):  # the table of what ran, whatever the bisection met
            write_matrix([base], html)
    if code:
        raise typer.Exit(code)


def run_matrix(chosen: list, versions: tuple[str, ...], options_for: Callable[[str], RunOptions],
               command: str) -> int:
    """Each release in turn: its own cluster, the scenarios, its report, the cluster down.
    Exit code: 130 when interrupted (the releases after it are not run), 1 when any release
    had a failure that is not a known deviation, else 0."""
    from serve_chaos.harness.cli.execute import run_scenarios, with_load_rate

    first = options_for(versions[0])
    if first.target.app is not None and first.target.app.image and len(versions) > 1:
        raise ConfigError(f"--image {first.target.app.image} holds one Ray release; a matrix runs "
                          f"{len(versions)}", hint="use --app-dir (the stock rayproject/ray image of each release "
                                                   "serves it), or one release per image with --ray-version")
    running = attached(first.target)
    if running is not None:
        raise ConfigError(f"a cluster is already up ({running.label}); a matrix brings up one cluster per Ray "
                          "release and takes it down", hint="`serve-chaos down` first")
    worst = 0
    for version in versions:
        options = options_for(version)
        console.rule(f"[bold]Ray {version}[/bold]")
        code = run_scenarios(with_load_rate(chosen, options), options, f"{command} (Ray {version})")
        if code == 130:
            console.print(f"interrupted on Ray {version}: the releases after it were not run", markup=False)
            return 130
        worst = max(worst, code)
    return worst


def bisect_changes(chosen: list, releases_fn: Callable[[], list[str]], options_for: Callable[[str], RunOptions],
                   base: Path, ends: tuple[str, str]) -> int:
    """For each scenario whose verdict differs between the range's ``ends``, run it on the releases
    between (``releases_fn``, asked once and only then) as a binary search needs and say where it
    changed ("first kept in X"); the lines go to ``bisect.md`` beside the matrix too.  Exit code as
    ``run_matrix``'s."""
    from serve_chaos.harness.cli.execute import run_scenarios, with_load_rate
    from serve_chaos.harness.report import matrix as truth
    from serve_chaos.harness.report.bisect import bisect_change

    worst, lines = 0, []
    known: list[str] = []

    def releases() -> list[str]:
        if not known:
            known.extend(releases_fn())
        return known

    for scenario in chosen:
        seen: dict[str, str] = {}

        def verdict_of(version: str, scenario: Any = scenario) -> str:
            nonlocal worst
            if version not in seen:
                status = _status_in(base / f"ray-{version}", scenario.name, version)
                if status == truth.MISSING:
                    options = options_for(version)
                    console.rule(f"[bold]bisect {scenario.name}: Ray {version}[/bold]")
                    code = run_scenarios(with_load_rate([scenario], options), options,
                                         f"serve-chaos matrix bisect (Ray {version})")
                    if code == 130:
                        raise KeyboardInterrupt
                    worst = max(worst, code)
                    status = _status_in(base / f"ray-{version}", scenario.name, version)
                seen[version] = status
            return seen[version]

        try:
            change = None
            if verdict_of(ends[0]) != verdict_of(ends[1]):
                change = bisect_change(scenario.name, releases(), verdict_of)
        except KeyboardInterrupt:
            console.print(f"interrupted while bisecting {scenario.name}", markup=False)
            return 130
        if change is not None:
            lines.append(change.text())
    for line in lines:
        console.print(line, markup=False)
    if not lines:
        console.print(f"no verdict differs between Ray {ends[0]} and {ends[1]}: nothing to bisect", markup=False)
    (base / "bisect.md").parent.mkdir(parents=True, exist_ok=True)
    (base / "bisect.md").write_text("".join(f"- {line}\n" for line in lines) or "- no verdict changed\n")
    return worst


def _status_in(run_dir: Path, scenario: str, version: str) -> str:
    from serve_chaos.harness.report import matrix as truth

    if not any(run_dir.glob("*/verdict.json")):
        return truth.MISSING
    return truth.build(truth.find_runs([run_dir])).cell(scenario, version).status


def write_matrix(dirs: list[Path], html: Path) -> Any:
    """Render the table of the runs in ``dirs`` to ``html`` and its Markdown beside it; print it."""
    from serve_chaos.harness.report import matrix as truth
    from serve_chaos.harness.catalog import ORDER
    from serve_chaos.harness.outputs import check_file

    runs = truth.find_runs(dirs)
    check_file(html, "the matrix HTML", "--out", inputs=runs)
    check_file(html.with_suffix(".md"), "the matrix Markdown", "--out", inputs=runs)
    table = truth.build(runs, ORDER)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(truth.render_html(table))
    html.with_suffix(".md").write_text(truth.render_markdown(table))
    print_matrix(table)
    console.print(f"matrix: {html.resolve()} (+ .md) from {len(runs)} runs")
    return table


def print_matrix(table: Any) -> None:
    from serve_chaos.harness.report.matrix import LABELS, change_text

    view = Table(title="the guide's promises across Ray releases")
    view.add_column("scenario")
    for version in table.versions:
        view.add_column(f"Ray {version}")
    for scenario in table.scenarios:
        row = []
        for version in table.versions:
            cell = table.cell(scenario, version)
            text = LABELS[cell.status] + (f" ({cell.change})" if cell.change else "")
            row.append(f"[bold red]{text}[/bold red]" if cell.change else text)
        view.add_row(scenario, *row)
    console.print(view)
    for cell in table.changes():
        console.print(f"  {cell.scenario}: {change_text(cell, table)}", markup=False, highlight=False)
