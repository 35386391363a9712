"""The installed plugin in a user's repository: ``chaos_*.yaml`` files collected as tests, a broken
one a one-line collection error, and the ``chaos`` fixture -- against an engine stand-in that
judges a check as told (the real runs are scenarios' business)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = {"name": "mine", "faults": [{"fault": "replica_kill"}], "slo": {"max_recovery_s": 30},
              "expected_churn": {"replica": "victims"}}
CONFTEST = '''
import pytest
from pathlib import Path
from serve_chaos.harness.checks import CheckResult, Evaluation
from serve_chaos.harness.outcome import RunResult

class Engine:
    def run(self, scenario):
        checks = [CheckResult("recovery_s", "{status}", 12.0, "<= 30 s", "s", "back in 12 s")]
        ev = Evaluation({{}}, checks, None)
        return RunResult(scenario, "r", Path("/nonexistent"), ev.status, ev, None, None, {{"ray_version": "2.60.0"}},
                         "", True)

@pytest.fixture(scope="session")
def chaos_engine():
    return Engine()
'''


def setup(pytester, monkeypatch, status: str) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makeconftest(CONFTEST.format(status=status))


def test_experiment_files_are_collected_and_judged(pytester, monkeypatch):
    setup(pytester, monkeypatch, "pass")
    pytester.path.joinpath("chaos_mine.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    pytester.path.joinpath("other.yaml").write_text("not: an experiment\n")  # not chaos_*: left alone
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:locust")
    result.assert_outcomes(passed=1)


def test_a_broken_promise_fails_with_its_reason(pytester, monkeypatch):
    setup(pytester, monkeypatch, "fail")
    pytester.path.joinpath("chaos_mine.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:locust")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*recovery_s*"])


def test_a_broken_file_is_one_collection_error_naming_its_key(pytester, monkeypatch):
    setup(pytester, monkeypatch, "pass")
    pytester.path.joinpath("chaos_bad.yaml").write_text(yaml.safe_dump({**EXPERIMENT, "slo": {"max_recovery": 1}}))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:locust")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*chaos_bad.yaml: slo: Additional properties are not allowed ('max_recovery'*"])


def test_the_chaos_fixture_runs_an_experiment_written_in_a_test(pytester, monkeypatch):
    setup(pytester, monkeypatch, "pass")
    pytester.makepyfile(f'''
def test_mine(chaos):
    result = chaos({EXPERIMENT!r})
    result.assert_promises()
    assert result.scenario.name == "mine"
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:locust")
    result.assert_outcomes(passed=1)
