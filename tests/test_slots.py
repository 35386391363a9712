"""Role slots: which pod each per-pod endpoint of the load aims at as pods are recreated, and how
the checks judge a slot whose pod went away (pure logic, no cluster)."""

from __future__ import annotations

import pytest

from serve_chaos.harness.checks import SLO, evaluate_phases
from serve_chaos.harness.checks.endpoints import aimed_at_victims, endpoint_hit, in_scope, is_direct, vacated_until
from serve_chaos.harness.checks.steady import first_steady_state
from serve_chaos.harness.faults import ReplicaKill
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.scenario import Followup
from serve_chaos.harness.load.slots import VACANT, SlotTable
from serve_chaos.runtime.cluster import Endpoints, PodInfo
from serve_chaos.runtime.errors import ConfigError
from tests import synthetic as syn

FRONT = "http://front"


def pod(name: str, role: str = "worker", uid: str | None = None, ip: str = "", ready: bool = True,
        phase: str = "Running", restarts: int = 0) -> PodInfo:
    return PodInfo(name, role, f"node-{name}", ip or f"10.0.0.{len(name)}", phase, ready, uid or f"uid-{name}",
                   restarts)


def endpoints(pods: list[PodInfo]) -> Endpoints:
    return Endpoints(FRONT, "http://d", {p.name: f"http://{p.ip}" for p in pods if p.role != "redis"},
                     {"head": "http://head"})


def start(pods: list[PodInfo], names=("front", "role:head", "pods:worker")) -> SlotTable:
    return SlotTable.start(names, endpoints(pods), {p.name: p.role for p in pods},
                           {p.name for p in pods if p.ready}, {p.name: p.incarnation for p in pods})


def slot(table: SlotTable, name: str):
    return next(t for t in table.targets if t.name == name)


HEAD = pod("head", "head", ip="10.0.0.10")
W1, W2 = pod("worker-1", ip="10.0.0.20"), pod("worker-2", ip="10.0.0.21")


def test_slots_are_named_by_role_and_ordinal_and_a_pod_not_ready_holds_a_vacant_one():
    w3 = pod("worker-3", ready=False, ip="10.0.0.22")
    table = start([HEAD, W1, W2, w3])
    assert [(t.name, t.url, t.pod) for t in table.targets] == [
        ("front", FRONT, None), ("role:head", "http://head", None),
        ("pods:worker#1", "http://10.0.0.20", "worker-1"), ("pods:worker#2", "http://10.0.0.21", "worker-2"),
        ("pods:worker#3", None, "worker-3")]
    assert slot(table, "pods:worker#1").incarnation == "uid-worker-1#0"
    # Once it passes its readiness check (a replica, so a proxy, on its node) it is loaded.
    ready = [HEAD, W1, W2, pod("worker-3", ip="10.0.0.22")]
    assert table.update(ready, endpoints(ready))
    assert (slot(table, "pods:worker#3").url, slot(table, "pods:worker#3").incarnation) == \
        ("http://10.0.0.22", "uid-worker-3#0")
    with pytest.raises(ConfigError):
        start([HEAD, W1], names=("pods:gpu",))


def test_a_pod_recreated_under_its_name_keeps_its_slot_vacant_until_ready():
    """The local target: worker-1 comes back with a new UID and address."""
    table = start([HEAD, W1, W2])
    assert not table.update([HEAD, W1, W2], endpoints([HEAD, W1, W2]))  # nothing moved
    lost = [HEAD, W2, pod("worker-1", uid="uid-new", ip="10.0.0.99", ready=False)]
    assert table.update(lost, endpoints(lost))
    vacant = slot(table, "pods:worker#1")
    assert vacant.url is None and vacant.pod == "worker-1" and vacant.incarnation is None
    assert slot(table, "pods:worker#2").url == "http://10.0.0.21"  # the other slot stays
    back = [HEAD, W2, pod("worker-1", uid="uid-new", ip="10.0.0.99")]
    assert table.update(back, endpoints(back))
    now = slot(table, "pods:worker#1")
    assert (now.url, now.incarnation) == ("http://10.0.0.99", "uid-new#0")
    assert [t["name"] for t in table.dicts()] == ["front", "role:head", "pods:worker#1", "pods:worker#2"]


