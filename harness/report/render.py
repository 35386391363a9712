"""Every report format from run directories: the HTML page, the Markdown summary, JUnit XML
and the verdict table's row -- one door for the CLI, the pytest plugin and the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serve_chaos.harness.report import html, text


def verdict_row(verdict: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one run (the verdict table's columns), ``status`` in the one
    vocabulary of ``serve_chaos.harness.report.verdicts`` (kept, known deviation, broken, ...)."""
    return text.verdict_row(verdict)


def render_html(run_dirs: list[Path], store: Any | None = None, title: str = "serve-chaos resilience report") -> str:
    """A self-contained page (``serve_chaos.harness.report.html``)."""
    return html.render_html(run_dirs, store, title)


def render_markdown(run_dirs: list[Path]) -> str:
    """A Markdown summary for a CI job page (``serve_chaos.harness.report.text``)."""
    return text.render_markdown(run_dirs)


def render_junit(run_dirs: list[Path]) -> str:
    """JUnit XML, one testcase per run (``serve_chaos.harness.report.text``)."""
    return text.render_junit(run_dirs)
