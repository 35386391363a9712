"""How long a fault outlives the harness that is stopped while it is in effect.

Usage: python benchmarks/heal_latency.py [--rounds N]

Brings the embedded cluster up (like `serve-chaos up`), then per round and per
signal (SIGINT = Ctrl-C, SIGTERM = a CI timeout, SIGKILL = a killed harness):
starts `serve-chaos run network_partition`, waits until its partition is in
effect, sends the signal, and times how long until the partition is lifted and
the run's load generator is gone.  SIGINT and SIGTERM are healed by the run
itself (heal first, then the load drains); SIGKILL by the supervisor, which sees
the owner of the lease gone.  Prints one row per round and signal; tears down.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_chaos.runtime.local.cluster import LocalCluster  # noqa: E402
from serve_chaos.runtime.waiting import NotYet, wait_until  # noqa: E402

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}


def one(cluster: LocalCluster, sig: int, report_dir: Path) -> tuple[float, float]:
    """(seconds from the signal until the partition is lifted, ... until its load is gone)."""
    proc = subprocess.Popen([sys.executable, "-m", "serve_chaos.harness.cli", "run", "network_partition", "--seed", "5",
                             "--report-dir", str(report_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def partitioned() -> None:
        if not any(p.partitioned for p in cluster.pods()):
            raise NotYet("no partition yet")

    wait_until(partitioned, 240, 0.05, what="the run's partition")
    os.kill(proc.pid, sig)
    t_signal = time.time()
    healed = load_gone = None
    while healed is None or load_gone is None:
        state = cluster.state()
        now = time.time() - t_signal
        if healed is None and not any(p["partitioned"] for p in state["pods"]):
            healed = now
        if load_gone is None and not [x for x in state["loads"] if x["owner"] == proc.pid]:
            load_gone = now
        time.sleep(0.02)
    proc.wait(timeout=300)
    cluster.wait_ready(timeout_s=180)
    return healed, load_gone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--report-dir", default="benchmarks/out/heal")
    args = parser.parse_args()
    cluster = LocalCluster(owner_pid=os.getpid())
    cluster.up()
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in SIGNALS}
    try:
        for i in range(args.rounds):
            for name, sig in SIGNALS.items():
                healed, gone = one(cluster, sig, Path(args.report_dir))
                rows[name].append((healed, gone))
                print(f"round {i + 1} {name:7} partition lifted {healed * 1000:7.0f} ms   "
                      f"load gone {gone * 1000:7.0f} ms", flush=True)
    finally:
        cluster.down()
    for name, values in rows.items():
        if values:
            lifted = [v[0] for v in values]
            print(f"{name:7} partition lifted after the signal: median {statistics.median(lifted) * 1000:.0f} ms, "
                  f"max {max(lifted) * 1000:.0f} ms over {len(values)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
