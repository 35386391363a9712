"""A small API server on loopback that speaks what the official client's streams speak (test double).

REST: ``GET /api/v1/namespaces/<ns>/pods`` answers a PodList (after ``rest_delay_s``).
Websockets, channel protocol ``v4.channel.k8s.io`` (kubernetes ``staging/src/k8s.io/apimachinery/
pkg/util/remotecommand`` and ``pkg/kubelet/cri/streaming/portforward``), as the client's
``kubernetes/stream/ws_client.py`` reads them:
- ``.../pods/<pod>/exec``: stdout on channel 1 (``exec <pod>`` after ``exec_delay_s``), then a
  Success status on channel 3, then close.
- ``.../pods/<pod>/portforward?ports=P``: the port number (2 bytes, little endian) first on the
  data channel 0 and the error channel 1, then an HTTP answer on channel 0 to each request
  that arrives on it, naming the pod: HTTP/1.1 keep-alive, so one stream carries as many
  requests as the client sends on its connection, until one asks ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

PROTOCOL = "v4.channel.k8s.io"


def dead_kubeconfig(base: Path) -> dict[str, str]:
    """A kind-* context whose API server does not answer."""
    path = base / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-dead",
        "clusters": [{"name": "kind-dead", "cluster": {"server": "https://127.0.0.1:1",
                                                       "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "kind-dead", "context": {"cluster": "kind-dead", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "x"}}]}))
    return {"KUBECONFIG": str(path)}


class KubeServer:
    def __init__(self, exec_delay_s: float = 0.3, rest_delay_s: float = 0.0) -> None:
        self.exec_delay_s = exec_delay_s
        self.rest_delay_s = rest_delay_s
        self.rest_calls = 0
        self.stream_calls = 0
        self.forwarded_requests = 0
        self.unexpected: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(self._handle, "127.0.0.1", 0, process_request=self._process_request,
                             subprotocols=[PROTOCOL], close_timeout=0.2) as server:
                self.port = server.sockets[0].getsockname()[1]
                self.ready.set()
                await self._stop.wait()

        self.loop.run_until_complete(main())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(2)

    # ------------------------------------------------------------------ REST
    async def _process_request(self, connection: Any, request: Any) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = urlparse(request.path).path
        self.rest_calls += 1
        if path.endswith("/pods"):
            await asyncio.sleep(self.rest_delay_s)
            body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
                {"metadata": {"name": "p1", "namespace": "ns", "uid": "u1"}, "spec": {"containers": [
                    {"name": "c", "image": "i"}]}}]}
            return self._json(HTTPStatus.OK, body)
        self.unexpected.append(path)
        return self._json(HTTPStatus.NOT_FOUND, {"kind": "Status", "code": 404})

    @staticmethod
    def _json(status: HTTPStatus, body: dict[str, Any]) -> Response:
        data = json.dumps(body).encode()
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                           ("Connection", "close")])
        return Response(status.value, status.phrase, headers, data)

    # ------------------------------------------------------------------ streams
    async def _handle(self, ws: Any) -> None:
        url = urlparse(ws.request.path)
        parts = url.path.rstrip("/").split("/")
        pod, verb = parts[-2], parts[-1]
        self.stream_calls += 1
        if verb == "exec":
            await asyncio.sleep(self.exec_delay_s)
            await ws.send(b"\x01" + f"exec {pod}\n".encode())
            await ws.send(b"\x03" + json.dumps({"metadata": {}, "status": "Success"}).encode())
            await ws.close()
        elif verb == "portforward":
            port = int(parse_qs(url.query)["ports"][0])
            prefix = bytes([port & 0xFF, port >> 8])
            await ws.send(b"\x00" + prefix)
            await ws.send(b"\x01" + prefix)
            pending = b""
            async for frame in ws:
                pending += frame[1:]
                closing = False
                while b"\r\n\r\n" in pending:
                    head, _, pending = pending.partition(b"\r\n\r\n")
                    self.forwarded_requests += 1
                    closing = b"connection: close" in head.lower()
                    body = pod.encode()
                    await ws.send(b"\x00" + b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode()
                                  + (b"\r\nConnection: close" if closing else b"") + b"\r\n\r\n" + body)
                    if closing:
                        break
                if closing:
                    break
            await ws.close()
        else:
            self.unexpected.append(url.path)
            await ws.close()
