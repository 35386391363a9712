"""Checks on crafted timelines, with exact expected figures."""

from __future__ import annotations

import pytest

from serve_chaos.harness import checks
from serve_chaos.harness.checks import (
    FAIL,
    PASS,
    SLO,
    UNKNOWN,
    availability,
    check_churn,
    churn,
    evaluate,
    fault_effect,
    first_steady_state,
    first_success_after,
    latency_percentiles,
    longest_outage,
    outage_windows,
    proxy_restarted_by_ray,
    service_restored_after,
)
from serve_chaos.harness.observe.history import FaultRecord, requests_frame
from tests import synthetic as syn

RATE = 10.0


def fail_between(*spans: tuple[float, float], kind: str = "refused"):
    return lambda t: kind if any(a <= t < b for a, b in spans) else None


# ---------------------------------------------------------------------- availability / outages
def test_availability_counts_exactly():
    df = requests_frame(syn.requests(0, 60, RATE, fail=fail_between((30, 32))))
    assert len(df) == 600
    assert availability(df) == pytest.approx(580 / 600)
    assert availability(df, 30, 32) == 0.0
    assert availability(df, 0, 30) == 1.0
    assert availability(df, 100, 200) is None


def test_outage_window_runs_from_first_failure_to_next_success():
    df = requests_frame(syn.requests(0, 60, RATE, fail=fail_between((30, 32), (40, 40.5))))
    windows = outage_windows(df)
    assert [(w.start, w.end, w.failures, w.closed) for w in windows] == [
        (pytest.approx(30.0), pytest.approx(32.0), 20, True),
        (pytest.approx(40.0), pytest.approx(40.5), 5, True),
    ]
    assert longest_outage(windows).duration == pytest.approx(2.0)
    assert first_success_after(windows, 29.5) == pytest.approx(2.5)
    assert service_restored_after(windows, 29.5) == pytest.approx(11.0)
    # A fault after every outage: nothing failed after it.
    assert first_success_after(windows, 50.0) == 0.0


def test_open_outage_at_the_end_has_no_first_success():
    df = requests_frame(syn.requests(0, 60, RATE, fail=fail_between((55, 61))))
    (window,) = outage_windows(df)
    assert not window.closed
    assert window.start == pytest.approx(55.0)
    assert window.end == pytest.approx(59.9)
    assert window.duration == pytest.approx(4.9)
    assert first_success_after([window], 50.0) is None


def test_outages_are_per_endpoint():
    reqs = syn.requests(0, 10, RATE, endpoint="front") + syn.requests(
        0, 10, RATE, endpoint="pod:worker-1", fail=fail_between((2, 5)), seq0=None)
    windows = outage_windows(requests_frame(reqs))
    assert [(w.endpoint, round(w.duration, 6)) for w in windows] == [("pod:worker-1", 3.0)]


def test_single_failure_is_a_one_interval_blip():
    df = requests_frame(syn.requests(0, 10, RATE, fail=lambda t: "5xx" if abs(t - 5.0) < 1e-9 else None))
    (window,) = outage_windows(df)
    assert window.duration == pytest.approx(0.1)
    assert checks.error_classes(df) == {"5xx": 1}


def test_latency_percentiles_of_successes_only():
    df = requests_frame(syn.requests(0, 10, RATE))
    lat = latency_percentiles(df)
    # latencies are 2.0 + (i % 100)/10 for i in 0..99: p50 = 2.0 + 4.95
    assert lat["p50_ms"] == pytest.approx(6.95)
    assert lat["p99_ms"] == pytest.approx(2.0 + 9.801)
    empty = latency_percentiles(df, 100, 200)
    assert empty == {"p50_ms": None, "p90_ms": None, "p99_ms": None}


# ---------------------------------------------------------------------- a replica-kill timeline
FAULT_T = 20.0
VICTIM = syn.replica(103, "worker-1")
NEW = syn.replica(107, "worker-1")


