"""A game day driven end to end: `serve-chaos run --step`, Ctrl-C in the middle of a fault.

The CLI attaches to the session's cluster, asks before the fault, injects a
partition when told yes, and gets SIGINT while the partition is in effect.  It
must heal (lift the partition), still write the artifacts and the report, exit
130, and leave the cluster healthy and running (it did not create it).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


class Output:
    """Collects a child's merged output as it arrives (prompts end without a newline)."""

    def __init__(self, stream) -> None:
        self.text = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        while True:
            chunk = stream.read(1)
            if not chunk:
                return
            with self._lock:
                self.text += chunk

    def wait_for(self, needle: str, timeout_s: float, proc: subprocess.Popen) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if needle in self.text:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"did not see {needle!r} within {timeout_s:.0f} s; output so far:\n{self.text[-3000:]}")


def test_step_then_ctrl_c_mid_fault_heals_and_reports(chaos_cluster, tmp_path):
    if not chaos_cluster.capabilities.partition_pod:
        pytest.skip(chaos_cluster.capabilities.why_not("partition_pod"))
    report_dir = tmp_path / "reports"
    html = tmp_path / "gameday.html"
    # The game-day CLI takes the run lock itself: the session lends it the cluster.
    chaos_cluster.unlock()
    proc = subprocess.Popen(
        [sys.executable, "-m", "serve_chaos.harness.cli", "run", "network_partition", "--step", "--seed", "7",
         "--report-dir", str(report_dir), "--html", str(html)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        env=dict(os.environ, COLUMNS="160"),
    )
    out = Output(proc.stdout)
    try:
        out.wait_for("inject: partition pod", 180, proc)
        proc.stdin.write("y\n")
        proc.stdin.flush()
        out.wait_for("observe", 30, proc)
        deadline = time.time() + 10
        while time.time() < deadline and not any(p.partitioned for p in chaos_cluster.pods()):
            time.sleep(0.2)
        assert any(p.partitioned for p in chaos_cluster.pods()), "the partition never took effect"
        time.sleep(2.0)  # mid-fault
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        chaos_cluster.lock("pytest (after the game day)")
    assert code == 130, out.text[-3000:]
    assert "interrupted: the cluster was healed" in out.text
    (run_dir,) = [p for p in report_dir.iterdir() if p.is_dir()]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["status"] == "interrupted"
    faults = json.loads((run_dir / "faults.json").read_text())
    assert faults and any(a["action"] == "unpartition_pod" for a in faults[0]["heal_actions"])
    assert Path(html).exists() and "network_partition" in Path(html).read_text()
    # Healed and still ours: nothing partitioned, the cluster up and serving.
    assert not any(p.partitioned for p in chaos_cluster.pods())
    chaos_cluster.wait_ready(timeout_s=120)
