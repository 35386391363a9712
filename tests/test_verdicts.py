"""Verdicts that can be trusted: each observation that once fooled a verdict, on a crafted timeline.

- interleaved failures (half the front door's requests failing for 3 s) are a
  brownout even though no two failures are consecutive;
- a fault's figures are taken over its own window: a freeze 37 s after a fault
  that failed nothing is not that fault's "first success";
- a known Ray deviation that stops reproducing fails its scenario;
- the SLO floors the scenarios promise are in place.
"""

from __future__ import annotations

from dataclasses import fields

import pytest

from serve_chaos.harness.catalog import load_scenarios
from serve_chaos.harness.checks import PASS, RULES, SLO, CheckResult, Evaluation, degraded_spans, evaluate
from serve_chaos.harness.observe.history import FaultRecord, requests_frame
from serve_chaos.harness.outcome import PromiseBroken, RunResult, SLOViolation
from tests import synthetic as syn

RATE = 80.0  # req/s, as the prober that found the brownout offered


def half_failing(a: float, b: float):
    """Every other request in [a, b) fails (a frozen pod still behind a load balancer)."""
    return lambda t: "timeout" if a <= t < b and int(round(t * RATE)) % 2 == 0 else None


def steady_snapshots(t_end: float) -> list:
    return [syn.snapshot(t / 2, syn.BASE_REPLICAS + syn.BASE_SYSTEM) for t in range(int(t_end * 2))]


def test_interleaved_failures_are_a_brownout_not_an_outage():
    reqs = syn.requests(0, 60, RATE, fail=half_failing(40.0, 43.0))
    fault = FaultRecord("pod_freeze", 40.0, 40.0, victims=[{"role": "pod", "name": "worker-1", "uid": "gone"}])
    hist = syn.history(reqs, steady_snapshots(60), [fault], t_load_start=0.0, t_load_stop=60.0)
    ev = evaluate(hist, SLO(max_outage_s=1.0, max_longest_degraded_s=2.0), {}, hold_s=3.0, t_recovered=50.0)
    front = ev.metrics["endpoints"]["front"]
    assert front["longest_outage_s"] == pytest.approx(1 / RATE)  # never two failures in a row
    # 3 s of 50 % errors, plus the 1 s the last failure stays in the rolling window
    assert front["longest_degraded_s"] == pytest.approx(4.0, abs=0.11)
    assert front["degraded_s"] == pytest.approx(4.0, abs=0.11)
    status = {c.name: c.status for c in ev.checks}
    assert status["front.longest_outage_s"] == PASS
    assert status["front.longest_degraded_s"] == "fail"


def test_one_isolated_failure_degrades_about_one_second():
    reqs = requests_frame(syn.requests(0, 20, 15.0, fail=lambda t: "5xx" if abs(t - 10.0) < 1e-9 else None))
    (span,) = degraded_spans(reqs, 5.0, 20.0, threshold=0.01)
    assert span[0] == pytest.approx(10.0) and span[1] - span[0] == pytest.approx(1.0, abs=0.11)


def test_figures_belong_to_the_faults_own_window():
    # A fault at 20 s that failed nothing, recovered at 25 s; an unrelated freeze from 57 s to 60 s.
    reqs = syn.requests(0, 70, 10.0, fail=lambda t: "timeout" if 57.0 <= t < 60.0 else None)
    fault = FaultRecord("replica_kill", 20.0, 20.0, victims=[{"role": "replica", "actor_id": "gone", "pid": 1}])
    hist = syn.history(reqs, steady_snapshots(70), [fault], t_load_start=0.0, t_load_stop=70.0)
    ev = evaluate(hist, SLO(max_first_success_s=1.0, max_failure_span_s=1.0, max_degraded_s=0.0), {},
                  hold_s=3.0, t_recovered=25.0)
    front = ev.metrics["endpoints"]["front"]
    assert front["first_success_s"] == 0.0 and front["service_restored_s"] == 0.0
    assert front["failure_span_s"] == 0.0 and front["degraded_s"] == 0.0
    assert front["availability_during_fault"] == 1.0 and front["outage_windows"] == []
    # ... and what came after recovery is reported on its own, not mixed in.
    assert front["after_recovery"]["failed"] == 30 and front["availability_after_recovery"] < 1.0
    assert ev.status == PASS, [c.line() for c in ev.violations()]


