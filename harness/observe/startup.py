"""How long the app's replicas take to start, as the Serve controller measured it.

When a replica turns RUNNING the controller logs (``ray/serve/_private/deployment_state.py``)
``Replica(id='…', deployment='D', app='A') started successfully on node '…' after 12.3s
(PID: 123).`` (2.40 ends at ``after 12.3s.``) -- the time from creating the replica to its first good health check,
its constructor included.  The slowest of these for the app's deployments is the
replica start that recovery bounds are built on: the app's own, never an assumed one.
"""

from __future__ import annotations

from typing import Any

import requests

from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.ray_compat import LOG_FILE_API, REPLICA_STARTED_RE, LogUnavailable, log_file_params, log_text

#: The controller's line for a replica that turned RUNNING, in every supported Ray (ray_compat).
STARTED_RE = REPLICA_STARTED_RE


def start_times(log_text: str) -> dict[str, float]:
    """``app/deployment -> slowest start (s)`` among the controller log's lines."""
    out: dict[str, float] = {}
    for m in STARTED_RE.finditer(log_text):
        ref = f"{m.group('app')}/{m.group('dep')}"
        out[ref] = max(out.get(ref, 0.0), float(m.group("s")))
    return out


def measured_start_s(dashboard: str, snap: Snapshot, timeout_s: float = 10.0) -> dict[str, float]:
    """The Serve controller's measured replica starts (s) for the apps in ``snap``; empty when
    its log cannot be read (the bounds then fall back to a stated default)."""
    if not snap.controller_log or not snap.controller_node:
        return {}
    params: dict[str, Any] = log_file_params(snap.controller_node, snap.controller_log, 20000)
    try:
        resp = requests.get(dashboard.rstrip("/") + LOG_FILE_API, params=params, timeout=timeout_s)
        text = log_text(resp.status_code, resp.text)
    except (requests.RequestException, LogUnavailable):
        return {}
    deployed = {f"{a.get('app')}/{a.get('deployment')}" for a in snap.actors if a["role"] == "replica"}
    return {ref: s for ref, s in start_times(text).items() if ref in deployed}