def replicas_at(t: float) -> list[dict]:
    others = [r for r in syn.BASE_REPLICAS if r["pid"] != 103]
    if t < 23:  # Ray has not noticed the death yet
        return syn.BASE_REPLICAS
    if t < 33:  # replacement constructing (10 s sleep)
        return others + [dict(NEW, state="STARTING")]
    return others + [NEW]


def pid_at(i: int, t: float) -> int:
    running = [r for r in replicas_at(t) if r["state"] == "RUNNING"]
    if 20 <= t < 23:
        running = [r for r in running if r["pid"] != 103]
    return syn.pid_local(i, t, running)


def replica_kill_history(fail=lambda t: None, victims=None):
    reqs = syn.requests(0, 60, RATE, fail=fail, pid_of=pid_at, pod_of=syn.pod_of_round_robin)
    snaps = [syn.snapshot(t + 0.5, replicas_at(t + 0.5) + syn.BASE_SYSTEM) for t in range(60)]
    fault = FaultRecord("replica_kill", FAULT_T, FAULT_T + 0.1,
                        victims=victims if victims is not None else [dict(VICTIM)])
    return syn.history(reqs, snaps, [fault])


def test_recovery_is_first_steady_window_after_the_fault():
    hist = replica_kill_history()
    t, reason = first_steady_state(hist, FAULT_T, hold_s=5.0, victims=hist.faults[0].victims)
    assert reason == ""
    assert t == pytest.approx(33.5)


def test_steady_state_without_victims_would_be_fooled_by_stale_status():
    # Before Ray notices, the old replica set still looks steady: victims matter.
    hist = replica_kill_history()
    t, _ = first_steady_state(hist, FAULT_T, hold_s=2.0, victims=[])
    assert t == pytest.approx(20.5)


def test_churn_names_exactly_the_replaced_pid():
    hist = replica_kill_history()
    before = checks.snapshot_before(hist, FAULT_T)
    after = checks.snapshot_at_or_after(hist, 33.5)
    observed = churn(before, after)
    assert observed["replica"]["left"] == ["a103:103"]
    assert observed["replica"]["appeared"] == ["a107:107"]
    assert observed["proxy"]["left"] == observed["proxy"]["appeared"] == []
    assert check_churn("replica", "victims", observed, hist.faults[0].victims).status == PASS
    assert check_churn("proxy", "none", observed, []).status == PASS
    assert check_churn("replica", "none", observed, []).status == FAIL
    assert check_churn("replica", "all", observed, []).status == FAIL
    assert check_churn("replica", "at_least_victims", observed, hist.faults[0].victims).status == PASS
    assert check_churn("replica", "victims", None, []).status == UNKNOWN


def test_evaluate_replica_kill_passes_with_exact_figures():
    hist = replica_kill_history()
    ev = evaluate(hist, SLO(min_availability_during_fault=0.999, max_outage_s=1.0, max_recovery_s=30.0),
                  {"replica": "victims", "proxy": "none", "controller": "none", "pod": "none"})
    assert ev.status == PASS, [c.line() for c in ev.violations()]
    assert ev.metrics["recovery_s"] == pytest.approx(13.5)
    assert ev.metrics["endpoints"]["front"]["longest_outage_s"] == 0.0
    assert ev.metrics["endpoints"]["front"]["first_success_s"] == 0.0
    effect = next(c for c in ev.checks if c.name == "fault.took_effect")
    assert effect.status == PASS
    assert effect.value == pytest.approx(3.5)  # first probe without it: 23.5


def test_evaluate_reports_one_line_per_violation():
    hist = replica_kill_history(fail=fail_between((25, 27.05), kind="5xx"))
    ev = evaluate(hist, SLO(min_availability_during_fault=0.999, max_outage_s=1.0, max_recovery_s=10.0),
                  {"replica": "victims"})
    assert ev.status == FAIL
    lines = {c.name: c.line() for c in ev.violations()}
    assert set(lines) == {"front.availability_during_fault", "front.longest_outage_s", "recovery_s"}
    assert lines["front.longest_outage_s"] == "front.longest_outage_s = 2.10 s (bound <= 1.0 s)"
    assert lines["recovery_s"] == "recovery_s = 13.50 s (bound <= 10.0 s)"
    # 21 failures out of the requests sent during the fault (20.0 .. 33.5: 135 requests)
    assert ev.metrics["endpoints"]["front"]["availability_during_fault"] == pytest.approx(114 / 135)


