"""The real ``kubernetes.stream`` against a real (small) API server on loopback.

``stream``/``portforward`` swap the transport of the ApiClient they are handed for
the length of the call (``kubernetes/base/stream/stream.py``, kubernetes-client/python#928).
The first test shows that with the installed client; the second that the kube
target's streams run next to REST calls without touching the REST client.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kubernetes import client

from serve_chaos.runtime.kuberay.api import KubeApi
from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
from serve_chaos.runtime.kuberay.portforward import PodPortForwarder
from tests.kube_server import KubeServer


@pytest.fixture
def server():
    srv = KubeServer(exec_delay_s=0.5)
    yield srv
    srv.close()


def configuration(server: KubeServer) -> client.Configuration:
    cfg = client.Configuration(host=server.host)
    cfg.verify_ssl = False
    return cfg


def exec_on(core: client.CoreV1Api, pod: str) -> str:
    from kubernetes.stream import stream

    return stream(core.connect_get_namespaced_pod_exec, pod, "ns", command=["true"], stderr=True, stdin=False,
                  stdout=True, tty=False)


def test_a_shared_client_sends_rest_calls_as_websocket_calls_during_a_stream(server):
    shared = client.ApiClient(configuration(server))
    core = client.CoreV1Api(shared)
    thread = threading.Thread(target=exec_on, args=(core, "p1"))
    thread.start()
    time.sleep(0.15)  # the exec is held open by the server for 0.5 s
    try:
        core.list_namespaced_pod("ns")
    except Exception:  # noqa: BLE001 - what it raises depends on the client version
        pass
    thread.join(10)
    assert server.unexpected == ["/api/v1/namespaces/ns/pods"], "the REST call did not go out as a websocket"


def test_streams_on_their_own_clients_leave_rest_calls_alone(server):
    api = KubeApi.from_configuration(configuration(server))
    cluster = KubeRayCluster(KubeTargetConfig(), api=api, context_name="kind-test")
    forwarder = PodPortForwarder(cluster._portforward_opener(lambda: "p2"), 8000)
    port = forwarder.start()
    transport = api.rest.call_api  # what REST calls go through; no stream may swap it

    def do_exec(i: int) -> str:
        core, close = api.stream_core()
        try:
            return exec_on(core, f"p{i}")
        finally:
            close()

    def do_rest(_: int) -> int:
        return len(api.core.list_namespaced_pod("ns").items)

    def do_forward(_: int) -> str:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=10).text

    try:
        with ThreadPoolExecutor(max_workers=24) as pool:
            execs = [pool.submit(do_exec, i) for i in range(8)]
            forwards = [pool.submit(do_forward, i) for i in range(8)]
            rests = [pool.submit(do_rest, i) for i in range(30)]
            assert [f.result(timeout=30) for f in rests] == [1] * 30
            assert sorted(f.result(timeout=30) for f in execs) == sorted(f"exec p{i}\n" for i in range(8))
            assert [f.result(timeout=30) for f in forwards] == ["p2"] * 8
    finally:
        forwarder.stop()
    assert server.unexpected == []
    assert api.rest.call_api is transport and "request" not in vars(api.rest)
    assert len(api.core.list_namespaced_pod("ns").items) == 1


def test_per_pod_load_through_a_forward_keeps_its_connections(server, tmp_path):
    """Issue 18 item 7: a per-pod endpoint reached through a port-forward must not cost a
    websocket setup per request; the load keeps its connections to it alive."""
    from serve_chaos.harness.observe.history import read_jsonl
    from serve_chaos.harness.load.generator import LoadGenerator
    from serve_chaos.harness.load.spec import LoadSpec, resolve_endpoints
    from serve_chaos.runtime.cluster import Endpoints

    api = KubeApi.from_configuration(configuration(server))
    cluster = KubeRayCluster(KubeTargetConfig(), api=api, context_name="kind-test")
    forwarder = PodPortForwarder(cluster._portforward_opener(lambda: "p7"), 8000)
    port = forwarder.start()
    endpoints = Endpoints(front_door="http://127.0.0.1:1", dashboard="http://127.0.0.1:1",
                          pods={"p7": f"http://127.0.0.1:{port}"}, forwarded=True)
    (target,) = resolve_endpoints(LoadSpec(endpoints=("pods:worker",)), endpoints, {"p7": "worker"})
    out = tmp_path / "requests.jsonl"
    load = LoadGenerator(LoadSpec(rate=40, endpoints=("pods:worker",)), [target], out, max_duration_s=60)
    try:
        load.start()
        time.sleep(3)
    finally:
        load.stop()
        forwarder.stop()
    records = read_jsonl(out)
    ok = [r for r in records if r["ok"]]
    assert len(ok) >= 60 and all(r["pod"] == "p7" for r in ok)
    assert server.forwarded_requests >= len(ok)
    # One stream per concurrent connection (a few; more when a loaded machine answers slowly),
    # never one per request.
    assert server.stream_calls * 10 <= len(ok), f"{server.stream_calls} port-forward setups for {len(ok)} requests"


def test_an_exec_that_outlives_its_timeout_returns_at_the_timeout():
    from serve_chaos.runtime.kuberay.api import KubeApi
    from serve_chaos.runtime.kuberay.execs import PodExec

    slow = KubeServer(exec_delay_s=6.0)
    try:
        execs = PodExec(KubeApi.from_configuration(configuration(slow)), "ns")
        t0 = time.monotonic()
        result = execs.run("p1", "c", ["sleep", "60"], timeout_s=0.5)
        took = time.monotonic() - t0
    finally:
        slow.close()
    assert result.returncode is None  # still running when we stopped waiting
    assert took < 3.0, f"the exec held its caller {took:.1f} s past its 0.5 s timeout"