def test_a_fault_that_never_recovered_is_judged_until_its_deadline():
    reqs = syn.requests(0, 100, 10.0, fail=lambda t: "refused" if 20.0 <= t < 30.0 or 90.0 <= t < 95.0 else None)
    fault = FaultRecord("pod_kill", 20.0, 20.0, victims=[{"role": "pod", "name": "worker-1", "uid": "u"}])
    snaps = [syn.snapshot(t / 2, syn.BASE_REPLICAS[:4] + syn.BASE_SYSTEM) for t in range(200)]
    hist = syn.history(reqs, snaps, [fault], t_load_start=0.0, t_load_stop=100.0)
    ev = evaluate(hist, SLO(max_recovery_s=30.0), {}, hold_s=3.0, deadline_s=40.0)
    front = ev.metrics["endpoints"]["front"]
    assert ev.metrics["window"]["end"] == 60.0 and not ev.metrics["window"]["recovered"]
    assert front["failure_span_s"] == pytest.approx(9.9) and front["failed_during_fault"] == 100


def run_result(checks: list[CheckResult], known: dict[str, str], sometimes: dict[str, str] | None = None) -> RunResult:
    sc = load_scenarios()["head_failure_gcs_ft"]
    from dataclasses import replace

    ev = Evaluation({"status_by_check": {c.name: c.status for c in checks}}, checks, None)
    return RunResult(replace(sc, known_broken=known, known_intermittent=sometimes or {}), "r", syn_path(), ev.status,
                     ev, None, None, {}, "", True)


def syn_path():
    from pathlib import Path

    return Path("/nonexistent/run")


def test_each_known_deviation_must_still_reproduce():
    known = {"pods.serve_when_ready": "ray#46938", "front.availability_during_fault": "ray#46938"}
    both = [CheckResult("pods.serve_when_ready", "fail"), CheckResult("front.availability_during_fault", "fail")]
    with pytest.raises(PromiseBroken):
        run_result(both, known).assert_promises()
    one_fixed = [CheckResult("pods.serve_when_ready", "fail"), CheckResult("front.availability_during_fault", PASS)]
    result = run_result(one_fixed, known)
    with pytest.raises(SLOViolation) as err:
        result.assert_promises()
    assert "known deviation front.availability_during_fault no longer reproduces -- remove it from known_broken" \
        in str(err.value)
    assert not result.explained()
    unknown = [CheckResult("pods.serve_when_ready", "fail"), CheckResult("front.availability_during_fault", "unknown")]
    with pytest.raises(SLOViolation):
        run_result(unknown, known).assert_promises()


def test_an_intermittent_deviation_is_an_xfail_when_it_happens_and_a_pass_when_not():
    sometimes = {"pods.serve_when_ready": "a race (ray#62751)"}
    seen = run_result([CheckResult("pods.serve_when_ready", "fail"), CheckResult("recovery_s", PASS)], {}, sometimes)
    with pytest.raises(PromiseBroken) as err:
        seen.assert_promises()
    assert "a race (ray#62751)" in str(err.value) and seen.explained() and seen.intermittent_seen()
    not_seen = run_result([CheckResult("pods.serve_when_ready", PASS), CheckResult("recovery_s", PASS)], {}, sometimes)
    not_seen.assert_promises()  # no "no longer reproduces": a race may go either way
    hidden = run_result([CheckResult("pods.serve_when_ready", "fail"), CheckResult("recovery_s", "fail", 200.0)], {},
                        sometimes)
    with pytest.raises(SLOViolation):
        hidden.assert_promises()


def test_an_unexpected_failure_is_never_hidden_by_a_known_one():
    known = {"pods.serve_when_ready": "ray#46938"}
    checks = [CheckResult("pods.serve_when_ready", "fail"), CheckResult("recovery_s", "fail", 200.0, "<= 120 s")]
    with pytest.raises(SLOViolation) as err:
        run_result(checks, known).assert_promises()
    assert "recovery_s" in str(err.value)