def test_a_fault_that_changed_nothing_fails():
    # The victim never leaves: e.g. ray.kill hit nothing.
    hist = replica_kill_history(victims=[syn.replica(101, "head")])
    result = fault_effect(hist, hist.faults[0])
    assert result.status == FAIL
    ev = evaluate(hist, SLO(max_recovery_s=30.0), {"replica": "victims"})
    assert ev.status == FAIL
    assert ev.metrics["recovery_s"] is None


def test_fault_effect_unknown_without_probes_and_fail_without_victims():
    hist = replica_kill_history()
    hist.snapshots = [s for s in hist.snapshots if s.t < FAULT_T]
    assert fault_effect(hist, hist.faults[0]).status == UNKNOWN
    empty = FaultRecord("replica_kill", FAULT_T, FAULT_T, victims=[])
    assert fault_effect(hist, empty).status == FAIL


def test_no_recovery_before_deadline_fails_recovery_slo():
    hist = replica_kill_history()
    hist.snapshots = [s for s in hist.snapshots if s.t < 30]
    ev = evaluate(hist, SLO(max_recovery_s=30.0), {})
    check = next(c for c in ev.checks if c.name == "recovery_s")
    assert check.status == FAIL
    assert "no steady state" in check.detail


# ---------------------------------------------------------------------- steady-state details
def test_dashboard_outage_blocks_steady_state():
    snaps = [syn.snapshot(float(t), syn.BASE_REPLICAS + syn.BASE_SYSTEM, ok=not 5 <= t < 8) for t in range(20)]
    hist = syn.history([], snaps)
    t, _ = first_steady_state(hist, 0.0, hold_s=3.0)
    assert t == 0.0
    t, _ = first_steady_state(hist, 3.0, hold_s=3.0)
    assert t == 8.0


def test_two_controllers_or_a_missing_proxy_is_not_steady():
    two = syn.BASE_REPLICAS + syn.BASE_SYSTEM + [syn.controller(301)]
    hist = syn.history([], [syn.snapshot(float(t), two) for t in range(10)])
    t, reason = first_steady_state(hist, 0.0, 3.0)
    assert t is None and "2 Serve controllers" in reason
    no_proxy = syn.BASE_REPLICAS + [p for p in syn.BASE_SYSTEM if p.get("pod") != "worker-2" or p["role"] != "proxy"]
    hist = syn.history([], [syn.snapshot(float(t), no_proxy) for t in range(10)])
    t, reason = first_steady_state(hist, 0.0, 3.0)
    assert t is None and "HEALTHY proxy" in reason


def test_proxy_that_never_reaches_a_new_replica_is_not_steady():
    # worker-1's proxy keeps answering only from 104 after 107 joined (stale routing).
    def stale_pid(i, t):
        pid = pid_at(i, t)
        return 104 if pid == 107 else pid

    # Enough traffic that a proxy's window holds 10 requests per local replica.
    reqs = syn.requests(0, 60, 2 * RATE, pid_of=stale_pid, pod_of=syn.pod_of_round_robin)
    snaps = [syn.snapshot(t + 0.5, replicas_at(t + 0.5) + syn.BASE_SYSTEM) for t in range(60)]
    hist = syn.history(reqs, snaps, [FaultRecord("replica_kill", FAULT_T, FAULT_T, victims=[dict(VICTIM)])])
    t, reason = first_steady_state(hist, FAULT_T, 5.0, hist.faults[0].victims)
    assert t is None
    assert "did not reach replicas 107" in reason
    # Too few requests to tell a missed replica from chance: not judged.
    sparse = syn.requests(0, 60, RATE / 2, pid_of=stale_pid, pod_of=syn.pod_of_round_robin)
    hist = syn.history(sparse, snaps, [FaultRecord("replica_kill", FAULT_T, FAULT_T, victims=[dict(VICTIM)])])
    assert "did not reach" not in first_steady_state(hist, FAULT_T, 5.0, hist.faults[0].victims)[1]


