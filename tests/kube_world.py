"""A kube target under test without a cluster: ``KubeRayCluster`` on the fake API server, the
model of KubeRay and Kubernetes behind it, and real HTTP on loopback answering as the
dashboard (and the Serve endpoint) of whichever head the dashboard Service selects."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from serve_chaos.runtime.kuberay.api import KubeApi
from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
from tests.fake_kubernetes import FakeKubernetes
from tests.fake_apiserver import FakeApiClient, Store
from tests.fake_chaosmesh import FakeChaosMesh
from tests.kuberay_fake import FakeKubeRay


class FakeServe:
    """Real HTTP on loopback: ``/api/serve/applications/`` and ``/api/v0/nodes`` as the Ray
    dashboard answers them (from ``details()`` and ``nodes()``; 503 while they raise), any
    other path as a Serve proxy that routes (200)."""

    def __init__(self, details: Callable[[], dict[str, Any]], nodes: Callable[[], list[dict[str, Any]]]) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    if self.path.startswith("/api/serve"):
                        body = json.dumps(fake.details()).encode()
                    elif self.path.startswith("/api/v0/nodes"):
                        body = json.dumps({"data": {"result": {"result": fake.nodes()}}}).encode()
                    else:
                        body = b"1234"
                    code = 200
                except ConnectionError:
                    body, code = b"no dashboard", 503
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.details = details
        self.nodes = nodes
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeCli:
    """kind's node operations, recorded and passed on to the model's nodes."""

    def __init__(self, world: "Kube | None" = None) -> None:
        self.calls: list[tuple] = []
        self.world = world

    def node_network(self, node: str, connect: bool) -> None:
        self.calls.append(("network", node, connect))

    def node_kill(self, node: str) -> None:
        self.calls.append(("kill", node))
        if self.world is not None:
            self.world.operator.kube.stop_node(node)

    def node_start(self, node: str) -> None:
        self.calls.append(("start", node))
        if self.world is not None:
            self.world.operator.kube.start_node(node)


def ray_node_id(pod_name: str) -> str:
    return hashlib.sha256(pod_name.encode()).hexdigest()[:56]


class Kube:
    """A KubeRayCluster on the fake API, the model of the operator, and a fake dashboard."""

    def __init__(self, target: KubeTargetConfig | None = None, role_labels: bool = True) -> None:
        self.store = Store()
        self.operator = FakeKubeRay(self.store, kube=FakeKubernetes(self.store, "serve-chaos", role_labels=role_labels))
        self.chaos = FakeChaosMesh(self.store)
        self.operator.others.append(self.chaos.step)
        self.cli = FakeCli(self)
        self.serve = FakeServe(self.operator.serving, self.ray_nodes)
        target = target or KubeTargetConfig()
        from dataclasses import replace

        target = replace(target, serve_host_port=self.serve.port, dashboard_host_port=self.serve.port)
        self.cluster = KubeRayCluster(target, api=KubeApi(lambda: FakeApiClient(self.store)),
                                      context_name="kind-serve-chaos", cli=self.cli)

    def ray_nodes(self) -> list[dict[str, Any]]:
        """The State API's nodes of the active cluster (one per Running Ray pod, by its IP)."""
        active = self.serving()
        return [{"node_id": ray_node_id(p["metadata"]["name"]), "node_ip": p["status"].get("podIP"),
                 "state": "ALIVE", "is_head_node": p["metadata"]["labels"]["ray.io/node-type"] == "head"}
                for p in self.operator.pods(active) if p["status"].get("phase") == "Running"]

    def bring_up(self) -> str:
        """Apply, let the model bring the RayService to serving; returns the active cluster.  As
        ``KubeRayCluster.up`` does, the pods are placed by role labels only where nodes carry them."""
        from dataclasses import replace

        self.cluster.ray = replace(self.cluster.ray, node_selectors=self.cluster.nodes_have_roles())
        self.cluster.apply(self.cluster.manifests())
        self.operator.settle()
        return self.finish_pending()

    def finish_pending(self) -> str:
        """Let the cluster being prepared (pending) start, serve and take over."""
        cluster = self.cluster.state().pending or self.serving()
        self.operator.run_pods(cluster)
        self.operator.proxy_healthy(cluster)
        self.operator.settle()
        self.operator.serve_ready(cluster)
        self.operator.settle()
        return cluster

    def serving(self) -> str:
        return self.cluster.state().serving_cluster

    def close(self) -> None:
        self.cluster._stop_forwarders()
        self.serve.close()


class FakeWs:
    """What ``kubernetes.stream.stream(..., _preload_content=False)`` returns for an exec that
    ran to its end: the ``WSClient`` with its channels read (``kubernetes/stream/ws_client.py``)."""

    def __init__(self, stdout: str = "", stderr: str = "", returncode: int | None = 0) -> None:
        self.stdout, self.stderr, self._returncode = stdout, stderr, returncode

    def run_forever(self, timeout: float | None = None) -> None:
        pass

    def read_stdout(self, timeout: float | None = None) -> str:
        return self.stdout

    def read_stderr(self, timeout: float | None = None) -> str:
        return self.stderr

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def is_open(self) -> bool:
        return self._returncode is None

    def close(self) -> None:
        pass
