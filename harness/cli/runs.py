"""``serve-chaos run | nightly | soak | list``: scenarios against the cluster, live, with reports."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from harness.cli.common import (AllowContext, AppDir, AppFile, ConfigFile, DashboardUrl, DeploymentRef, HealthToggle,
                                Image, KubeContext, Locustfile, Namespace, NodeLossHook, RayVersion, RequestsFile,
                                ServeUrl, Target, app_options, attached, console, err_console, ray_progress,
                                target_options)
from harness.cli.views import print_plan, print_repeat_summary, print_verdicts
from harness.options import RunOptions, parse_seed
from harness.targets import build_cluster
from runtime.errors import ClusterLost


def register(app: typer.Typer) -> None:
    app.command("list")(list_scenarios)
    app.command()(run)
    app.command()(nightly)
    app.command()(soak)


def list_scenarios() -> None:
    """The scenarios with their promises and SLOs."""
    from harness.catalog import load_scenarios

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
) -> None:
    """Run scenarios against the cluster (brought up if needed), show them live, report.

    `--app your.yaml --app-dir src/` runs them against your own Serve app."""
    from harness.catalog import select

    spec, under_test = app_options(app, app_dir, image, requests, locustfile, deployment, health_toggle)
    options = RunOptions.build(
        seed=parse_seed(seed), report_dir=report_dir, load_rate=load_rate, repeat=repeat, abort_below=abort_below,
        abort_after=abort_after, keep_cluster=keep_cluster, step=step, history_dir=history_dir, html=html,
        target=target_options(target, config, kube_context, allow_context, namespace, node_loss_hook, app=spec,
                              ray_version=ray_version, serve_url=serve_url, dashboard_url=dashboard_url),
        app=under_test)
    chosen = with_load_rate(select(scenarios), options)
    if dry_run:
        print_plan(chosen, options.seed, attached(options.target), options.abort_below, options.abort_after,
                   options.app)
        return
    code = run_scenarios(chosen, options, "serve-chaos run " + " ".join(scenarios))
    if code:
        raise typer.Exit(code)


def with_load_rate(chosen: list, options: RunOptions) -> list:
    if options.load_rate is None:
        return chosen
    return [replace(sc, load=replace(sc.load, rate=options.load_rate)) for sc in chosen]


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
    from harness.catalog import select

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
    from harness.cli.matrix import run_matrix, write_matrix
    from runtime.errors import ConfigError
    from runtime.ray_versions import parse_ray_versions

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

    from harness.soak import build_soak, soak_faults

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


def run_scenarios(chosen: list, options: RunOptions, command: str = "serve-chaos run") -> int:
    """Bring up (or attach to) the cluster, run, always report; return the exit code."""
    from harness.engine import AbortPolicy, Engine, ScenarioSkipped
    from harness.live import LiveView
    from harness.targets import bring_up, check_app_fits
    from harness.trends import HistoryStore

    store = HistoryStore(options.history_dir) if options.history_dir is not None else None
    cluster = build_cluster(options.target, owner_pid=None if options.keep_cluster else os.getpid())
    view = LiveView(console)
    results: list = []
    interrupted = False
    engine = None

    def confirm(plan: Any) -> bool:
        view.pause()
        try:
            return typer.confirm(f"inject: {plan.description}?", default=True)
        except Exception as exc:  # noqa: BLE001 - click's Abort on Ctrl-C at the prompt
            if type(exc).__name__ == "Abort":
                raise KeyboardInterrupt from None
            raise
        finally:
            view.resume()

    locked = False
    reported = True
    try:
        with console.status("bringing the cluster up ...") as spinner:
            bring_up(cluster, options.target, ray_progress(spinner))
        check_app_fits(cluster, options.app.base)
        cluster.lock(command)
        locked = True
        abort = AbortPolicy(options.abort_below, options.abort_after) if options.abort_below is not None else None
        engine = Engine(cluster, options.report_dir, seed=options.seed, observer=view,
                        confirm=confirm if options.step else None, abort=abort, run_label=cluster.label,
                        app=options.app)
        for sc in chosen:
            for i in range(options.repeat):
                label = sc.name + (f" ({i + 1}/{options.repeat})" if options.repeat > 1 else "")
                console.rule(f"[bold]{label}[/bold]: {sc.title}")
                view.start(label, sc.load.rate)
                try:
                    results.append(engine.run(sc))
                except ScenarioSkipped as err:
                    console.print(f"skipped: {err.one_line()}", markup=False, highlight=False)
                    if engine.last_result is not None and engine.last_result.status == "skipped":
                        results.append(engine.last_result)
                finally:
                    view.stop()
    except KeyboardInterrupt:
        interrupted = True
        last = getattr(engine, "last_result", None)
        if last is not None and (not results or results[-1] is not last):
            results.append(last)
        err_console.print("interrupted: the cluster was healed" + (f"; artifacts in {last.run_dir}" if last else ""))
    except ClusterLost as err:
        interrupted = True
        err_console.print(f"interrupted: {err.one_line()}", markup=False, highlight=False, soft_wrap=True)
        last = getattr(engine, "last_result", None)
        if last is not None and (not results or results[-1] is not last):
            results.append(last)
    finally:
        if locked:
            cluster.unlock()
        if results:
            print_verdicts(results, options.report_dir)
            if options.repeat > 1:
                print_repeat_summary(results)
            reported = write_reports(results, options.report_dir, store, options.html)
        # A cluster that was already up (`serve-chaos up`) is not ours to remove.
        if not options.keep_cluster and cluster.created:
            with console.status("tearing the cluster down ..."):
                cluster.down()
    if interrupted:
        return 130
    unexplained = [r for r in results if not r.explained()]
    return 1 if unexplained or not reported else 0


def write_reports(results: list, report_dir: Path, store: Any, html: Optional[Path]) -> bool:
    """The HTML, Markdown and JUnit reports of a run; False (and one line on stderr) when one
    could not be written -- the caller still tears down, then exits non-zero."""
    from harness import report
    from harness.outputs import write_text
    from runtime.errors import ServeChaosError

    run_dirs = [r.run_dir for r in results]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = html or report_dir / f"report-{stamp}.html"
    try:
        if store is not None:
            for res in results:
                store.add(res.verdict)
        write_text(out, report.render_html(run_dirs, store), "the HTML report", "--html")
        write_text(out.with_suffix(".md"), report.render_markdown(run_dirs), "the Markdown report", "--html")
        write_text(out.with_suffix(".junit.xml"), report.render_junit(run_dirs), "the JUnit report", "--html")
    except (ServeChaosError, OSError) as err:
        what = err.one_line() if isinstance(err, ServeChaosError) else f"{err.strerror}: {err.filename}"
        err_console.print(f"error: the report was not written: {what}", markup=False, highlight=False,
                          soft_wrap=True)
        return False
    console.print(f"report: {out.resolve()} (+ .md, .junit.xml)")
    return True
