"""``serve-chaos run | nightly | soak | list``: scenarios against the cluster, live, with reports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from serve_chaos.harness.cli.common import (AllowContext, AppDir, AppFile, ConfigFile, DashboardUrl, DeploymentRef, GcsBackend,
                                HealthToggle, Ingress,
                                Image, KubeContext, Locustfile, Namespace, NodeLossHook, RayVersion, RequestsFile,
                                ServeUrl, Target, app_options, attached, console, target_options)
from serve_chaos.harness.cli.execute import run_scenarios, with_load_rate
from serve_chaos.harness.cli.views import print_plan
from serve_chaos.harness.options import RunOptions, parse_seed


def register(app: typer.Typer) -> None:
    app.command("list")(list_scenarios)
    app.command()(run)
    app.command()(nightly)
    app.command()(soak)


def list_scenarios() -> None:
    """The scenarios with their promises and SLOs."""
    from serve_chaos.harness.catalog import load_scenarios

    table = Table(title="serve-chaos scenarios")
    for col in ("scenario", "fault", "promise", "SLOs", "expected churn"):
        table.add_column(col, overflow="fold")
    for sc in load_scenarios().values():
        slo = {k: v for k, v in sc.describe()["slo"].items() if v not in (None, {}, "front")}
        table.add_row(sc.name, sc.fault.describe(), sc.promise, "\n".join(f"{k}={v}" for k, v in slo.items()),
                      ", ".join(f"{k}:{v}" for k, v in sc.expected_churn.items()))
    console.print(table)


def run(
    scenarios: list[str] = typer.Argument(..., help="scenario names, or `all`"),
    seed: Optional[str] = typer.Option(None, help="seed for victims and schedule (default: random, recorded)"),
    report_dir: Path = typer.Option(Path("reports"), help="where run artifacts go"),
    keep_cluster: bool = typer.Option(False, help="leave the cluster running afterwards"),
    dry_run: bool = typer.Option(False, help="print the plan and touch nothing"),
    step: bool = typer.Option(False, help="ask before each fault"),
    load_rate: Optional[float] = typer.Option(None, help="requests/s per endpoint"),
    load_workers: int = typer.Option(1, help="Locust worker processes sending the load (its distributed mode)"),
    config: ConfigFile = None,
    repeat: int = typer.Option(1, help="run each scenario N times and classify it stable or flaky"),
    abort_below: Optional[float] = typer.Option(None, help="halt when front-door availability stays below this"),
    abort_after: float = typer.Option(30.0, help="... for this many seconds (abort window)"),
    history_dir: Optional[Path] = typer.Option(None, help="record verdicts here and show trends"),
    html: Optional[Path] = typer.Option(None, help="HTML report path (default: <report-dir>/report-<time>.html)"),
    target: Target = "local",
    kube_context: KubeContext = None,
    allow_context: AllowContext = [],
    namespace: Namespace = "serve-chaos",
    node_loss_hook: NodeLossHook = None,
    serve_url: ServeUrl = None,
    dashboard_url: DashboardUrl = None,
    app: AppFile = None,
    app_dir: AppDir = None,
    image: Image = None,
    requests: RequestsFile = None,
    locustfile: Locustfile = None,
    deployment: DeploymentRef = None,
    health_toggle: HealthToggle = False,
    ray_version: RayVersion = None,
    gcs_backend: GcsBackend = None,
    ingress: Ingress = None,
) -> None:
    """Run scenarios against the cluster (brought up if needed), show them live, report.

    `--app your.yaml --app-dir src/` runs them against your own Serve app."""
    from serve_chaos.harness.catalog import select

    spec, under_test = app_options(app, app_dir, image, requests, locustfile, deployment, health_toggle)
    options = RunOptions.build(
        seed=parse_seed(seed), report_dir=report_dir, load_rate=load_rate, load_workers=load_workers, repeat=repeat,
        abort_below=abort_below,
        abort_after=abort_after, keep_cluster=keep_cluster, step=step, history_dir=history_dir, html=html,
        target=target_options(target, config, kube_context, allow_context, namespace, node_loss_hook, app=spec,
                              ray_version=ray_version, serve_url=serve_url, dashboard_url=dashboard_url,
                              gcs_backend=gcs_backend, ingress=ingress),
        app=under_test)
    chosen = with_load_rate(select(scenarios), options)
    if dry_run:
        print_plan(chosen, options.seed, attached(options.target), options.abort_below, options.abort_after,
                   options.app)
        return
    code = run_scenarios(chosen, options, "serve-chaos run " + " ".join(scenarios))
    if code:
        raise typer.Exit(code)


def nightly(
    scenarios: list[str] = typer.Argument(None, help="scenario names (default: all)"),
    history_dir: Path = typer.Option(Path("reports/history"), help="verdict history across nights"),
    report_dir: Path = typer.Option(Path("reports"), help="where run artifacts go"),
    seed: Optional[str] = typer.Option(None, help="seed (default: random, recorded)"),
    repeat: int = typer.Option(1, help="runs per scenario"),
    config: ConfigFile = None,
    target: Target = "local",
    kube_context: KubeContext = None,
    allow_context: AllowContext = [],
    namespace: Namespace = "serve-chaos",
    node_loss_hook: NodeLossHook = None,
    serve_url: ServeUrl = None,
    dashboard_url: DashboardUrl = None,
    app: AppFile = None,
    app_dir: AppDir = None,
    image: Image = None,
    requests: RequestsFile = None,
    locustfile: Locustfile = None,
    deployment: DeploymentRef = None,
    health_toggle: HealthToggle = False,
    ray_version: RayVersion = None,
    ray_versions: Optional[str] = typer.Option(None, "--ray-versions", help="run a matrix over these Ray releases "
                                                                            "(comma-separated) instead of one"),
) -> None:
    """The nightly job: run the scenarios, record verdicts, write the HTML report with trends.

    With `--ray-versions`, once per release (a cluster each), and the matrix page beside."""
    from serve_chaos.harness.catalog import select

    stamp = time.strftime("%Y%m%d", time.gmtime())
    spec, under_test = app_options(app, app_dir, image, requests, locustfile, deployment, health_toggle)
    if ray_versions is not None:
        code = nightly_matrix(select(list(scenarios or ["all"])), ray_versions, ray_version, stamp, report_dir,
                              history_dir, seed, repeat,
                              lambda v: target_options(target, config, kube_context, allow_context, namespace,
                                                       node_loss_hook, app=spec, ray_version=v), under_test)
        if code:
            raise typer.Exit(code)
        return
    options = RunOptions.build(
        seed=parse_seed(seed), report_dir=report_dir, repeat=repeat, history_dir=history_dir,
        html=report_dir / f"nightly-{stamp}.html",
        target=target_options(target, config, kube_context, allow_context, namespace, node_loss_hook, app=spec,
                              ray_version=ray_version, serve_url=serve_url, dashboard_url=dashboard_url),
        app=under_test)
    code = run_scenarios(select(list(scenarios or ["all"])), options, "serve-chaos nightly")
    if code:
        raise typer.Exit(code)


def nightly_matrix(chosen: list, ray_versions: str, ray_version: Optional[str], stamp: str, report_dir: Path,
                   history_dir: Path, seed: Optional[str], repeat: int, target_for: Any, under_test: Any) -> int:
    """``nightly --ray-versions``: every release into ``<report-dir>/nightly-<date>/ray-<version>/``
    with its own nightly page, one history (trends compare a release with itself), and the matrix."""
    from serve_chaos.harness.cli.matrix import run_matrix, write_matrix
    from serve_chaos.runtime.errors import ConfigError
    from serve_chaos.runtime.ray_versions import parse_ray_versions

    if ray_version is not None:
        raise ConfigError("--ray-version and --ray-versions exclude each other",
                          hint="one release: --ray-version X; a matrix: --ray-versions A,B,C")
    versions = parse_ray_versions(ray_versions)
    base = report_dir / f"nightly-{stamp}"
    seed_value = parse_seed(seed)

    def options_for(version: str) -> RunOptions:
        return RunOptions.build(seed=seed_value, report_dir=base / f"ray-{version}", repeat=repeat,
                                history_dir=history_dir, html=base / f"ray-{version}" / f"nightly-{stamp}.html",
                                target=target_for(version), app=under_test)

    for version in versions:
        options_for(version)
    code = run_matrix(chosen, versions, options_for, "serve-chaos nightly")
    if any(base.glob("ray-*/*")):
        write_matrix([base], base / "matrix.html")
    return code


def soak(
    duration: float = typer.Option(600.0, help="seconds of faults"),
    seed: Optional[str] = typer.Option(None, help="seed for the fault sequence and victims"),
    min_interval: float = typer.Option(20.0, help="seconds between faults, at least"),
    max_interval: float = typer.Option(60.0, help="seconds between faults, at most"),
    faults: Optional[str] = typer.Option(None, help="comma-separated scenario names to draw faults from"),
    report_dir: Path = typer.Option(Path("reports"), help="where run artifacts go"),
    history_dir: Optional[Path] = typer.Option(None, help="record the verdict here"),
    keep_cluster: bool = typer.Option(False, help="leave the cluster running afterwards"),
    dry_run: bool = typer.Option(False, help="print the fault sequence and touch nothing"),
    config: ConfigFile = None,
    target: Target = "local",
    kube_context: KubeContext = None,
    allow_context: AllowContext = [],
    namespace: Namespace = "serve-chaos",
    node_loss_hook: NodeLossHook = None,
    serve_url: ServeUrl = None,
    dashboard_url: DashboardUrl = None,
    app: AppFile = None,
    app_dir: AppDir = None,
    image: Image = None,
    requests: RequestsFile = None,
    locustfile: Locustfile = None,
    deployment: DeploymentRef = None,
    health_toggle: HealthToggle = False,
    ray_version: RayVersion = None,
) -> None:
    """Soak: random faults from the catalogue at random intervals, with the same checks and a report."""
    import random

    from serve_chaos.harness.soak import build_soak, soak_faults

    seed_value = parse_seed(seed)
    if seed_value is None:
        seed_value = random.SystemRandom().randrange(2**31)
    spec, under_test = app_options(app, app_dir, image, requests, locustfile, deployment, health_toggle)
    options = RunOptions.build(
        seed=seed_value, report_dir=report_dir, keep_cluster=keep_cluster, history_dir=history_dir,
        target=target_options(target, config, kube_context, allow_context, namespace, node_loss_hook, app=spec,
                              ray_version=ray_version, serve_url=serve_url, dashboard_url=dashboard_url),
        app=under_test)
    names = tuple(n.strip() for n in faults.split(",")) if faults else soak_faults(under_test.base.health_toggle)
    scenario = build_soak(duration, seed_value, min_interval, max_interval, names)
    if dry_run:
        console.print(f"{scenario.title}")
        console.print(f"1. {scenario.fault.describe()} (after the gate)")
        for i, f in enumerate(scenario.followups, start=2):
            console.print(f"{i}. {f.fault.describe()} {f.delay_s:g} s after the previous recovery")
        console.print(f"stops injecting after {duration:g} s; each fault judged by its scenario's SLOs")
        return
    code = run_scenarios([scenario], options, "serve-chaos soak")
    if code:
        raise typer.Exit(code)


