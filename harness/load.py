"""Load: Locust, headless, in a subprocess, writing one JSONL record per request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.cluster import POD_ROLES, Endpoints
from runtime.errors import ConfigError, InfrastructureError
from runtime.waiting import NotYet, wait_until

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
FRONT_DOOR = "front"


@dataclass(frozen=True)
class LoadSpec:
    """Offered load.

    ``rate`` is requests per second *per endpoint* (constant arrival rate);
    ``timeout_s`` the per-request timeout (seconds).  ``endpoints`` names where
    to send: ``front`` (the front door), ``role:<role>`` (the current pod of a
    role, e.g. the head, followed across recreations), ``pods:<role>`` (each
    pod of that role present when the load starts) or ``pod:<name>`` (one pod's
    own proxy, like ``kubectl port-forward``).  Roles, not names: pod names are
    the target's (KubeRay generates them).
    """

    rate: float = 30.0
    timeout_s: float = 5.0
    endpoints: tuple[str, ...] = (FRONT_DOOR,)
    max_in_flight: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 2000:
            raise ConfigError(f"load rate must be in (0, 2000] requests/s per endpoint, got {self.rate}")
        if not 0 < self.timeout_s <= 120:
            raise ConfigError(f"load timeout must be in (0, 120] seconds, got {self.timeout_s}")
        if not self.endpoints:
            raise ConfigError("load needs at least one endpoint", hint="use 'front' or 'pod:<name>'")
        for name in self.endpoints:
            kind, _, rest = name.partition(":")
            if name != FRONT_DOOR and (kind not in ("pod", "pods", "role") or not rest):
                raise ConfigError(f"unknown load endpoint {name!r}",
                                  hint="use 'front', 'role:head', 'pods:worker' or 'pod:<pod name>'")
            if kind in ("pods", "role") and rest not in POD_ROLES:
                raise ConfigError(f"load endpoint {name!r} names no role",
                                  hint=f"roles are: {', '.join(POD_ROLES)}")


@dataclass(frozen=True)
class Traffic:
    """What the requests are and how they are tagged.

    ``requests``: the app's routes (``RequestSpec.model_dump()`` dicts), mixed by
    weight; ``id_prefix``: the start of every request's unique ``X-Request-Id``;
    ``user_file``: a user's locustfile whose tasks replace ``requests``.
    """

    requests: tuple[dict[str, Any], ...] = ()
    id_prefix: str = "sc0"
    user_file: str | None = None


def resolve_endpoints(spec: LoadSpec, endpoints: Endpoints, roles: dict[str, str],
                      ready: set[str] | None = None) -> list[dict[str, Any]]:
    """Turn endpoint names into ``{"name", "url", "pod", "role"}``; ``roles`` maps pod -> role.
    A ``url`` is the base each request's path is appended to.

    ``pods:<role>`` takes only pods in ``ready`` (when given): Serve runs a proxy
    only on nodes that host replicas, and a port-forward to a pod without one
    would measure nothing but refusals.  A per-pod or role target the cluster reaches
    through a port-forward (``Endpoints.forwarded``) is marked ``keepalive``: the load
    keeps its connections to it open instead of paying a websocket setup per request.
    """
    out = _resolve(spec, endpoints, roles, ready)
    if endpoints.forwarded:
        for target in out:
            if target["name"] != FRONT_DOOR:
                target["keepalive"] = True
    return out


def _resolve(spec: LoadSpec, endpoints: Endpoints, roles: dict[str, str],
             ready: set[str] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in spec.endpoints:
        kind, _, rest = name.partition(":")
        if name == FRONT_DOOR:
            out.append({"name": FRONT_DOOR, "url": endpoints.front_door})
        elif kind == "role":
            if rest not in endpoints.roles:
                raise ConfigError(f"this target offers no endpoint for the current {rest} pod",
                                  hint=f"roles with one: {', '.join(sorted(endpoints.roles)) or 'none'}")
            out.append({"name": name, "url": endpoints.roles[rest], "role": rest})
        elif kind == "pods":
            for pod, url in sorted(endpoints.pods.items()):
                if roles.get(pod) == rest and (ready is None or pod in ready):
                    out.append({"name": f"pod:{pod}", "url": url, "pod": pod, "role": rest})
        else:
            if rest not in endpoints.pods:
                raise ConfigError(f"no pod named {rest!r} to aim load at",
                                  hint=f"pods are: {', '.join(sorted(endpoints.pods))}")
            out.append({"name": name, "url": endpoints.pods[rest], "pod": rest, "role": roles.get(rest, "")})
    return out


class LoadGenerator:
    """A running Locust process.  ``start`` returns once the first record is written."""

    def __init__(self, spec: LoadSpec, targets: list[dict[str, str]], out_path: Path,
                 max_duration_s: float, env_markers: dict[str, str] | None = None,
                 traffic: Traffic | None = None) -> None:
        self.spec = spec
        self.traffic = traffic or Traffic()
        self.targets = targets
        self.out_path = out_path
        self.max_duration_s = max_duration_s
        self.env_markers = env_markers or {}
        self.proc: subprocess.Popen | None = None
        self.log_path = out_path.with_suffix(".locust.log")

    def start(self, timeout_s: float = 20.0) -> None:
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.out_path.touch()
        env = dict(os.environ)
        env.update(self.env_markers)
        env.update(
            {
                "SC_LOAD_ENDPOINTS": json.dumps(self.targets),
                "SC_LOAD_RATE": str(self.spec.rate),
                "SC_LOAD_TIMEOUT_S": str(self.spec.timeout_s),
                "SC_LOAD_MAX_IN_FLIGHT": str(self.spec.max_in_flight),
                "SC_LOAD_OUT": str(self.out_path),
                "SC_LOAD_REQUESTS": json.dumps(list(self.traffic.requests)),
                "SC_LOAD_ID_PREFIX": self.traffic.id_prefix,
            }
        )
        if self.traffic.user_file:
            env["SC_LOAD_USER_FILE"] = str(Path(self.traffic.user_file).resolve())
        cmd = [
            sys.executable, "-m", "locust",
            "-f", str(LOCUSTFILE),
            "--headless", "--users", "1", "--spawn-rate", "1",
            "--run-time", f"{int(self.max_duration_s)}s",
            "--stop-timeout", "2",
            "--host", self.targets[0]["url"],
            "--only-summary", "--loglevel", "WARNING",
            "--skip-log-setup",
        ]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

        def first_record() -> None:
            if self.proc.poll() is not None:
                raise InfrastructureError(f"Locust exited at start (code {self.proc.returncode})",
                                          evidence=str(self.log_path), hint="see the Locust log")
            if self.out_path.stat().st_size == 0:
                raise NotYet("no request record yet")

        try:
            wait_until(first_record, timeout_s, 0.1, what="Locust's first request record", evidence=str(self.log_path))
        except InfrastructureError:
            self.stop()
            raise

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Locust's graceful stop: in-flight requests finish and are recorded), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