def test_answers_from_a_replica_outside_the_running_set_are_stale():
    reqs = syn.requests(0, 20, RATE, pid_of=lambda i, t: 999 if i % 3 == 0 else syn.pid_local(i, t),
                        pod_of=syn.pod_of_round_robin)
    hist = syn.history(reqs, [syn.snapshot(t + 0.5, syn.BASE_REPLICAS + syn.BASE_SYSTEM) for t in range(20)])
    t, reason = first_steady_state(hist, 0.0, 5.0)
    assert t is None and "not RUNNING: pid:999" in reason


def test_requests_still_in_flight_are_not_judged():
    reqs = syn.requests(0, 20, RATE)
    del reqs[150]  # seq 150 (t=15.0) has not completed yet
    hist = syn.history(reqs, [syn.snapshot(float(t), syn.BASE_REPLICAS + syn.BASE_SYSTEM) for t in range(20)])
    assert hist.judged_until() == pytest.approx(15.0)
    assert len(hist.judged_requests()) == 150
    # A window must end by 15.0 to be judged.
    assert first_steady_state(hist, 11.0, 3.0) == (11.0, "")
    t, reason = first_steady_state(hist, 12.5, 3.0)
    assert t is None and reason == "waiting for request outcomes"


# ---------------------------------------------------------------------- scenario-specific checks
def test_proxy_restarted_by_ray_pass_and_fail():
    victim = syn.proxy(202, "worker-1", actor_id="pA")
    fault = FaultRecord("proxy_kill", 10.0, 10.1, victims=[victim])
    same_actor = [syn.snapshot(float(t), syn.BASE_REPLICAS + [syn.proxy(202 if t < 12 else 250, "worker-1", "pA")])
                  for t in range(20)]
    result = proxy_restarted_by_ray(syn.history([], same_actor, [fault]), fault)
    assert result.status == PASS and result.value == pytest.approx(2.0)
    new_actor = [syn.snapshot(float(t), syn.BASE_REPLICAS + ([syn.proxy(202, "worker-1", "pA")] if t < 11 else
                                                             [] if t < 40 else [syn.proxy(260, "worker-1", "pB")]))
                 for t in range(50)]
    result = proxy_restarted_by_ray(syn.history([], new_actor, [fault]), fault)
    assert result.status == FAIL
    assert "replaced it 30.0 s after the kill" in result.detail


def test_other_pods_availability_excludes_the_victims_pod():
    reqs = (syn.requests(0, 40, RATE, endpoint="pod:worker-1", fail=fail_between((20, 30))) +
            syn.requests(0, 40, RATE, endpoint="pod:worker-2", seq0=None))
    snaps = [syn.snapshot(float(t), syn.BASE_REPLICAS + syn.BASE_SYSTEM) for t in range(40)]
    fault = FaultRecord("proxy_kill", 20.0, 20.0, victims=[syn.proxy(202, "worker-1")])
    ev = evaluate(syn.history(reqs, snaps, [fault]),
                  SLO(other_pods_min_availability_during_fault=1.0, primary_endpoint="pod:worker-2"), {})
    other = next(c for c in ev.checks if c.name == "other_pods.availability_during_fault")
    assert other.status == PASS and other.value == 1.0 and "pod:worker-2 of 1" in other.detail
    assert ev.metrics["endpoints"]["pod:worker-1"]["longest_outage_s"] == pytest.approx(10.0)


def test_extra_check_that_crashes_is_unknown():
    def broken(history, fault):
        raise KeyError("boom")

    ev = evaluate(replica_kill_history(), SLO(), {}, extra_checks=(broken,))
    crashed = next(c for c in ev.checks if c.name == "broken")
    assert crashed.status == UNKNOWN
    assert ev.status == UNKNOWN


def test_slo_rejects_nonsense_bounds():
    with pytest.raises(ValueError):
        SLO(min_availability=1.5)
    with pytest.raises(ValueError):
        SLO(max_recovery_s=-1)
    with pytest.raises(ValueError):
        SLO(endpoint_availability={"front": 2.0})