def test_on_kuberay_the_new_pod_of_the_role_takes_the_vacant_slot():
    """New names on every recreation: the vacant slot takes a ready worker no other slot holds."""
    a, b = pod("rc-wg-worker-aaaaa"), pod("rc-wg-worker-bbbbb")
    table = start([HEAD, a, b])
    c = pod("rc-wg-worker-ccccc", ready=False)
    table.update([HEAD, b, c], endpoints([HEAD, b, c]))
    assert slot(table, "pods:worker#1").url is None
    c = pod("rc-wg-worker-ccccc")
    table.update([HEAD, b, c], endpoints([HEAD, b, c]))
    assert (slot(table, "pods:worker#1").pod, slot(table, "pods:worker#2").pod) == ("rc-wg-worker-ccccc",
                                                                                    "rc-wg-worker-bbbbb")


def test_both_slots_vacated_at_once_are_filled_in_order():
    a, b = pod("rc-w-aaaaa"), pod("rc-w-bbbbb")
    table = start([HEAD, a, b])
    d, c = pod("rc-w-ddddd"), pod("rc-w-ccccc")
    table.update([HEAD, d, c], endpoints([HEAD, d, c]))
    assert [slot(table, f"pods:worker#{i}").pod for i in (1, 2)] == ["rc-w-ccccc", "rc-w-ddddd"]


def test_a_pod_that_stays_but_stops_answering_keeps_its_slot():
    """A partitioned or unready pod is the same incarnation: its failures are the fault's."""
    table = start([HEAD, W1, W2])
    cut = [HEAD, pod("worker-1", ip="10.0.0.20", ready=False), W2]
    assert not table.update(cut, endpoints(cut))
    assert slot(table, "pods:worker#1").url == "http://10.0.0.20"


def test_a_container_restarted_in_place_is_a_new_incarnation():
    table = start([HEAD, W1, W2])
    restarted = [HEAD, pod("worker-1", ip="10.0.0.20", ready=False, restarts=1), W2]
    table.update(restarted, endpoints(restarted))
    assert slot(table, "pods:worker#1").url is None
    ready = [HEAD, pod("worker-1", ip="10.0.0.20", restarts=1), W2]
    table.update(ready, endpoints(ready))
    assert slot(table, "pods:worker#1").incarnation == "uid-worker-1#1"


def test_a_named_pod_slot_follows_its_pod_too():
    table = start([HEAD, W1, W2], names=("pod:worker-2",))
    back = [HEAD, W1, pod("worker-2", uid="uid-2b", ip="10.0.0.77")]
    table.update(back, endpoints(back))
    assert [(t.name, t.url) for t in table.targets] == [("pod:worker-2", "http://10.0.0.77")]


def test_endpoint_names_the_checks_know():
    assert is_direct("pods:worker#1") and is_direct("pod:worker-1") and is_direct("role:head")
    assert not is_direct("front")
    assert in_scope("pods:worker#2", "worker", "pods:worker") and not in_scope("pods:worker#2", "head", "pods:worker")
    assert in_scope("pods:worker#2", "worker", "pods:worker#2") and not in_scope("pods:worker#1", "worker",
                                                                                  "pods:worker#2")


# ---------------------------------------------------------------------- judging a slot
RATE = 10.0
VICTIM = {"role": "pod", "name": "worker-1", "uid": "u1", "restarts": 0}


