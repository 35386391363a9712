"""How much open-model load one Locust process holds, and how ``--load-workers N`` scales it.

Usage: python benchmarks/load_workers.py [--rates 400,800,1200] [--workers 1,2] [--seconds 20]

The load goes to a trivial HTTP server (asyncio on uvloop, in its own process, answering a
fixed 200 and closing), so Ray's own cost is out of the figure.  Each cell runs serve-chaos's
LoadGenerator as a scenario does -- a new connection per request, every send at its intended
time -- and reads the records it wrote.  Printed per cell:

- ``held``: requests sent in the middle of the run (its first and last 3 s left out) over the
  rate x that time; 1.00 is the schedule kept;
- ``late p50/p99``: how far behind its intended time a send left (ms): a process that cannot
  keep up falls behind, and its sends bunch up;
- ``ok``: answered 200; ``by worker``: who sent how many.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_chaos.harness.load.generator import LoadGenerator  # noqa: E402
from serve_chaos.harness.load.spec import LoadSpec, Traffic  # noqa: E402

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
#: The run's head and tail left out of ``held`` (s): start-up and the graceful stop.
EDGE_S = 3.0


class _Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(ANSWER)  # type: ignore[attr-defined]
            self.transport.close()


def _serve(sock: socket.socket) -> None:
    import uvloop

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Answer, sock=sock, backlog=4096)
        await server.serve_forever()

    uvloop.run(main())


def one_cell(url: str, rate: float, workers: int, seconds: float, root: Path) -> dict:
    out = root / f"r{rate:g}-w{workers}.jsonl"
    targets = [{"name": "front", "url": url, "role": None, "pod": None, "incarnation": 0}]
    gen = LoadGenerator(LoadSpec(rate=rate, endpoints=("front",), max_in_flight=2000), targets, out,
                        seconds + 30, {}, Traffic(id_prefix="bench", workers=workers))
    gen.start(timeout_s=30)
    time.sleep(seconds)
    gen.stop()
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    t0 = min(r["t"] for r in records)
    middle = [r for r in records if t0 + EDGE_S <= r["t"] < t0 + seconds - EDGE_S and r.get("t_sent")]
    late = sorted((r["t_sent"] - r["t"]) * 1000 for r in middle)
    by_worker: dict[int, int] = {}
    for r in records:
        by_worker[r.get("worker", 0)] = by_worker.get(r.get("worker", 0), 0) + 1
    return {"rate": rate, "workers": workers, "held": len(middle) / (rate * (seconds - 2 * EDGE_S)),
            "late_p50_ms": statistics.median(late) if late else None,
            "late_p99_ms": late[int(0.99 * (len(late) - 1))] if late else None,
            "ok": sum(1 for r in records if r.get("ok")) / max(1, len(records)),
            "by_worker": dict(sorted(by_worker.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="400,800,1200", help="requests/s, comma-separated")
    parser.add_argument("--workers", default="1,2", help="Locust worker counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each cell (s)")
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = multiprocessing.Process(target=_serve, args=(sock,), daemon=True)
    server.start()
    print(f"{'rate/s':>7} {'workers':>7} {'held':>6} {'late p50 ms':>11} {'late p99 ms':>11} {'ok':>6}  by worker")
    try:
        with tempfile.TemporaryDirectory(prefix="sc-bench-load-") as tmp:
            for rate in (float(r) for r in args.rates.split(",")):
                for workers in (int(w) for w in args.workers.split(",")):
                    c = one_cell(url, rate, workers, args.seconds, Path(tmp))
                    print(f"{c['rate']:>7g} {c['workers']:>7} {c['held']:>6.3f} {c['late_p50_ms']:>11.1f} "
                          f"{c['late_p99_ms']:>11.1f} {c['ok']:>6.3f}  {c['by_worker']}", flush=True)
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
