"""Running chosen scenarios against a cluster, live, and writing every report: the layer
``serve-chaos run``, ``nightly`` and ``matrix`` share."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer

from serve_chaos.harness.cli.common import console, err_console, ray_progress
from serve_chaos.harness.cli.views import print_repeat_summary, print_verdicts
from serve_chaos.harness.options import RunOptions
from serve_chaos.harness.targets import build_cluster
from serve_chaos.runtime.errors import ClusterLost


def with_load_rate(chosen: list, options: RunOptions) -> list:
    if options.load_rate is None:
        return chosen
    return [replace(sc, load=replace(sc.load, rate=options.load_rate)) for sc in chosen]


def run_scenarios(chosen: list, options: RunOptions, command: str = "serve-chaos run") -> int:
    """Bring up (or attach to) the cluster, run, always report; return the exit code."""
    from serve_chaos.harness.engine import AbortPolicy, Engine, ScenarioSkipped
    from serve_chaos.harness.observe.live import LiveView
    from serve_chaos.harness.targets import bring_up, check_app_fits
    from serve_chaos.harness.report.trends import HistoryStore

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
                        app=options.app, load_workers=options.load_workers)
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
    from serve_chaos.harness.report import render
    from serve_chaos.harness.outputs import write_text
    from serve_chaos.runtime.errors import ServeChaosError

    run_dirs = [r.run_dir for r in results]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = html or report_dir / f"report-{stamp}.html"
    try:
        if store is not None:
            for res in results:
                store.add(res.verdict)
        write_text(out, render.render_html(run_dirs, store), "the HTML report", "--html")
        write_text(out.with_suffix(".md"), render.render_markdown(run_dirs), "the Markdown report", "--html")
        write_text(out.with_suffix(".junit.xml"), render.render_junit(run_dirs), "the JUnit report", "--html")
    except (ServeChaosError, OSError) as err:
        what = err.one_line() if isinstance(err, ServeChaosError) else f"{err.strerror}: {err.filename}"
        err_console.print(f"error: the report was not written: {what}", markup=False, highlight=False,
                          soft_wrap=True)
        return False
    console.print(f"report: {out.resolve()} (+ .md, .junit.xml)")
    return True
