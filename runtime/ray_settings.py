"""Ray 2.60 defaults that shape recovery times, written out so verdicts can cite them.

Node health checking lives in the GCS (``src/ray/common/ray_config_def.h``):
a check every ``health_check_period_ms``, each allowed ``health_check_timeout_ms``,
a node declared dead after ``health_check_failure_threshold`` failures in a row.
A node that *refuses* connections fails each check at once (about
threshold x period = 15 s); a node that went *silent* makes every check run
into its timeout (about threshold x (timeout + period) = 65 s).
"""

from __future__ import annotations

import os

RAY_NODE_HEALTH_CHECK_DEFAULTS = {
    "health_check_initial_delay_ms": 5000,
    "health_check_period_ms": 3000,
    "health_check_timeout_ms": 10000,
    "health_check_failure_threshold": 5,
}
#: Serve marks a replica unhealthy after this many failed checks in a row.
SERVE_REPLICA_UNHEALTHY_THRESHOLD = 3
#: The Serve controller checks each proxy every 10 s and replaces it after 3 failures in a row;
#: a new proxy has 5 s to report ready (Ray 2.60 ``serve/_private/constants.py``:
#: PROXY_HEALTH_CHECK_PERIOD_S, PROXY_HEALTH_CHECK_UNHEALTHY_THRESHOLD, PROXY_READY_CHECK_TIMEOUT_S).
SERVE_PROXY_HEALTH_CHECK_PERIOD_S = 10.0
#: How long one proxy health check may take before it counts as failed (``PROXY_HEALTH_CHECK_TIMEOUT_S``).
SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S = 10.0
SERVE_PROXY_UNHEALTHY_THRESHOLD = 3
SERVE_PROXY_READY_TIMEOUT_S = 5.0
#: Serve waits this long (s) for a stopping replica before it is force-killed.
SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S = 20.0
#: Ray's default for how long a raylet waits for a vanished GCS (s).
RAY_DEFAULT_GCS_RECONNECT_TIMEOUT_S = 60


def node_health_check(env: dict[str, str] | None = None) -> dict[str, int]:
    """Defaults, overridden by ``RAY_<name>`` env vars as Ray itself reads them."""
    env = os.environ if env is None else env
    return {k: int(env.get(f"RAY_{k}", v)) for k, v in RAY_NODE_HEALTH_CHECK_DEFAULTS.items()}


def silent_node_death_bound_s(settings: dict[str, int] | None = None) -> float:
    """Longest time (s) for the GCS to declare a silent node dead."""
    s = settings or node_health_check()
    return s["health_check_failure_threshold"] * (s["health_check_timeout_ms"] + s["health_check_period_ms"]) / 1000
