"""What telling who served each request costs: reading the replicas' Serve logs.

Usage: python benchmarks/servedby_cost.py [--seconds S] [--rate R]

Brings the embedded cluster up with the bundled SleepyPid (6 replicas), sends R
requests/s (each with its own X-Request-Id) through the front door for S seconds
while a ServedByReader polls every replica's log through the dashboard every 2 s,
then prints: poll rounds, the time one round takes (median / max, ms), bytes
fetched per second, the share of requests attributed, the lag from a request's
answer to its attribution (median / p95, s), and whether the log's replica agrees
with the PID SleepyPid returns.  Tears the cluster down.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_chaos.harness.cli.common import snapshot  # noqa: E402
from serve_chaos.harness.load.servedby import ServedByReader  # noqa: E402
from serve_chaos.runtime.local.cluster import LocalCluster  # noqa: E402


class CountingSession(requests.Session):
    """Counts the bytes the dashboard sends back."""

    received = 0

    def get(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - requests' own signature
        resp = super().get(*args, **kwargs)
        self.received += len(resp.content)
        return resp


class TimedReader(ServedByReader):
    """Times each poll round (ms) and notes when each request id was first attributed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rounds_ms: list[float] = []
        self.first_seen: dict[str, float] = {}
        self._session = CountingSession()

    def poll(self) -> int:
        t0 = time.perf_counter()
        found = super().poll()
        self.rounds_ms.append((time.perf_counter() - t0) * 1000)
        now = time.time()
        for rec in self.copy():
            self.first_seen.setdefault(rec["request_id"], now)
        return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=30.0)
    args = parser.parse_args()
    cluster = LocalCluster()
    cluster.up()
    try:
        dashboard, front = cluster.endpoints().dashboard, cluster.endpoints().front_door
        replicas = [a for a in snapshot(cluster).actors if a["role"] == "replica"]
        reader = TimedReader(dashboard, lambda: replicas, prefix="scbench")
        answered: dict[str, tuple[float, int]] = {}
        stop = time.time() + args.seconds
        reader.start()

        def send(i: int) -> None:
            rid = f"scbench-{i}"
            resp = requests.get(front + "/", headers={"X-Request-Id": rid}, timeout=5)
            answered[rid] = (time.time(), int(resp.text))

        i = 0
        t0 = time.time()
        while time.time() < stop:
            threading.Thread(target=send, args=(i,), daemon=True).start()
            i += 1
            time.sleep(max(0.0, t0 + i / args.rate - time.time()))
        time.sleep(6)
        reader.stop()
        pids = {a["replica_id"]: a["pid"] for a in replicas}
        got = {r["request_id"]: r for r in reader.copy()}
        lags = sorted(reader.first_seen[rid] - answered[rid][0] for rid in got if rid in answered)
        agree = sum(pids.get(got[rid]["replica_id"]) == answered[rid][1] for rid in got if rid in answered)
        print(f"requests {len(answered)} at {args.rate:g}/s for {args.seconds:g} s, {len(replicas)} replicas")
        print(f"poll rounds {len(reader.rounds_ms)}: {statistics.median(reader.rounds_ms):.0f} ms median, "
              f"{max(reader.rounds_ms):.0f} ms max; fetched {reader._session.received / args.seconds / 1024:.1f} KiB/s")
        print(f"attributed {len(got)}/{len(answered)}; log and body PID agree on {agree}; "
              f"lag median {statistics.median(lags):.1f} s, p95 {lags[int(0.95 * (len(lags) - 1))]:.1f} s")
    finally:
        cluster.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
