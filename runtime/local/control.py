"""The supervisor's control API: one route table, read by the server and the client alike.

Each route names the supervisor method it calls; the client asks for a route by
that name and the path is built from the same table, so the two can never
disagree.  Every call carries the token (``TOKEN_HEADER``) and the caller's PID
(``OWNER_HEADER``): faults are leased to it, and the run lock is taken in its name.
"""

from __future__ import annotations

import json
import re
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

from serve_chaos.runtime.errors import ServeChaosError

TOKEN_HEADER = "X-Serve-Chaos-Token"
OWNER_HEADER = "X-Serve-Chaos-Owner"


@dataclass(frozen=True)
class Route:
    """``method`` + ``path`` (``{param}`` placeholders) -> the supervisor method ``name``."""

    name: str
    method: str
    path: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


ROUTES: tuple[Route, ...] = (
    Route("state", "GET", "/state"),
    Route("events_since", "GET", "/events"),
    Route("kill_pod", "POST", "/pods/{pod}/kill"),
    Route("partition_pod", "POST", "/pods/{pod}/partition"),
    Route("unpartition_pod", "POST", "/pods/{pod}/unpartition"),
    Route("kill_node", "POST", "/nodes/{node}/kill"),
    Route("kill_actor", "POST", "/actors/kill"),
    Route("signal_process", "POST", "/pods/{pod}/signal"),
    Route("kill_process", "POST", "/pods/{pod}/kill_process"),
    Route("apply_serve_config", "POST", "/serve/config"),
    Route("update_serve_config", "POST", "/serve/update"),
    Route("drain_node", "POST", "/pods/{pod}/drain"),
    Route("gray_fault", "POST", "/pods/{pod}/gray/{fault}"),
    Route("lift", "POST", "/pods/{pod}/lift/{fault}"),
    Route("set_ray_options", "POST", "/ray_options"),
    Route("heal", "POST", "/heal"),
    Route("lock", "POST", "/lock"),
    Route("unlock", "POST", "/unlock"),
    Route("shutdown", "POST", "/shutdown"),
)
BY_NAME = {r.name: r for r in ROUTES}


def path_of(name: str, **params: str) -> tuple[str, str]:
    """``(method, path)`` of the route ``name`` with its placeholders filled in."""
    route = BY_NAME[name]
    return route.method, route.path.format(**params)


def match(method: str, path: str, routes: tuple[Route, ...] = ROUTES) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
        if route.method == method:
            hit = route.pattern.match(path)
            if hit:
                return route, hit.groupdict()
    return None


def serve(api: Any, token: str, on_error: Callable[[str, str], None],
          routes: tuple[Route, ...] = ROUTES) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 (ephemeral port) calling ``api.<route name>(owner=..., **args)``
    for each of ``routes`` (the local supervisor's by default).

    A ServeChaosError is answered 409 with what, hint and evidence; anything else
    500, and ``on_error(path, traceback)`` is told.
    """

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, code: int, body: Any) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            if self.headers.get(TOKEN_HEADER) != token:
                self._reply(HTTPStatus.FORBIDDEN, {"error": "bad token"})
                return
            url = urlparse(self.path)
            found = match(method, url.path, routes)
            if found is None:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {method} {url.path}"})
                return
            route, params = found
            args: dict[str, Any] = {k: v[0] for k, v in parse_qs(url.query).items()}
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    args.update(json.loads(self.rfile.read(length) or b"{}"))
                except ValueError:
                    self._reply(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
                    return
            owner = self.headers.get(OWNER_HEADER)
            try:
                result = getattr(api, route.name)(**params, **args, owner=int(owner) if owner else None)
            except ServeChaosError as err:
                self._reply(HTTPStatus.CONFLICT, {"error": err.what, "hint": err.hint, "evidence": err.evidence})
                return
            except Exception as err:  # noqa: BLE001 - report, keep serving
                on_error(self.path, traceback.format_exc()[-2000:])
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})
                return
            self._reply(HTTPStatus.OK, result)

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server