def test_the_promised_floors_are_in_place():
    sc = load_scenarios()
    assert sc["worker_node_failure"].slo.other_pods_min_availability_during_fault is not None
    # the head's crash may fail its share of the front for the front door's lag, no more
    assert sc["gcs_store_lost"].slo.max_failed_during_fault is not None
    partition = sc["network_partition"]
    assert partition.slo.max_longest_degraded_s is not None and partition.slo.max_front_door_drop_s is not None
    assert any(getattr(m, "__name__", "") == "front_door_drop" for m in partition.extra_metrics)


def test_every_slo_field_is_one_row_of_the_rule_table():
    judged = {f.name for f in fields(SLO)} - {"primary_endpoint", "degraded_threshold"}
    assert sorted(r.field for r in RULES) == sorted(judged)
    with pytest.raises(ValueError):
        SLO(max_degraded_s=float("nan"))
    with pytest.raises(ValueError):
        SLO(other_pods_min_availability_during_fault=1.5)


def test_what_healing_changes_is_not_the_faults_doing():
    # The fault never recovered; the heal at 40 s (load still running) replaced the controller.
    reqs = syn.requests(0, 50, 10.0)
    before = syn.BASE_REPLICAS + syn.BASE_SYSTEM
    healed = syn.BASE_REPLICAS + syn.BASE_SYSTEM[:3] + [syn.controller(301)]
    snaps = [syn.snapshot(t / 2, before if t / 2 < 40 else healed) for t in range(100)]
    fault = FaultRecord("all_replicas_kill", 20.0, 20.0, victims=[{"role": "replica", "actor_id": "x", "pid": 1}])
    hist = syn.history(reqs, snaps, [fault], t_load_start=0.0, t_load_stop=50.0, t_heal_start=40.0)
    ev = evaluate(hist, SLO(), {"controller": "none"}, hold_s=3.0, deadline_s=15.0)
    churn_check = next(c for c in ev.checks if c.name == "churn.controller")
    assert churn_check.status == PASS, churn_check.line()
    assert ev.metrics["window"]["after_end"] == 40.0


# ---------------------------------------------------------------------- one vocabulary
from serve_chaos.harness.report import verdicts as vocab  # noqa: E402
from serve_chaos.harness.checks.results import FAIL, UNKNOWN  # noqa: E402


@pytest.mark.parametrize("status,not_passed,known,sometimes,outcome", [
    ("pass", [], [], [], vocab.KEPT),
    ("pass", [], ["a"], [], vocab.BROKEN),  # a known deviation that no longer reproduces
    ("fail", ["a"], ["a"], [], vocab.KNOWN),
    ("fail", ["a", "b"], ["a"], [], vocab.BROKEN),  # an unexpected failure is never hidden
    ("fail", ["a"], ["a", "b"], [], vocab.BROKEN),  # each known deviation must still fail
    ("fail", ["r"], [], ["r"], vocab.KNOWN),  # an intermittent one, seen this time
    ("pass", [], [], ["r"], vocab.KEPT),  # ... and not seen: fine too
    ("unknown", ["a"], [], [], vocab.UNKNOWN),
    ("skipped", [], [], [], vocab.SKIPPED),
    ("error", [], [], [], vocab.ERROR),
    ("interrupted", [], [], [], vocab.INTERRUPTED),
    ("partial", [], [], [], vocab.INTERRUPTED),
    ("aborted", [], [], [], vocab.ABORTED),
])
def test_each_raw_status_has_one_word(status, not_passed, known, sometimes, outcome):
    assert vocab.outcome_of(status, not_passed, known, sometimes).outcome == outcome


