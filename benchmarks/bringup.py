"""Bring-up time, teardown time and peak memory of the embedded local cluster.

Usage: python benchmarks/bringup.py [--runs N] [--load-s S] [--rate R]

Each run: cold ``up`` to 6/6 replicas RUNNING and the front door serving
(timed), then S seconds of Locust load at R req/s through the front door, then
``down`` (timed).  A sampler reads RSS and PSS (``/proc/<pid>/smaps_rollup``)
of every process carrying the run's label every 0.5 s.  Prints one row per run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_chaos.harness.load.generator import LoadGenerator  # noqa: E402
from serve_chaos.harness.load.spec import LoadSpec  # noqa: E402
from serve_chaos.runtime.local import procs  # noqa: E402
from serve_chaos.runtime.local.cluster import LocalCluster  # noqa: E402


def memory_of(label: str) -> tuple[int, int, int]:
    """(processes, RSS bytes, PSS bytes) summed over the run's processes."""
    rss = pss = n = 0
    for pid in procs.marked_processes(label):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        n += 1
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss += int(line.split()[1]) * 1024
    return n, rss, pss


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.label: str | None = None
        self.peak = (0, 0, 0)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            if self.label:
                sample = memory_of(self.label)
                if sample[1] > self.peak[1]:
                    self.peak = sample


def one_run(load_s: float, rate: float) -> dict[str, float]:
    cluster = LocalCluster(owner_pid=None)
    sampler = Sampler()
    sampler.start()
    t0 = time.monotonic()
    watcher = threading.Thread(target=lambda: _watch_label(cluster, sampler), daemon=True)
    watcher.start()
    cluster.up()
    bringup = time.monotonic() - t0
    sampler.label = cluster.label
    idle = memory_of(cluster.label)
    with tempfile.TemporaryDirectory() as tmp:
        targets = [{"name": "front", "url": cluster.endpoints().front_door + "/"}]
        gen = LoadGenerator(LoadSpec(rate=rate), targets, Path(tmp) / "r.jsonl", load_s + 30,
                            {procs.RUN_ENV: cluster.label})
        gen.start()
        time.sleep(load_s)
        gen.stop()
    t1 = time.monotonic()
    cluster.down()
    teardown = time.monotonic() - t1
    sampler.stop.set()
    return {
        "bringup_s": bringup,
        "teardown_s": teardown,
        "idle_procs": idle[0],
        "idle_rss_gb": idle[1] / 1e9,
        "idle_pss_gb": idle[2] / 1e9,
        "peak_procs": sampler.peak[0],
        "peak_rss_gb": sampler.peak[1] / 1e9,
        "peak_pss_gb": sampler.peak[2] / 1e9,
    }


def _watch_label(cluster: LocalCluster, sampler: Sampler) -> None:
    while cluster.label is None:
        time.sleep(0.1)
    sampler.label = cluster.label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--load-s", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()
    rows = []
    print(f"{'run':>3} {'bringup_s':>9} {'teardown_s':>10} {'idle_procs':>10} {'idle_rss_GB':>11} "
          f"{'idle_pss_GB':>11} {'peak_procs':>10} {'peak_rss_GB':>11} {'peak_pss_GB':>11}")
    for i in range(args.runs):
        row = one_run(args.load_s, args.rate)
        rows.append(row)
        print(f"{i + 1:>3} {row['bringup_s']:>9.1f} {row['teardown_s']:>10.1f} {row['idle_procs']:>10} "
              f"{row['idle_rss_gb']:>11.2f} {row['idle_pss_gb']:>11.2f} {row['peak_procs']:>10} "
              f"{row['peak_rss_gb']:>11.2f} {row['peak_pss_gb']:>11.2f}", flush=True)
    if len(rows) > 1:
        ups = [r["bringup_s"] for r in rows]
        print(f"bring-up: median {statistics.median(ups):.1f} s, max {max(ups):.1f} s over {len(rows)} runs "
              f"(target <= 45 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
