"""The run lock and the fault leases (local and on Kubernetes), and the control route table."""

from __future__ import annotations

import time

import pytest

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local import control
from serve_chaos.runtime.local.leases import Leases


def test_one_run_per_cluster():
    alive = {100: True, 200: True}
    leases = Leases(alive=lambda pid: alive.get(pid, False))
    leases.take(100, "serve-chaos run all")
    leases.take(100, "serve-chaos run all")  # the holder may take it again
    with pytest.raises(ServeChaosError) as err:
        leases.take(200, "pytest scenarios/")
    assert "in use by PID 100 (serve-chaos run all" in str(err.value) and "\n" not in str(err.value)
    leases.release(200)  # not the holder: nothing happens
    assert leases.holder().owner == 100
    alive[100] = False  # the holder died: its lock goes
    assert leases.holder() is None and leases.take(200, "pytest").owner == 200


def test_a_dead_owners_faults_are_handed_back_for_healing():
    alive = {100: True, 200: True}
    leases = Leases(alive=lambda pid: alive.get(pid, False))
    leases.add(100, "partition", "worker-1")
    leases.add(200, "node_loss", "node-w2")
    leases.take(100, "run")
    assert leases.orphaned() == ([], None)
    alive[100] = False
    dead, lock = leases.orphaned()
    assert [(x.kind, x.target) for x in dead] == [("partition", "worker-1")] and lock.owner == 100
    assert [(x.kind, x.target) for x in leases.all()] == [("node_loss", "node-w2")]
    leases.drop("node_loss", "node-w2")
    assert leases.all() == []


def test_every_route_round_trips_through_the_one_table():
    for route in control.ROUTES:
        params = {name: f"x{name}" for name in route.pattern.groupindex}
        method, path = control.path_of(route.name, **params)
        found, got = control.match(method, path)
        assert found is route and got == params
    assert control.match("DELETE", "/state") is None


def test_the_supervisor_implements_every_route():
    from serve_chaos.runtime.local.supervisor import Supervisor

    for route in control.ROUTES:
        assert callable(getattr(Supervisor, route.name, None)), route.name


def test_down_force_leaves_a_note_for_the_run_it_stops():
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from serve_chaos.runtime.local.config import LocalClusterConfig
    from serve_chaos.runtime.local.layout import RunLayout
    from serve_chaos.runtime.local.supervisor import FORCED_SUFFIX, Supervisor

    tmp_path = Path(tempfile.mkdtemp(prefix="sch", dir="/tmp"))  # short: the home's length is limited
    layout = RunLayout(tmp_path, "abc123")
    layout.root.mkdir()
    sup = Supervisor(LocalClusterConfig(home=str(tmp_path)), layout, "loopback", owner_pid=None)
    sup.leases.take(os.getppid(), "serve-chaos run all")
    with pytest.raises(ServeChaosError) as err:
        sup.shutdown(owner=os.getpid())
    assert "--force" in err.value.hint and not sup.stop.is_set()
    sup.shutdown(owner=os.getpid(), force=True)
    assert sup.stop.is_set()
    note = (tmp_path / f"abc123{FORCED_SUFFIX}").read_text()
    shutil.rmtree(tmp_path)
    assert f"down --force` (PID {os.getpid()})" in note and "serve-chaos run all" in note


# ---------------------------------------------------------------------- on Kubernetes
@pytest.fixture
def kube():
    from tests.test_kuberay import Kube

    k = Kube()
    k.bring_up()
    yield k
    k.close()


def test_the_kube_lock_refuses_a_second_run_and_frees_a_dead_one(kube):
    from serve_chaos.runtime.kuberay.lease import KubeLease

    mine = kube.cluster.lease
    mine.take("pytest scenarios/ --target kind")
    other = KubeLease(kube.cluster.api, kube.cluster.ray, host="ci-runner-2")
    with pytest.raises(ServeChaosError) as err:
        other.take("serve-chaos run all")
    assert "in use by PID" in str(err.value) and "pytest scenarios/" in str(err.value)
    later = KubeLease(kube.cluster.api, kube.cluster.ray, host="ci-runner-2", clock=lambda: time.time() + 120)
    assert later.take("serve-chaos run all").host == "ci-runner-2"  # not renewed for 120 s: stale
    mine.release()  # no longer the holder: the record stays with ci-runner-2
    assert kube.cluster.lease.holder() is None or kube.cluster.lease.holder().host == "ci-runner-2"


def test_the_next_command_heals_what_a_dead_run_left_on_kind(kube):
    from serve_chaos.runtime.kuberay.lease import KubeLease

    dead = KubeLease(kube.cluster.api, kube.cluster.ray, alive=lambda pid: True)
    dead.add_fault("node_loss", "kind-worker2")
    dead.add_fault("hold", "redis")
    kube.store.get("Deployment", "serve-chaos", "serve-chaos-redis")["spec"]["replicas"] = 0
    faults = kube.cluster.lease.read()["faults"]
    for fault in faults:  # written by a PID that is gone
        fault["pid"] = 999999
    kube.cluster.lease._update(lambda record: (None, faults))
    assert any("node loss of kind-worker2" in x for x in kube.cluster.interference())
    records = kube.cluster.reclaim()
    assert sorted(r.action for r in records) == ["reclaim_hold", "reclaim_node_loss"]
    assert kube.cli.calls[-2:] == [("network", "kind-worker2", True), ("start", "kind-worker2")]
    assert kube.store.get("Deployment", "serve-chaos", "serve-chaos-redis")["spec"]["replicas"] == 1
    assert kube.cluster.lease.faults() == [] and kube.cluster.interference() == []