def slot_records(t_fault: float, t_vacant: float, t_back: float, t1: float, seq0: int, stride: int = 2) -> list[dict]:
    """Requests of slot ``pods:worker#1`` (every ``stride``-th sequence number): on incarnation
    u1 until the fault, timing out on it until ``t_vacant``, vacant until ``t_back``, then on u2."""
    out = []
    n = int((t1 - 0) * RATE)
    for i in range(n):
        t = i / RATE
        rec = {"seq": seq0 + i * stride, "t": t, "t_sent": t, "endpoint": "pods:worker#1", "role": "worker",
               "ok": True, "error": None, "status": 200, "pid": None, "latency_ms": 2.0}
        if t < t_vacant:
            rec.update(pod="worker-1", incarnation="u1#0", address="http://a")
            if t >= t_fault:
                rec.update(ok=False, error="timeout", status=None)
        elif t < t_back:
            rec.update(pod="worker-1", incarnation=None, address=None, ok=False, error=VACANT, t_sent=None)
        else:
            rec.update(pod="worker-1", incarnation="u2#0", address="http://b")
        out.append(rec)
    return out


def front_records(t1: float) -> list[dict]:
    reqs = syn.requests(0, t1, RATE)
    for i, r in enumerate(reqs):
        r["seq"] = 2 * i + 1
    return reqs


def test_a_slot_is_judged_again_from_when_its_pod_is_back():
    reqs = front_records(40) + slot_records(10, 14, 18, 40, 0)
    snaps = [syn.snapshot(float(t), syn.BASE_REPLICAS + syn.BASE_SYSTEM) for t in range(41)]
    fault = FaultRecord("node_loss", 10.0, 10.0, victims=[VICTIM])
    hist = syn.history(reqs, snaps, [fault])
    assert len(hist.unsent) == 40 and not (hist.requests["error"] == VACANT).any()
    assert aimed_at_victims(hist.requests, [VICTIM]).sum() == 140
    assert vacated_until(hist, [VICTIM]) == {"pods:worker#1": 14.0}
    t_ok, _ = first_steady_state(hist, 16.0, 3.0, fault.victims)
    assert t_ok == 16.0  # only the dead incarnation's requests failed
    # Once back, the slot counts: its new pod failing keeps the cluster from steady state.
    broken = [dict(r, ok=False, error="refused") if r.get("incarnation") == "u2#0" and r["t"] < 30 else r
              for r in reqs]
    t_ok, reason = first_steady_state(syn.history(broken, snaps, [fault]), 16.0, 3.0, fault.victims)
    assert t_ok == 30.0
    t_ok, reason = first_steady_state(syn.history(broken, snaps[:30], [fault]), 16.0, 3.0, fault.victims)
    assert t_ok is None and "requests failed" in reason


def test_requests_hanging_on_a_dead_pod_hold_judging_back_only_until_the_slot_moved_on():
    reqs = [r for r in front_records(30) + slot_records(10, 14, 18, 30, 0)
            if not (r["endpoint"] == "pods:worker#1" and 12 <= r["t"] < 14)]  # still in flight
    fault = FaultRecord("node_loss", 10.0, 10.0, victims=[VICTIM])
    hist = History.build(reqs, faults=[fault], load_timeout_s=30.0)
    assert hist.judged_until() == pytest.approx(12.0, abs=0.1)
    assert hist.judged_until(vacated_until(hist, [VICTIM])) == float("inf")
    # The new pod's requests in flight still hold it back.
    late = [r for r in reqs if not (r["endpoint"] == "pods:worker#1" and 20 <= r["t"] < 21)]
    hist = History.build(late, faults=[fault], load_timeout_s=30.0)
    assert hist.judged_until(vacated_until(hist, [VICTIM])) == pytest.approx(20.0, abs=0.1)


def test_the_pod_behind_a_slot_is_read_from_its_records():
    recs = slot_records(10, 14, 18, 40, 0)
    for r in recs:
        if r.get("incarnation") == "u2#0":
            r["pod"] = "rc-worker-new"  # KubeRay: the successor has another name
    hist = syn.history(recs, [], [])
    hit_new = FaultRecord("pod_kill", 30.0, 30.0, victims=[{"role": "pod", "name": "rc-worker-new", "uid": "u2"}])
    hit_old = FaultRecord("pod_kill", 5.0, 5.0, victims=[VICTIM])
    assert endpoint_hit("pods:worker#1", "worker", hit_new, hist)
    assert not endpoint_hit("pods:worker#1", "worker", FaultRecord("pod_kill", 30.0, 30.0, victims=[VICTIM]), hist)
    assert endpoint_hit("pods:worker#1", "worker", hit_old, hist)


