"""Ray's drain API on a node of the kube target: what the autoscaler calls before a preemption.

Ray 2.60's hidden CLI ``ray drain-node`` (``ray/scripts/scripts.py`` drain_node:
``--address``, ``--node-id`` hex, ``--reason`` one of ``autoscaler_pb2.DrainNodeReason``
but UNSPECIFIED, ``--reason-message``, ``--deadline-remaining-seconds`` int) calls
``GcsClient.drain_node``; a drain the GCS does not accept ends in a ``ClickException``:
``Error: The drain request is not accepted: <why>`` and exit 1.  It kills nothing: the
node is lost at the deadline by whoever drained it (here: the scenario's node loss).
The node is found in the dashboard's State API (``/api/v0/nodes``) by the pod's IP.
"""

from __future__ import annotations

from typing import Any

from serve_chaos.runtime.errors import ConfigError

#: ``ray.core.generated.autoscaler_pb2.DrainNodeReason`` without UNSPECIFIED (Ray 2.60).
DRAIN_REASONS = ("DRAIN_NODE_REASON_IDLE_TERMINATION", "DRAIN_NODE_REASON_PREEMPTION")
#: The GCS port KubeRay starts the head with (``utils/constant.go`` DefaultGcsServerPort).
GCS_PORT = 6379


def check_drain(reason: str, deadline_s: float) -> None:
    if reason not in DRAIN_REASONS:
        raise ConfigError(f"drain reason {reason!r} is not one of Ray's", hint=f"use {' or '.join(DRAIN_REASONS)}")
    if not 0 <= deadline_s < 10**7:
        raise ConfigError(f"drain deadline {deadline_s} s must be >= 0 seconds")


def node_id_for_ip(nodes: list[dict[str, Any]], ip: str) -> str | None:
    """The hex id of the ALIVE Ray node with ``ip`` (State API rows), or None."""
    for node in nodes:
        if node.get("node_ip") == ip and node.get("state") == "ALIVE":
            return str(node["node_id"])
    return None


def drain_command(head_ip: str, node_id: str, reason: str, message: str, deadline_s: float) -> list[str]:
    return ["ray", "drain-node", "--address", f"{head_ip}:{GCS_PORT}", "--node-id", node_id, "--reason", reason,
            "--reason-message", message, "--deadline-remaining-seconds", str(int(deadline_s))]


def refusal(output: str) -> str:
    """Ray's reason, one line, from what a refused ``ray drain-node`` printed."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "not accepted" in line or line.startswith("Error:"):
            return line.removeprefix("Error:").strip()
    return lines[-1] if lines else "no output"