@pytest.mark.parametrize("statuses,known,sometimes", [
    ({"pods.serve_when_ready": FAIL, "front.availability_during_fault": FAIL}, ["pods.serve_when_ready",
                                                                              "front.availability_during_fault"], []),
    ({"pods.serve_when_ready": FAIL, "front.availability_during_fault": PASS}, ["pods.serve_when_ready",
                                                                              "front.availability_during_fault"], []),
    ({"pods.serve_when_ready": FAIL, "recovery_s": FAIL}, ["pods.serve_when_ready"], []),
    ({"pods.serve_when_ready": FAIL, "recovery_s": PASS}, [], ["pods.serve_when_ready"]),
    ({"pods.serve_when_ready": PASS, "recovery_s": PASS}, [], ["pods.serve_when_ready"]),
    ({"recovery_s": UNKNOWN}, [], []),
])
def test_the_reports_and_the_exit_code_agree(statuses, known, sometimes):
    checks = [CheckResult(name, status) for name, status in statuses.items()]
    result = run_result(checks, {k: "why" for k in known}, {k: "race" for k in sometimes})
    verdict = {"status": result.status, "checks": [c.to_dict() for c in checks],
               "known_broken": {k: "why" for k in known}, "known_intermittent": {k: "race" for k in sometimes}}
    assert (vocab.classify(verdict).outcome in vocab.ACCEPTED) == result.explained()


def test_a_known_deviation_is_never_called_a_failure(tmp_path):
    from serve_chaos.harness.report import artifacts as report
    from serve_chaos.harness.report import render
    from tests import synthetic_runs as sr

    run = sr.controller_failure_run(tmp_path)
    verdict = report.load_verdict(run)
    assert verdict["status"] == "fail" and verdict["outcome"] == vocab.KNOWN
    outputs = render.render_markdown([run]) + render.render_junit([run])
    assert "| controller_failure | known deviation |" in outputs
    assert "fail" not in outputs.split("### Details")[0].split("| controller_failure |")[1].split("\n")[0]
    assert 'failures="0"' in outputs and "known deviation: replicas_after_recovery.recovery_s" in outputs


def test_the_known_deviation_names_its_symptom_not_an_incidental_message(tmp_path):
    """controller_failure: the recovery check failed because no steady window came, and the
    last window tried fell where the dashboard did not answer (the heal restarting the
    controller).  The verdict must name what the requests did."""
    from serve_chaos.harness.report import artifacts as report
    from serve_chaos.harness.report import render
    from serve_chaos.harness.report.view import details
    from tests import synthetic_runs as sr

    verdict = report.load_verdict(sr.controller_failure_run(tmp_path))
    check = next(c for c in verdict["checks"] if c["name"] == "replicas_after_recovery.recovery_s")
    assert "dashboard not answering" in check["detail"]  # the check's own reason: incidental
    (line,) = details(verdict)
    assert line == ("replicas_after_recovery.recovery_s: every request through front timed out after the follow-up "
                    "replicas_after_recovery (ray.kill every RUNNING replica with no_restart=True): 350 of 350 in "
                    "the 35 s until the phase's deadline")
    html = render.render_html([tmp_path / "r-controller_failure"])
    assert "every request through front timed out after the follow-up" in html


def test_a_symptom_counts_what_failed_and_how():
    from serve_chaos.harness.report.symptoms import request_symptom

    window = {"start": 0.0, "fault": 20.0, "end": 34.0, "recovered": True}
    some = {"failed_during_fault": 20, "availability_during_fault": 0.85, "errors": {"refused": 20},
            "longest_outage_s": 2.0}
    assert request_symptom("pod:worker-1", some, window, "the fault") == (
        "20 of 133 requests through pod:worker-1 were refused after the fault in the 14 s until recovery; "
        "longest outage 2.0 s")
    mixed = {"failed_during_fault": 4, "availability_during_fault": 0.0, "errors": {"timeout": 3, "reset": 1}}
    assert request_symptom("front", mixed, {**window, "recovered": False}, "the fault") == (
        "every request through front failed (timeout 3, reset 1) after the fault: 4 of 4 in the 14 s until the "
        "phase's deadline")
    assert request_symptom("front", {"failed_during_fault": 0}, window, "the fault") is None
    lost = {**some, "errors": {"timeout": 20}, "failed_but_served_during_fault": 7}
    assert request_symptom("pod:worker-1", lost, window, "the fault").endswith(
        "; 7 of them a replica served by Serve's own logs: the answer was lost after the replica (its proxy, or "
        "the path back to the client)")
    located = {**lost, "failures": {"from_s": 46.0, "to_s": 52.3, "served_by_pods": {"head-x": 6, "worker-y": 1}}}
    assert request_symptom("pod:worker-1", located, window, "the fault").endswith(
        "longest outage 2.0 s; sent 46.0-52.3 s after it; 7 of them a replica served by Serve's own logs "
        "(on head-x 6, worker-y 1): the answer was lost after the replica (its proxy, or the path back to the "
        "client)")
    shaped = {**some, "failures": {"from_s": 0.2, "to_s": 84.0, "per_10s": [40, 12, 0, 0, 0, 0, 0, 3, 5]}}
    assert "; sent 0.2-84.0 s after it (40, 12, 0, 0, 0, 0, 0, 3, 5 per 10 s)" in \
        request_symptom("front", shaped, window, "the fault")


