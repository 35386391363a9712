"""What load a scenario offers: the rate, the endpoints it aims at, and what the requests are."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve_chaos.harness.load.slots import FRONT_DOOR, SlotTable, check_endpoint_names
from serve_chaos.runtime.cluster import Endpoints
from serve_chaos.runtime.errors import ConfigError

__all__ = ["FRONT_DOOR", "LoadSpec", "Traffic", "resolve_endpoints", "write_targets"]


@dataclass(frozen=True)
class LoadSpec:
    """Offered load.

    ``rate`` is requests per second *per endpoint* (constant arrival rate);
    ``timeout_s`` the per-request timeout (seconds).  ``endpoints`` names where
    to send: ``front`` (the front door), ``role:<role>`` (the current pod of a
    role, e.g. the head, followed across recreations), ``pods:<role>`` (a slot
    per pod of that role ready when the load starts, ``pods:worker#1``, ...,
    each following its pod into its recreation) or ``pod:<name>`` (a slot that
    starts on that pod's own proxy, like ``kubectl port-forward``); see
    ``serve_chaos.harness.load.slots``.  Roles, not names: pod names are the target's (KubeRay
    generates them).
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
        check_endpoint_names(self.endpoints)


@dataclass(frozen=True)
class Traffic:
    """What the requests are and how they are tagged.

    ``requests``: the app's routes (``RequestSpec.model_dump()`` dicts), mixed by
    weight; ``id_prefix``: the start of every request's unique ``X-Request-Id``;
    ``user_file``: a user's locustfile whose tasks replace ``requests``; ``workers``: how many
    Locust worker processes send it (Locust's distributed mode; 1: one process, no master).
    """

    requests: tuple[dict[str, Any], ...] = ()
    id_prefix: str = "sc0"
    user_file: str | None = None
    workers: int = 1


def resolve_endpoints(spec: LoadSpec, endpoints: Endpoints, roles: dict[str, str],
                      ready: set[str] | None = None) -> list[dict[str, Any]]:
    """The load's targets when it starts: ``{"name", "url", "role", "pod", "incarnation",
    "keepalive"}`` per endpoint (``serve_chaos.harness.load.slots.SlotTable.start``); ``roles`` maps pod -> role.
    ``pods:<role>`` takes only pods in ``ready`` (when given).  A per-pod or role target the
    cluster reaches through a port-forward (``Endpoints.forwarded``) is ``keepalive``: the load
    keeps its connections to it open instead of paying a websocket setup per request."""
    return SlotTable.start(spec.endpoints, endpoints, roles, ready).dicts()


def write_targets(path: Path, targets: list[dict[str, Any]]) -> None:
    """Write the targets file the Locust process re-reads, atomically (it never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(targets))
    os.replace(tmp, path)
