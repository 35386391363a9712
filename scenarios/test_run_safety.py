"""Safe to stop, safe to share -- on the session's real cluster, through the real CLI.

- A run killed with SIGKILL in the middle of a partition leaves no fault and no
  load behind: the supervisor sees its owner gone, lifts the partition and ends
  its Locust within seconds.
- A second run on a cluster in use is refused in one line naming the holder.
- ``down`` during a run is refused without ``--force``.
- A replica frozen (SIGSTOP) by a harness that is then SIGKILLed is thawed by the
  supervisor within seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from serve_chaos.runtime.waiting import NotYet, wait_until

CLI = [sys.executable, "-m", "serve_chaos.harness.cli"]


@pytest.fixture
def target_args(pytestconfig) -> list[str]:
    """The session's target, for the CLI commands these tests run next to it."""
    args = ["--target", pytestconfig.getoption("--target"), "--namespace", pytestconfig.getoption("--namespace")]
    if pytestconfig.getoption("--kube-context"):
        args += ["--kube-context", pytestconfig.getoption("--kube-context")]
    return args


def cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout_s,
                          env=dict(os.environ, COLUMNS="160"))


def partitioned(cluster) -> list[str]:
    return [p.name for p in cluster.pods() if p.partitioned]


def test_a_second_run_is_refused_while_the_session_holds_the_cluster(chaos_cluster, target_args):
    proc = cli("run", "replica_failure", "--seed", "1", *target_args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "this cluster is in use by PID" in lines[0] and "pytest" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_down_during_a_run_is_refused_without_force(chaos_cluster, target_args):
    proc = cli("down", *target_args)
    assert proc.returncode == 1 and "in use by PID" in proc.stderr and "--force" in proc.stderr, proc.stderr
    chaos_cluster.wait_ready(timeout_s=30)


def test_a_killed_run_leaves_no_fault_and_no_load(chaos_cluster, tmp_path):
    if not chaos_cluster.capabilities.partition_pod:
        pytest.skip(chaos_cluster.capabilities.why_not("partition_pod"))
    chaos_cluster.unlock()  # lend the cluster to the run we are about to kill
    proc = subprocess.Popen([*CLI, "run", "network_partition", "--seed", "3", "--report-dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def partition_in_effect() -> None:
            if proc.poll() is not None:
                raise AssertionError(f"the run ended (code {proc.returncode}) before its partition")
            if not partitioned(chaos_cluster):
                raise NotYet("no partition yet")

        wait_until(partition_in_effect, 180, 0.2, what="the run's partition")
        loads = [x for x in chaos_cluster.state()["loads"] if x["owner"] == proc.pid]
        assert loads, "the run's load generator is not marked with its owner"
        proc.kill()  # SIGKILL: no handler runs, nothing heals from inside
        proc.wait()
        t_kill = time.time()

        def reclaimed() -> None:
            state = chaos_cluster.state()
            left = partitioned(chaos_cluster) + [f"load {x['pid']}" for x in state["loads"] if x["owner"] == proc.pid]
            if left:
                raise NotYet(f"still in effect: {left}")

        wait_until(reclaimed, 5.0, 0.1, what="the supervisor to heal what the killed run left")
        print(f"reclaimed {time.time() - t_kill:.2f} s after SIGKILL")
        assert chaos_cluster.interference() == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        chaos_cluster.lock("pytest (after the killed run)")
    chaos_cluster.wait_ready(timeout_s=120)


FREEZER = """
import sys, time
from serve_chaos.runtime.local.cluster import LocalCluster
cluster = LocalCluster()
assert cluster.attach()
cluster.signal_process(sys.argv[1], int(sys.argv[2]), "STOP")
print("frozen", flush=True)
time.sleep(600)
"""


def test_a_replica_frozen_by_a_killed_harness_is_thawed(chaos_cluster):
    from serve_chaos.harness.cli.common import snapshot
    from serve_chaos.runtime.local.procs import is_stopped

    if chaos_cluster.name != "local":
        pytest.skip("the host's view of a local pod's processes")
    replica = next(a for a in snapshot(chaos_cluster).actors if a["role"] == "replica" and a.get("state") == "RUNNING")
    proc = subprocess.Popen([sys.executable, "-c", FREEZER, replica["pod"], str(replica["pid"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "frozen", proc.stderr.read()
        assert is_stopped(replica["pid"]) and any("frozen" in x for x in chaos_cluster.interference())
        proc.kill()
        proc.wait()
        t_kill = time.time()

        def thawed() -> None:
            if is_stopped(replica["pid"]):
                raise NotYet(f"replica pid {replica['pid']} still stopped")

        wait_until(thawed, 5.0, 0.1, what="the supervisor to thaw what the killed harness froze")
        print(f"thawed {time.time() - t_kill:.2f} s after SIGKILL")
        assert chaos_cluster.interference() == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    chaos_cluster.wait_ready(timeout_s=60)


def test_up_with_other_options_on_a_running_cluster_says_so(chaos_cluster, target_args):
    if chaos_cluster.name != "local":
        pytest.skip("the local cluster's options")
    proc = cli("up", "--workers", "3", "--no-gcs-ft")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "already up" in lines[0] and "workers=2" in lines[0] and "gcs_ft=True" in lines[0]
