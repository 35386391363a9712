"""How a soak is built: which faults it accepts, what each phase is judged by, and what it loads."""

from __future__ import annotations

from serve_chaos.harness.catalog import load_scenarios
from serve_chaos.harness.soak import build_soak
from serve_chaos.harness.load.slots import SlotTable
from serve_chaos.runtime.cluster import Endpoints

ISSUE_FAULTS = ("gcs_store_lost", "worker_node_failure", "health_check_raise_default")
KIND = {"podgc_quarantine_s": 40.0, "podgc_period_s": 20.0}


def alone(name: str):
    """The scenario's own fault phase, as it runs alone."""
    return load_scenarios()[name].phases()[0]


def test_the_issues_soak_is_accepted_and_each_phase_keeps_its_scenarios_promises():
    catalogue = load_scenarios()
    soak = build_soak(600, 11, names=ISSUE_FAULTS)
    assert {p.name.split("_", 1)[1] for p in soak.followups} == set(ISSUE_FAULTS)
    for phase in soak.followups:
        origin = catalogue[phase.name.split("_", 1)[1]]
        assert phase.fault == origin.fault and phase.slo == origin.slo
        assert phase.expected_churn == origin.expected_churn and phase.extra_checks == origin.extra_checks
        assert 20.0 <= phase.delay_s <= 60.0 and phase.deadline_s >= origin.deadline_s
        for settings in ({}, KIND):
            own, soaked = origin.phases()[0].slo_for(settings), phase.slo_for(settings)
            assert soaked.max_recovery_s >= own.max_recovery_s  # never tighter than the scenario alone
    assert set(soak.needs) == {"health_toggle"} and set(soak.requires) == {"kill_actor", "kill_node", "kill_redis"}


def test_a_node_loss_in_a_soak_may_wait_for_the_replacement_pod():
    """The soak's app caps replicas per node: the lost node's replicas may only come back on the
    replacement pod, which on Kubernetes returns after PodGC -- the strict_spreading bound."""
    soak = build_soak(600, 11, names=("worker_node_failure",))
    for phase in soak.phases():
        assert phase.slo_for(KIND).max_recovery_s == alone("strict_spreading").slo_for(KIND).max_recovery_s
        assert phase.slo_for(KIND).max_recovery_s > alone("worker_node_failure").slo_for(KIND).max_recovery_s
        assert phase.slo_for({}) == alone("worker_node_failure").slo_for({})  # locally Ray's detection dominates


def test_a_soak_carries_every_phases_known_deviations_under_its_name():
    catalogue = load_scenarios()
    soak = build_soak(600, 3, names=("head_failure_gcs_ft", "proxy_failure"))
    for name, kind in (("head_failure_gcs_ft", "known_intermittent"), ("proxy_failure", "known_broken")):
        origin = getattr(catalogue[name], kind)
        phases = [p.name for p in soak.followups if p.name.endswith(name)]
        assert phases and origin
        for phase in phases:
            assert {f"{phase}.{c}" for c in origin} <= set(getattr(soak, kind))


def test_a_soak_loads_roles_and_a_slot_per_worker():
    soak = build_soak(300, 11, names=ISSUE_FAULTS)
    assert soak.load.endpoints == ("front", "role:head", "pods:worker")
    eps = Endpoints("http://f", "http://d", {"h": "http://h", "w-a": "http://a", "w-b": "http://b"}, {"head": "http://h"})
    names = [t.name for t in SlotTable.start(soak.load.endpoints, eps, {"h": "head", "w-a": "worker",
                                                                        "w-b": "worker"}).targets]
    assert names == ["front", "role:head", "pods:worker#1", "pods:worker#2"]
