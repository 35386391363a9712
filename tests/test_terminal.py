"""What the terminal says after `serve-chaos run` and after pytest: the same summary line, the same
words as every report (a known deviation is never "fail"), and what explains each run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from serve_chaos.harness.report import artifacts as report
from tests import synthetic_runs as sr

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("night")
    return [sr.write(root, "r1", 1000.0, sr.shaped("replica_failure"), sr.replica_kill_history()),
            sr.controller_failure_run(root, "r2", 1001.0),
            sr.write(root, "r3", 1002.0, sr.shaped("worker_node_failure"),
                     sr.replica_kill_history(fail=lambda t: "timeout" if 20 <= t < 23.5 else None))]


SUMMARY = ("3 runs: 1 kept, 1 known deviation, 1 broken, 0 skipped; worst availability 0.9417 (worker_node_failure); "
           "slowest recovery 13.5 s (replica_failure)")


def test_the_run_commands_table_opens_with_the_summary(night, capsys, monkeypatch):
    from rich.console import Console

    from serve_chaos.harness.cli import views

    monkeypatch.setattr(views, "console", Console(width=400, force_terminal=False))
    results = [SimpleNamespace(verdict=report.load_verdict(d), run_dir=d) for d in night]
    views.print_verdicts(results, night[0].parent)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == SUMMARY
    assert lines[1].startswith("Settings of every run, unless its row says otherwise: ray_version=2.60.0")
    table = out.split("serve-chaos verdicts")[1].split("controller_failure: known deviation:")[0]
    assert "known deviation" in table and "broken" in table and " fail " not in table
    assert ("controller_failure: known deviation: replicas_after_recovery.recovery_s: every request through front "
            "timed out after the follow-up") in out
    assert "worker_node_failure: what would help: retry failed requests at the client" in out


def test_the_pytest_summary_uses_the_same_words(night, pytester, monkeypatch):
    # The subprocess must import this checkout's harness, not whichever one is installed.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    data = pytester.path / "verdicts.json"
    data.write_text(json.dumps([report.load_verdict(d) for d in night]))
    pytester.makeconftest('# the plugin loads through its pytest11 entry point')
    pytester.makepyfile(f"""
import json
from types import SimpleNamespace
from serve_chaos.harness.pytest_plugin import RESULTS_KEY

def test_runs(request):
    for verdict in json.loads(open({str(data)!r}).read()):
        request.config.stash[RESULTS_KEY].append(SimpleNamespace(verdict=verdict))
""")
    result = pytester.runpytest_subprocess("-p", "no:locust")
    text = "\n".join(result.outlines)
    section = text.split("serve-chaos verdicts")[1]
    assert SUMMARY in section.splitlines()[:3], section
    assert "controller_failure           known deviation" in section
    assert "worker_node_failure          broken" in section
    assert " fail " not in section
    assert "controller_failure: known: replicas_after_recovery.recovery_s: after the controller is replaced" in section