def test_a_failed_request_a_replica_served_is_counted_apart():
    from serve_chaos.harness.checks.timeline import PhaseWindow, endpoint_metrics
    from serve_chaos.harness.observe.history import requests_frame

    df = requests_frame(syn.requests(0, 20, 5.0, fail=lambda t: "timeout" if 10 <= t < 12 else None))
    df["replica"] = ["r1" if ok or t < 11 else None for ok, t in zip(df["ok"], df["t"])]  # 5 of the 10 failed
    df["replica_pod"] = df["replica"].where(df["replica"].isna(), "pod-a")
    figures = endpoint_metrics(df, PhaseWindow(0.0, 9.0, 15.0, True, 20.0), 0.01)
    assert (figures["failed_during_fault"], figures["failed_but_served_during_fault"]) == (10, 5)
    assert figures["failures"] == {"from_s": 1.0, "to_s": 2.8, "served_by_pods": {"pod-a": 5}}
    assert endpoint_metrics(df[df["ok"]], PhaseWindow(0.0, 9.0, 15.0, True, 20.0), 0.01)["failures"] == {}
    # Failures spanning 10 s or more are also counted per 10 s: a burst and a lasting fault differ.
    late = requests_frame(syn.requests(0, 40, 5.0, fail=lambda t: "timeout" if t in (10, 11, 33) else None))
    assert endpoint_metrics(late, PhaseWindow(0.0, 9.0, 38.0, True, 40.0), 0.01)["failures"] == \
        {"from_s": 1.0, "to_s": 24.0, "per_10s": [2, 0, 1]}


def test_a_check_name_points_at_its_phase_and_endpoint():
    from serve_chaos.harness.report.symptoms import CheckRef, parse_check

    follow, endpoints = {"replicas_after_recovery"}, {"front", "pod:worker-1"}
    assert parse_check("replicas_after_recovery.recovery_s", follow, endpoints) == \
        CheckRef("replicas_after_recovery", None, "recovery_s")
    assert parse_check("front.longest_outage_s", follow, endpoints) == CheckRef("main", "front", "longest_outage_s")
    assert parse_check("pods:worker.availability_during_fault", follow, endpoints) == \
        CheckRef("main", "pods:worker", "availability_during_fault")
    assert parse_check("churn.replica", follow, endpoints) == CheckRef("main", None, "churn.replica")


# ---------------------------------------------------------------------- the summary line
def _verdict(name: str, status: str, availability: float | None = 1.0, recovery: float | None = 10.0,
             settings: dict | None = None, checks: list | None = None, known: dict | None = None) -> dict:
    return {"scenario": name, "run_id": f"r-{name}", "status": status, "started_at": 0.0,
            "checks": checks or [], "known_broken": known or {}, "known_intermittent": {},
            "settings": settings if settings is not None else {"gcs_ft": True, "ray_version": "2.60.0"},
            "metrics": {"t_fault": 1.0, "recovery_s": recovery,
                        "endpoints": {"front": {"availability": availability}}}}