def test_a_follow_up_is_judged_from_the_previous_faults_recovery():
    """Failures of the first fault never reach the second's figures, not even its whole-slice ones."""
    reqs = syn.requests(0, 60, RATE, fail=lambda t: "5xx" if 10 <= t < 14 else None)
    snaps = [syn.snapshot(float(t), syn.BASE_REPLICAS + syn.BASE_SYSTEM) for t in range(61)]
    first = FaultRecord("x", 10.0, 10.0, victims=[], phase="main", t_recovered_observed=15.0)
    second = FaultRecord("x", 30.0, 30.0, victims=[], phase="again", t_recovered_observed=31.0)
    phases = [Followup("main", ReplicaKill(), SLO(min_availability=0.5), {}),
              Followup("again", ReplicaKill(), SLO(min_availability=1.0), {})]
    ev = evaluate_phases(syn.history(reqs, snaps, [first, second]), phases, 3.0)
    later = ev.metrics["followups"]["again"]
    assert later["window"]["start"] == 15.0 and later["failed"] == 0 and later["availability"] == 1.0
    assert ev.metrics["failed"] == 40
    assert {c.name: c.status for c in ev.checks}["again.front.availability"] == "pass"


def test_serve_when_ready_follows_a_slot_to_its_new_pod():
    """KubeRay: the slot's pod comes back under a new name; once it is ready its requests must
    succeed, and the dead pod's timeouts are not charged to it."""
    from serve_chaos.harness.checks import serve_when_ready

    def pod_list(t: float) -> list[dict]:
        pods = [p for p in syn.pods() if p["name"] != "worker-1" or t < 10]
        if t >= 12:
            pods.append({"name": "rc-new", "role": "worker", "ip": "10.0.0.99", "phase": "Running",
                         "ready": t >= 18, "uid": "u2", "node": "node-x", "restarts": 0})
        return pods

    def records(fail_new_until: float) -> list[dict]:
        recs = slot_records(10, 14, 18, 40, 0)
        for r in recs:
            if r.get("incarnation") == "u2#0":
                r["pod"] = "rc-new"
                if r["t"] < fail_new_until:
                    r.update(ok=False, error="timeout", status=None)
        return recs

    snaps = [syn.snapshot(float(t), syn.BASE_REPLICAS + syn.BASE_SYSTEM, pod_list=pod_list(t)) for t in range(40)]
    fault = FaultRecord("node_loss", 10.0, 10.0, victims=[VICTIM])
    good = serve_when_ready(syn.history(records(0), snaps, [fault]), fault)
    assert good.status == "pass", good.detail
    bad = serve_when_ready(syn.history(records(20), snaps, [fault]), fault)
    assert bad.status == "fail" and bad.value == 20 and bad.detail.startswith("rc-new: 20 timeout from 8.0 s")


def test_serve_when_ready_does_not_charge_the_dead_incarnation_to_its_successor():
    """Locally the recreated pod keeps its name: requests still aimed at the dead incarnation
    after the new one became ready (the load picks the new address up within a second or two)
    are the old pod's, not the new one's."""
    from serve_chaos.harness.checks import serve_when_ready

    def pod_list(t: float) -> list[dict]:
        return [dict(p, ready=not (10 <= t < 18), uid="u2" if t >= 12 else "u1") if p["name"] == "worker-1" else p
                for p in syn.pods()]

    recs = slot_records(10, 20, 20, 40, 0)  # aimed at u1 (timing out) until 20, then at u2
    snaps = [syn.snapshot(float(t), syn.BASE_REPLICAS + syn.BASE_SYSTEM, pod_list=pod_list(t)) for t in range(40)]
    fault = FaultRecord("node_loss", 10.0, 10.0, victims=[VICTIM])
    assert serve_when_ready(syn.history(recs, snaps, [fault]), fault).status == "pass"
    unnamed = [dict(r, incarnation=None) for r in recs]  # without incarnations, the name is all there is
    assert serve_when_ready(syn.history(unnamed, snaps, [fault]), fault).status == "fail"
