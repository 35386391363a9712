"""Container probes, run as the kubelet's prober runs them (``pkg/kubelet/prober``).

Each probe of a running container has a worker: it waits ``initialDelaySeconds``, then every
``periodSeconds`` runs the check with ``timeoutSeconds``, and flips its result after
``successThreshold`` successes or ``failureThreshold`` failures in a row.  Readiness starts
at failure, liveness and startup at success; liveness and readiness wait until the startup
probe has succeeded (``worker.go``).  Checks:
- ``exec``: the command inside the container (its namespaces and cgroups); exit 0 passes;
- ``httpGet``: a GET from the node (the host's network) to the pod's address, 200-399 passes
  (``probe/http``), redirects not followed;
- ``tcpSocket``: a connection from the node to the pod's address;
- ``grpc`` is not written here and always fails, saying so.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import requests

DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
            "failureThreshold": 3}


@dataclass
class ProbeResult:
    ok: bool
    message: str = ""


def _port(value: Any, container: dict[str, Any]) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"no port named {value!r} in container {container['name']}")


def check(probe: dict[str, Any], container: dict[str, Any], pod_ip: str,
          run_exec: Callable[[list[str], float], tuple[int | None, str]]) -> ProbeResult:
    timeout = float(probe.get("timeoutSeconds") or DEFAULTS["timeoutSeconds"])
    try:
        if "exec" in probe:
            code, out = run_exec(probe["exec"]["command"], timeout)
            if code is None:
                return ProbeResult(False, f"command timed out after {timeout:.0f}s")
            return ProbeResult(code == 0, out.strip()[-300:] if code else "")
        if "httpGet" in probe:
            get = probe["httpGet"]
            host = get.get("host") or pod_ip
            url = f"{(get.get('scheme') or 'HTTP').lower()}://{host}:{_port(get['port'], container)}{get.get('path') or '/'}"
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            answer = requests.get(url, headers=headers, timeout=timeout, allow_redirects=False, verify=False)
            ok = 200 <= answer.status_code < 400
            return ProbeResult(ok, "" if ok else f"HTTP probe failed with statuscode: {answer.status_code}")
        if "tcpSocket" in probe:
            with socket.create_connection((probe["tcpSocket"].get("host") or pod_ip,
                                           _port(probe["tcpSocket"]["port"], container)), timeout=timeout):
                return ProbeResult(True)
        return ProbeResult(False, "this node runs exec, httpGet and tcpSocket probes only")
    except (requests.RequestException, OSError, ValueError) as err:
        return ProbeResult(False, f"{type(err).__name__}: {err}"[:300])


class ProbeWorker(threading.Thread):
    """Runs one probe of one container incarnation until ``stop`` is set; ``result`` is its state.
    ``on_change(kind, result, changed, message)``: after every failed check, and when the result flips."""

    def __init__(self, kind: str, probe: dict[str, Any], container: dict[str, Any], pod_ip: str,
                 run_exec: Callable[[list[str], float], tuple[int | None, str]],
                 gate: Callable[[], bool], on_change: Callable[[str, bool, bool, str], None]) -> None:
        super().__init__(daemon=True, name=f"probe-{kind}-{container['name']}")
        self.kind = kind
        self.probe = {**DEFAULTS, **probe}
        self.container = container
        self.pod_ip = pod_ip
        self.run_exec = run_exec
        self.gate = gate  # False until the startup probe passed (for liveness and readiness)
        self.on_change = on_change
        self.result = kind != "readiness"
        self.stop = threading.Event()

    def run(self) -> None:
        if self.stop.wait(float(self.probe["initialDelaySeconds"])):
            return
        streak_ok = streak_fail = 0
        period = max(1.0, float(self.probe["periodSeconds"]))
        while not self.stop.is_set():
            t0 = time.monotonic()
            if self.gate():
                outcome = check(self.probe, self.container, self.pod_ip, self.run_exec)
                if self.stop.is_set():
                    return
                streak_ok, streak_fail = (streak_ok + 1, 0) if outcome.ok else (0, streak_fail + 1)
                if not self.result and streak_ok >= int(self.probe["successThreshold"]):
                    self.result = True
                    self.on_change(self.kind, True, True, outcome.message)
                elif self.result and streak_fail >= int(self.probe["failureThreshold"]):
                    self.result = False
                    self.on_change(self.kind, False, True, outcome.message)
                elif not outcome.ok:
                    self.on_change(self.kind, self.result, False, outcome.message)  # an Unhealthy event
            self.stop.wait(max(0.0, period - (time.monotonic() - t0)))