def test_the_summary_line_says_how_the_night_went():
    night = [_verdict("a", "pass", 1.0, 13.5), _verdict("b", "pass", 0.9981, 95.0),
             _verdict("c", "fail", 0.98, 30.0, checks=[{"name": "x", "status": "fail"}], known={"x": "ray#1"}),
             _verdict("d", "skipped", None, None, settings={"app": "x"}),
             _verdict("e", "fail", 0.5, None, checks=[{"name": "y", "status": "fail"}])]
    line = vocab.summarize(night).line()
    assert line == ("5 runs: 2 kept, 1 known deviation, 1 broken, 1 skipped; worst availability 0.5000 (e); "
                    "slowest recovery 95.0 s (b); never recovered: e")
    assert vocab.summarize([_verdict("a", "pass"), _verdict("z", "error", None, None)]).line().startswith(
        "2 runs: 1 kept, 0 known deviations, 0 broken, 0 skipped, 1 error")


def test_settings_shared_by_the_runs_are_said_once():
    runs = [_verdict("a", "pass", settings={"gcs_ft": True, "ray_version": "2.60.0", "workers": 2}),
            _verdict("b", "pass", settings={"gcs_ft": True, "ray_version": "2.60.0", "workers": 2}),
            _verdict("c", "pass", settings={"gcs_ft": False, "ray_version": "2.60.0", "workers": 2,
                                            "replica_start_s": 10.3}),
            _verdict("d", "skipped", settings={"app": "mine"})]
    split = vocab.split_settings(runs)
    assert split.shared == {"ray_version": "2.60.0", "gcs_ft": True, "workers": 2}
    assert split.differing == ({}, {}, {"gcs_ft": False}, {})


def test_a_scenarios_own_check_keeps_its_words_and_adds_what_the_requests_did():
    from serve_chaos.harness.report.symptoms import symptom

    window = {"start": 0.0, "fault": 20.0, "end": 48.0, "recovered": True}
    verdict = {"scenario_spec": {"fault": {"summary": "ray.kill one ProxyActor"}},
               "metrics": {"window": window, "endpoints": {
                   "front": {"failed_during_fault": 0},
                   "pod:worker-1": {"failed_during_fault": 280, "availability_during_fault": 0.0,
                                    "errors": {"refused": 280}}}}}
    own = {"name": "proxy.restarted_by_ray", "status": "fail", "detail": "a new ProxyActor replaced it after 27.5 s"}
    assert symptom(verdict, own) == (
        "a new ProxyActor replaced it after 27.5 s; meanwhile every request through pod:worker-1 was refused after "
        "the fault (ray.kill one ProxyActor): 280 of 280 in the 28 s until recovery")
    on_front = {"name": "front.availability_during_fault", "status": "fail", "detail": ""}
    assert symptom(verdict, on_front) == "front.availability_during_fault = n/a"  # front failed nothing


def test_a_symptom_is_said_once():
    from serve_chaos.harness.report.symptoms import beyond

    assert beyond("x = 1 (bound <= 0): the check's words", "the check's words") == ""
    assert beyond("x = 1: own words", "own words; meanwhile 3 of 9 requests failed") == "meanwhile 3 of 9 requests failed"
    assert beyond("recovery_s = n/a: no steady state", "every request timed out") == "every request timed out"


def test_a_starved_host_is_named_next_to_the_failed_requests():
    from serve_chaos.harness.observe.hostcpu import host_cpu
    from serve_chaos.harness.observe.probe import Snapshot
    from serve_chaos.harness.report.symptoms import host_text

    snaps = [Snapshot(t=float(t), host_cpu_busy=0.99 if 10 <= t < 14 else 0.5) for t in range(0, 30)]
    figures = host_cpu(snaps, 5.0, 25.0)
    assert figures == {"busy_mean": 0.598, "saturated_s": 4.0}
    assert host_text(figures) == ("; the harness's host was CPU-saturated (>= 95 % busy) for 4 s of the window "
                                  "(mean 60% busy)")
    assert host_text(host_cpu(snaps, 20.0, 25.0)) == "" and host_cpu([Snapshot(t=1.0)], 0.0, 5.0) == {}


def test_the_host_cpu_sampler_reads_a_fraction():
    from serve_chaos.harness.observe.hostcpu import HostCpu

    sampler = HostCpu()
    sum(i * i for i in range(200_000))
    busy = sampler.busy()
    assert busy is None or 0.0 <= busy <= 1.0