def test_a_lost_request_does_not_hold_judging_back_forever():
    reqs = syn.requests(0, 30, RATE)
    del reqs[50]  # seq 50 (t=5.0) never recorded, yet sends continued 25 s beyond it: lost, not in flight
    hist = syn.history(reqs, [], load_timeout_s=5.0)
    assert hist.judged_until() == float("inf")
    assert len(hist.judged_requests()) == 299


def test_phase_evaluation_slices_the_timeline_per_fault():
    from serve_chaos.harness.checks import evaluate_phases
    from serve_chaos.harness.faults import MassReplicaKill, ReplicaKill
    from serve_chaos.harness.scenario import Followup, Scenario

    sc = Scenario(name="two", title="t", promise="p", fault=ReplicaKill(), slo=SLO(max_recovery_s=30.0),
                  expected_churn={"replica": "victims"},
                  followups=(Followup("again", MassReplicaKill(), SLO(max_recovery_s=5.0), {"replica": "all"}),))
    hist = replica_kill_history()
    second = FaultRecord("all_replicas_kill", 45.0, 45.0, victims=[syn.replica(101, "head")], phase="again")
    hist.faults.append(second)
    ev = evaluate_phases(hist, sc.phases(), sc.hold_s)
    names = {c.name: c.status for c in ev.checks}
    assert names["recovery_s"] == PASS
    assert ev.metrics["recovery_s"] == pytest.approx(13.5)
    # 101 never leaves in this timeline: the follow-up changed nothing and never recovered.
    assert names["again.fault.took_effect"] == FAIL
    assert names["again.recovery_s"] == FAIL
    assert "again" in ev.metrics["followups"]


def test_victims_left_ignores_what_appeared():
    observed = {"proxy": {"before": ["p1:1", "p2:2", "p3:3"], "after": ["p1:1", "p2:2"], "left": ["p3:3"],
                          "appeared": []}}
    victims = [{"role": "proxy", "actor_id": "p3", "pid": 3}]
    assert check_churn("proxy", "victims_left", observed, victims).status == PASS
    assert check_churn("proxy", "victims", observed, victims).status == FAIL
    observed["proxy"]["left"] = ["p2:2", "p3:3"]
    assert check_churn("proxy", "victims_left", observed, victims).status == FAIL


def test_restarted_actor_with_same_id_is_a_new_incarnation():
    victim = syn.controller(300)
    restarted = dict(syn.controller(301), actor_id=victim["actor_id"])
    snap = syn.snapshot(1.0, syn.BASE_REPLICAS + [restarted])
    assert not checks.victim_present(snap, victim)
    assert checks.victim_present(syn.snapshot(1.0, syn.BASE_REPLICAS + [victim]), victim)


def test_pod_that_is_ready_again_must_serve():
    from serve_chaos.harness.checks import serve_when_ready

    def pod_list(t):
        ready = not (10 <= t < 20)
        return [dict(p, ready=ready if p["name"] == "worker-1" else True) for p in syn.pods()]

    # worker-1 is back in rotation from t=20 but its requests time out until t=25.
    reqs = syn.requests(0, 40, RATE, endpoint="pod:worker-1",
                        fail=lambda t: "timeout" if 10 <= t < 25 else None)
    snaps = [syn.snapshot(float(t), syn.BASE_REPLICAS + syn.BASE_SYSTEM, pod_list=pod_list(t)) for t in range(40)]
    fault = FaultRecord("pod_kill", 9.5, 9.5, victims=[{"role": "pod", "name": "worker-1", "uid": "x"}])
    result = serve_when_ready(syn.history(reqs, snaps, [fault]), fault)
    assert result.status == FAIL and result.value == 50
    assert "worker-1: 50 timeout from 10.5 s to 15.4 s" in result.detail
    healthy = syn.requests(0, 40, RATE, endpoint="pod:worker-1", fail=lambda t: "timeout" if 10 <= t < 20 else None)
    assert serve_when_ready(syn.history(healthy, snaps, [fault]), fault).status == PASS


