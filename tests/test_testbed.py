"""A broken run whose violations lie only where the harness's host was CPU-saturated is
inconclusive, not broken (harness/checks/testbed.py); one still broken without them is broken."""

import dataclasses
import os
from pathlib import Path

import pytest

from serve_chaos.harness.checks import PASS, SLO, CheckResult, evaluate
from serve_chaos.harness.checks.testbed import Span, doubt, doubt_line, saturated_spans, starved, without_starved
from serve_chaos.harness.observe.history import FaultRecord, requests_frame
from serve_chaos.harness.report.verdicts import ACCEPTED, INCONCLUSIVE, outcome_of
from serve_chaos.harness.report.view import details
from tests import synthetic as syn

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]


def _snaps(busy: dict[int, float], until: int = 40) -> list:
    snaps = []
    for t in range(0, until):
        snap = syn.snapshot(float(t), syn.BASE_REPLICAS)
        # The sample is taken as the probe ends: its t_end.
        snaps.append(dataclasses.replace(snap, t_end=float(t), host_cpu_busy=busy.get(t, 0.5)))
    return snaps


def test_saturated_probe_intervals_merge_into_spans():
    spans = saturated_spans(_snaps({10: 0.99, 11: 1.0, 12: 0.97, 20: 0.96, 25: 0.94}))
    assert spans == [Span(9.0, 12.0), Span(19.0, 20.0)]
    assert saturated_spans(_snaps({}), 0, 40) == []
    # Only inside the window asked for: the gate and the heal judge nothing.
    assert saturated_spans(_snaps({10: 0.99, 11: 1.0, 12: 0.97}), 10.5, 30) == [Span(10.5, 12.0)]


def test_a_fast_failure_before_a_span_is_rays_answer_and_stays_judged():
    records = syn.requests(0, 20, 1.0, fail=lambda t: "5xx" if t == 8 else None)
    for r in records:
        r["t_sent"], r["latency_ms"] = r["t"], 20.0
    records[11]["latency_ms"] = None  # no answer recorded: in flight up to the timeout
    df = requests_frame(records)
    mask = starved(df, [Span(10.0, 12.0)], timeout_s=5.0)
    assert list(df.loc[mask, "t"]) == [10.0, 11.0, 12.0]


def test_a_request_is_starved_when_its_time_in_flight_meets_a_span():
    records = syn.requests(0, 20, 1.0)
    for r in records:
        r["t_sent"], r["latency_ms"] = None, None  # nothing recorded: from t for the whole timeout
    df = requests_frame(records)
    mask = starved(df, [Span(10.0, 12.0)], timeout_s=5.0)
    assert list(df.loc[mask, "t"]) == [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]


def _history(fail_at: set[int], busy: dict[int, float]):
    fault = FaultRecord("replica_kill", 5.0, 5.1, t_recovered_observed=30.0)
    reqs = syn.requests(0, 40, 5.0, fail=lambda t: "timeout" if int(t) in fail_at else None)
    return syn.history(reqs, _snaps(busy), [fault])


def _took_effect(history, fault) -> CheckResult:
    return CheckResult("fault.took_effect", PASS)


def _kept(history) -> bool:
    return evaluate(history, SLO(min_availability_during_fault=0.999), {}, verify=_took_effect).status == "pass"


def _rejudge(history) -> tuple[bool, dict]:
    return _kept(history), {}


def test_failures_only_while_saturated_make_the_run_inconclusive():
    busy = {t: 1.0 for t in range(15, 20)}
    history = _history({16, 17}, busy)
    assert not _kept(history)
    # In flight during the span (14-19 s: these answer at once), 5 a second.
    found = doubt(history, _rejudge, 5.0, 40.0)
    assert found == {"saturated_s": 5.0, "set_aside": 26, "spans_s": [[9.0, 14.0]], "kept_without": True,
                     "checks_without": {}}
    lenient, n = without_starved(history, saturated_spans(history.snapshots))
    # Set aside, not dropped: the load's sequence stays whole, so judging is not held back.
    assert n == len(lenient.set_aside) and lenient.judged_until() == float("inf")
    assert "CPU-saturated for 5 s (9-14 s after the fault)" in doubt_line(found)


