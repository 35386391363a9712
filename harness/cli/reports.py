"""``serve-chaos report``: HTML, Markdown and JUnit from run directories."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from serve_chaos.harness.cli.common import console


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)


def report_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="run directories, or directories holding them"),
    out: Path = typer.Option(Path("report.html"), help="HTML file to write"),
    history_dir: Optional[Path] = typer.Option(None, help="history store: record these runs and show trends"),
    markdown: Optional[Path] = typer.Option(None, help="also write a Markdown summary here"),
    junit: Optional[Path] = typer.Option(None, help="also write JUnit XML here"),
) -> None:
    """Write a self-contained HTML report (plots embedded) from run artifacts."""
    from serve_chaos.harness.report import artifacts as report
    from serve_chaos.harness.report import render
    from serve_chaos.harness.outputs import check_dir, check_distinct, check_file, write_text
    from serve_chaos.harness.report.trends import HistoryStore

    dirs = report.collect_runs(run_dirs)
    outputs = {"--out": out, "--markdown": markdown, "--junit": junit}
    for option, path in outputs.items():
        check_file(path, f"the {option[2:]} file", option, inputs=dirs)
    check_distinct(outputs)
    check_dir(history_dir, "the history directory", "--history-dir")
    store = HistoryStore(history_dir) if history_dir is not None else None
    if store is not None:
        for d in dirs:
            store.add(report.load_verdict(d))
    write_text(out, render.render_html(dirs, store), "the HTML report", "--out")
    if markdown is not None:
        write_text(markdown, render.render_markdown(dirs), "the Markdown report", "--markdown")
    if junit is not None:
        write_text(junit, render.render_junit(dirs), "the JUnit report", "--junit")
    console.print(f"wrote {out} ({len(dirs)} runs)")