def test_jsonl_tail_parses_each_line_once_and_waits_for_half_lines(tmp_path):
    from serve_chaos.harness.observe.history import JsonlTail

    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')
    tail = JsonlTail(path)
    assert tail.read() == [{"a": 1}]
    with path.open("a") as fh:
        fh.write('}\n{"a": 3}\n')
    assert tail.read() == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_failure_span_counts_interleaved_errors():
    from serve_chaos.harness.checks import failure_span

    df = requests_frame(syn.requests(0, 30, RATE, fail=lambda t: "5xx" if 10 <= t < 16 and int(t * 10) % 3 == 0 else None))
    assert failure_span(df, 5.0) == pytest.approx(5.7)  # first failure at 10.2, last at 15.9
    assert failure_span(df, 20.0) == 0.0


def test_idle_proxies_may_go_with_a_node_loss():
    before = syn.snapshot(0.0, [syn.replica(101, "head"), syn.replica(105, "worker-2")] + syn.BASE_SYSTEM)
    after = syn.snapshot(9.0, [syn.replica(101, "head"), syn.replica(107, "worker-1")]
                         + [syn.proxy(201, "head"), syn.proxy(250, "worker-1"), syn.controller(300)])
    observed = churn(before, after)
    assert observed["proxy"]["idle_before"] == ["p202:202"]  # worker-1 had no replica
    victims = [syn.proxy(203, "worker-2")]
    assert check_churn("proxy", "victims_or_idle", observed, victims).status == PASS
    assert check_churn("proxy", "victims_left", observed, victims).status == FAIL


def test_a_proxy_serve_drained_and_brought_back_is_not_churn():
    # worker-2 lost its only replica to a failed rollout: Serve drained its proxy, stopped it,
    # and started a new one once the good version put a replica back there.
    before = syn.snapshot(0.0, [syn.replica(101, "head"), syn.replica(104, "worker-1"), syn.replica(105, "worker-2")]
                          + syn.BASE_SYSTEM)
    gap = [syn.replica(101, "head"), syn.replica(104, "worker-1"), syn.proxy(201, "head"), syn.proxy(202, "worker-1"),
           syn.proxy(203, "worker-2", state="DRAINING"), syn.controller(300)]
    after = syn.snapshot(60.0, [syn.replica(101, "head"), syn.replica(104, "worker-1"), syn.replica(108, "worker-2"),
                                syn.proxy(201, "head"), syn.proxy(202, "worker-1"), syn.proxy(260, "worker-2"),
                                syn.controller(300)])
    observed = churn(before, after, [syn.snapshot(40.0, gap)])
    result = check_churn("proxy", "none", observed, [])
    assert result.status == PASS
    assert result.value["drained_by_serve"] == {"left": ["p203:203"], "appeared": ["p260:260"]}
    # Without the probe that saw it DRAINING, the same change is churn.
    assert check_churn("proxy", "none", churn(before, after), []).status == FAIL
    # A proxy killed on purpose stays the fault's victim even if Serve drained it first.
    assert check_churn("proxy", "none", observed, [syn.proxy(203, "worker-2")]).status == FAIL
    # A victim's replacement elsewhere stays in the count beside a proxy Serve drained on its own.
    killed = syn.snapshot(60.0, [a for a in after.actors if a.get("pid") != 202] + [syn.proxy(271, "worker-1")])
    both = churn(before, killed, [syn.snapshot(40.0, gap)])
    assert check_churn("proxy", "victims", both, [syn.proxy(202, "worker-1")]).status == PASS
    # Drained, then turned HEALTHY again and crashed: the last state before it left decides.
    undrained = [dict(a, state="HEALTHY") if a.get("pid") == 203 else a for a in gap]
    assert check_churn("proxy", "none", churn(before, after, [syn.snapshot(40.0, gap), syn.snapshot(50.0, undrained)]),
                       []).status == FAIL
    # A second proxy that left without draining is still churn.
    crashed = syn.snapshot(60.0, [a for a in after.actors if a.get("pid") != 202] + [syn.proxy(270, "worker-1")])
    assert check_churn("proxy", "none", churn(before, crashed, [syn.snapshot(40.0, gap)]), []).status == FAIL