def test_recovery_is_pinned_to_what_the_whole_history_showed():
    from serve_chaos.harness.checks import Evaluation
    from serve_chaos.harness.engine.judge import _recoveries_pinned

    history = _history({16, 17}, {})
    history.faults[0].phase = "main"
    ev = Evaluation({"phase": "main"}, [], 21.0)
    assert _recoveries_pinned(history, ev).faults[0].t_recovered_observed == 21.0
    # A fault that never recovered is not the testbed's to excuse.
    assert _recoveries_pinned(history, Evaluation({"phase": "main"}, [], None)) is None


def test_failures_outside_saturation_stay_broken():
    history = _history({16, 17, 25}, {t: 1.0 for t in range(15, 20)})
    assert doubt(history, _rejudge, 5.0, 40.0)["kept_without"] is False
    # A short saturation is no reason to doubt anything, nor one before the fault or after healing began.
    assert doubt(_history({16}, {16: 1.0}), _rejudge, 5.0, 40.0) is None
    assert doubt(_history({16, 17}, {t: 1.0 for t in range(15, 20)}), _rejudge, 20.0, 40.0) is None
    assert doubt(_history({16, 17}, {t: 1.0 for t in range(15, 20)}), _rejudge, 0.0, 15.0) is None


def test_inconclusive_is_its_own_outcome_and_not_accepted():
    classified = outcome_of("inconclusive", ["front.availability_during_fault"], [])
    assert classified.outcome == INCONCLUSIVE and INCONCLUSIVE not in ACCEPTED
    verdict = {"status": "inconclusive", "checks": [{"name": "front.availability_during_fault", "status": "fail",
                                                     "value": 0.99, "bound": ">= 0.999"}],
               "metrics": {"testbed": {"saturated_s": 24.0, "set_aside": 300, "spans_s": [[65.3, 89.4]],
                                       "kept_without": True}}}
    lines = details(verdict)
    assert lines[0].startswith("the harness's host was CPU-saturated for 24 s (65-89 s after the fault)")
    assert lines[1].startswith("front.availability_during_fault = 0.99")


RERUN_CONFTEST = '''
import pytest
from pathlib import Path
from serve_chaos.harness.checks import CheckResult, Evaluation
from serve_chaos.harness.outcome import RunResult

RUNS = {runs}
TESTBED = {{"saturated_s": 20.0, "set_aside": 100, "spans_s": [[60.0, 80.0]], "kept_without": True}}

class Engine:
    def __init__(self):
        self.calls = 0

    def run(self, scenario):
        status = RUNS[self.calls]
        self.calls += 1
        ev = Evaluation({{"testbed": TESTBED}}, [CheckResult("front.availability_during_fault",
                                                            "pass" if status == "pass" else "fail")], None)
        return RunResult(scenario, f"r{{self.calls}}", Path(f"/nonexistent/r{{self.calls}}"), status, ev, None, None,
                         {{"ray_version": "2.60.0"}}, "", True)

@pytest.fixture(scope="session")
def chaos_engine():
    return Engine()
'''

RERUN_TEST = '''
import pytest
from serve_chaos.harness.catalog import load_scenarios

@pytest.mark.scenario(load_scenarios()["replica_failure"])
def test_it(scenario_result, chaos_engine):
    assert chaos_engine.calls == {calls}
    scenario_result.assert_promises()
'''


@pytest.mark.parametrize("runs,calls,outcome", [
    (["inconclusive", "pass"], 2, {"passed": 1}),      # the rerun judged it: kept
    (["inconclusive", "fail"], 2, {"failed": 1}),      # the rerun judged it: broken
    (["inconclusive", "inconclusive"], 2, {"errors": 1}),  # the host cannot judge it: not a pass
    (["fail"], 1, {"failed": 1}),                      # broken outright: no second chance
])
def test_an_inconclusive_run_is_run_once_more(pytester, monkeypatch, runs, calls, outcome):
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makeconftest(RERUN_CONFTEST.format(runs=runs))
    pytester.makepyfile(RERUN_TEST.format(calls=calls))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)
    if runs == ["inconclusive", "inconclusive"]:
        result.stdout.fnmatch_lines(["*replica_failure: inconclusive twice (r1, r2): the harness's host was "
                                     "CPU-saturated for 20 s*"])
