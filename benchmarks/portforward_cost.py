"""What one websocket port-forward setup costs the harness, and what kept-alive connections save.

Per-pod load on Kubernetes (``role:head``, ``pods:worker``) goes through port-forwards
(``runtime/kuberay/portforward.py``): every new TCP connection to the local forwarder is a
new ``portforward`` websocket through the API server.  With a new connection per request,
30 req/s on each of three pods is ~90 setups per second.  This measures, against the
loopback API server of the tests (``tests/kube_server.py``, the v4 channel protocol the
official client speaks), with the official client:

1. one setup: ``kubernetes.stream.portforward`` on a client of its own, to the first byte
   of an HTTP answer through it (wall time, and the harness's CPU time);
2. HTTP requests through ``PodPortForwarder`` opening a connection per request;
3. the same requests over kept-alive connections (the design the load uses for forwarded
   endpoints: ``Endpoints.forwarded``, ``harness/load/locustfile.py`` ``session_for``).

The loopback server answers at once: a real API server adds authentication, the hop to the
kubelet and the CRI's port-forward, so real setups cost more than these figures, never less.

    python benchmarks/portforward_cost.py [--setups 200] [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client  # noqa: E402
from kubernetes.stream import portforward  # noqa: E402

from serve_chaos.runtime.kuberay.api import KubeApi  # noqa: E402
from serve_chaos.runtime.kuberay.portforward import PodPortForwarder  # noqa: E402
from tests.kube_server import KubeServer  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_setup(api: KubeApi) -> tuple[float, float, float]:
    """(seconds to the open forward, seconds to the first answer byte, CPU seconds) of one setup."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    core, close = api.stream_core()
    try:
        forward = portforward(core.connect_get_namespaced_pod_portforward, "p1", "ns", ports="8000")
        sock = forward.socket(8000)
        t_open = time.perf_counter()
        sock.sendall(REQUEST)
        sock.recv(65536)
        t_answer = time.perf_counter()
        sock.close()
        forward.close()
    finally:
        close()
    return t_open - t0, t_answer - t0, time.process_time() - cpu0


def through_forwarder(port: int, n: int, keep_alive: bool) -> list[float]:
    session = requests.Session() if keep_alive else None
    latencies = []
    for _ in range(n):
        t0 = time.perf_counter()
        if session is not None:
            session.get(f"http://127.0.0.1:{port}/", timeout=10).raise_for_status()
        else:
            requests.get(f"http://127.0.0.1:{port}/", headers={"Connection": "close"}, timeout=10).raise_for_status()
        latencies.append(time.perf_counter() - t0)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", type=int, default=200, help="port-forward setups to time")
    parser.add_argument("--requests", type=int, default=300, help="HTTP requests per way of connecting")
    args = parser.parse_args()

    server = KubeServer(exec_delay_s=0.0)
    cfg = client.Configuration(host=server.host)
    cfg.verify_ssl = False
    api = KubeApi.from_configuration(cfg)
    try:
        for _ in range(5):  # warm-up: imports, first connections
            one_setup(api)
        samples = [one_setup(api) for _ in range(args.setups)]
        opened = [s[0] * 1000 for s in samples]
        answered = [s[1] * 1000 for s in samples]
        cpu = [s[2] * 1000 for s in samples]
        print(f"one port-forward setup ({args.setups} samples, loopback API server, official client 37):")
        print(f"  open forward       median {statistics.median(opened):7.2f} ms   p95 {pct(opened, .95):7.2f} ms")
        print(f"  first answer byte  median {statistics.median(answered):7.2f} ms   p95 {pct(answered, .95):7.2f} ms")
        print(f"  harness CPU        median {statistics.median(cpu):7.2f} ms   per setup "
              f"-> {1000 / statistics.median(cpu):.0f} setups/s would take one core")

        ops = server.stream_calls
        fwd = PodPortForwarder(KubeApiOpener(api), 8000)
        port = fwd.start()
        try:
            cpu0 = time.process_time()
            fresh = through_forwarder(port, args.requests, keep_alive=False)
            fresh_cpu = time.process_time() - cpu0
            fresh_streams = server.stream_calls - ops
            ops = server.stream_calls
            cpu0 = time.process_time()
            kept = through_forwarder(port, args.requests, keep_alive=True)
            kept_cpu = time.process_time() - cpu0
            kept_streams = server.stream_calls - ops
        finally:
            fwd.stop()
        for label, lat, streams, used in (("a connection per request", fresh, fresh_streams, fresh_cpu),
                                          ("kept-alive connection", kept, kept_streams, kept_cpu)):
            ms = [x * 1000 for x in lat]
            print(f"{args.requests} requests through the forwarder, {label}:")
            print(f"  latency median {statistics.median(ms):7.2f} ms   p95 {pct(ms, .95):7.2f} ms   "
                  f"max rate {len(ms) / sum(lat):6.0f} req/s")
            print(f"  port-forward setups {streams:4d}   harness CPU {used * 1000 / len(lat):6.2f} ms per request")
    finally:
        server.close()


class KubeApiOpener:
    """``PodPortForwarder``'s ``open_stream``: a portforward to pod p1 on a client of its own."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def __call__(self):
        core, close = self.api.stream_core()
        return portforward(core.connect_get_namespaced_pod_portforward, "p1", "ns", ports="8000"), close


if __name__ == "__main__":
    main()