def test_requests_hanging_on_a_dead_endpoint_do_not_hold_judging_back():
    # Two endpoints in turn (even seqs front, odd seqs pod:worker-1); worker-1's
    # requests from t=10 on are still hanging (sends go on until t=12).
    reqs = []
    for i in range(240):
        t = i * 0.05
        ep = "front" if i % 2 == 0 else "pod:worker-1"
        if ep == "pod:worker-1" and t >= 10:
            continue
        reqs.append({"seq": i, "t": t, "t_sent": t, "endpoint": ep, "ok": True, "error": None, "status": 200,
                     "pid": 101, "pod": "head", "latency_ms": 1.0})
    hist = syn.history(reqs, [], load_timeout_s=5.0)
    assert hist.judged_until() == pytest.approx(10.05)
    assert hist.judged_until({"pod:worker-1"}) == float("inf")
    assert len(hist.judged_requests({"pod:worker-1"})) == len(reqs)


def test_observed_recovery_survives_an_early_follow_up():
    from serve_chaos.harness.checks import evaluate_phases
    from serve_chaos.harness.faults import MassReplicaKill, ReplicaKill
    from serve_chaos.harness.scenario import Followup, Scenario

    sc = Scenario(name="two", title="t", promise="p", fault=ReplicaKill(), slo=SLO(max_recovery_s=30.0),
                  expected_churn={"replica": "victims"},
                  followups=(Followup("again", MassReplicaKill(), SLO(), {"replica": "any"}),))
    hist = replica_kill_history()
    hist.faults.append(FaultRecord("all_replicas_kill", 37.0, 37.0, victims=[], phase="again"))
    # Requests in flight when the follow-up hit are cut from the first slice, so the
    # slice alone no longer holds a judged 3 s window after 33.5 ...
    ev = evaluate_phases(hist, sc.phases(), sc.hold_s)
    assert {c.name: c.status for c in ev.checks}["recovery_s"] == FAIL
    # ... but the engine saw it while observing, from the history as it was then.
    hist.faults[0].t_recovered_observed = 33.5
    ev = evaluate_phases(hist, sc.phases(), sc.hold_s)
    assert ev.metrics["recovery_s"] == pytest.approx(13.5)
    assert {c.name: c.status for c in ev.checks}["recovery_s"] == PASS


def test_a_plain_pod_delete_may_lose_requests_in_flight_but_none_sent_after_it():
    from serve_chaos.harness.checks.inflight import failures_sent_after, in_flight_losses

    record = FaultRecord("pod_kill", 10.0, 10.5, [], params={"pod": "worker-2"})

    def run(front_fail, pod_fail=lambda t: "refused" if t >= 8.0 else None):
        reqs = (syn.requests(0, 30, 2.0, "front", fail=front_fail)
                + syn.requests(0, 30, 2.0, "pod:worker-2", fail=pod_fail, seq0=None))
        for r in reqs:
            r["latency_ms"] = 2000.0  # every request does 2 s of work
        return syn.history(reqs, [syn.snapshot(t, syn.BASE_REPLICAS + syn.BASE_SYSTEM) for t in range(0, 31, 2)],
                           [record])

    # The front door lost what it had in flight through the dying pod; the pod's own endpoint is down.
    kept = run(lambda t: "reset" if 8.5 <= t < 10.0 else None)
    assert failures_sent_after(kept, record).status == PASS
    losses = in_flight_losses(kept, record)["in_flight"]
    assert losses["front"] == {"in_flight": 4, "failed": 3} and losses["pod:worker-2"]["failed"] == 4
    # A request sent 3 s after the delete failed through the front door: the delete cost more than in-flight work.
    broken = run(lambda t: "reset" if t == 13.0 else None)
    result = failures_sent_after(broken, record)
    assert result.status == FAIL and result.value == 1 and "3.0 s after" in result.detail
