"""What a Serve config sets for each deployment, with Serve's defaults where it sets nothing.

Read from the config dict itself (Serve's schema: ``applications[].deployments[]``),
so a value the user wrote can be told from a default: ``written`` names the keys
the config sets.  Defaults are Ray 2.60's: a replica claims 1 CPU unless
``ray_actor_options.num_cpus`` says otherwise (``ReplicaConfig``,
``ray/serve/_private/config.py``); ``num_replicas: auto`` autoscales from
``min_replicas`` 1 (``AutoscalingConfig.default``, ``ray/serve/config.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serve_chaos.runtime.app.spec import (SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S, SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S,
                              SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S)

#: Serve's default replica CPU claim (``ReplicaConfig``: num_cpus 1 when unset).
SERVE_DEFAULT_REPLICA_CPUS = 1.0
#: ``num_replicas: auto`` without ``autoscaling_config.min_replicas`` (``AutoscalingConfig.default``).
SERVE_DEFAULT_MIN_REPLICAS = 1
#: Ray 2.60 ``serve/_private/config.py`` DeploymentConfig.rolling_update_percentage.
SERVE_DEFAULT_ROLLING_UPDATE_PERCENTAGE = 0.2


@dataclass(frozen=True)
class DeploymentSettings:
    """One deployment as deployed.  Times in seconds; ``min_replicas`` is the fewest
    replicas it may run (``num_replicas``, or the autoscaling floor);
    ``max_replicas_per_node`` None means Serve's soft spreading."""

    app: str
    name: str
    min_replicas: int
    max_replicas: int
    autoscaling: bool
    max_replicas_per_node: int | None
    num_cpus: float
    health_check_period_s: float
    health_check_timeout_s: float
    graceful_shutdown_timeout_s: float
    written: frozenset[str] = field(default_factory=frozenset)
    #: A rollout's batch (``max(int(pct x target), 1)``) and how many new replicas may start before
    #: old ones stop (Ray 2.60 ``DeploymentConfig``; 0: old ones stop first).
    rolling_update_percentage: float = SERVE_DEFAULT_ROLLING_UPDATE_PERCENTAGE
    max_surge_percent: float = 0.0
    #: ``autoscaling_config.initial_replicas``; None when unset.
    initial_replicas: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.app}/{self.name}"

    def shown(self, key: str) -> str:
        """``key=value`` as the user's config has it, or ``key unset (Serve's default: x)``."""
        value = {"num_replicas": self._replicas_text(), "max_replicas_per_node": self.max_replicas_per_node,
                 "num_cpus": self.num_cpus}.get(key, getattr(self, key, None))
        if key in self.written or (key == "num_replicas" and self.autoscaling):
            return f"{key}={value}"
        default = "soft spreading" if key == "max_replicas_per_node" else value
        return f"{key} unset (Serve's default: {default})"

    def _replicas_text(self) -> str:
        return f"auto ({self.min_replicas}-{self.max_replicas})" if self.autoscaling else str(self.min_replicas)

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "name": self.name, "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas, "autoscaling": self.autoscaling,
                "max_replicas_per_node": self.max_replicas_per_node, "num_cpus": self.num_cpus,
                "health_check_period_s": self.health_check_period_s,
                "health_check_timeout_s": self.health_check_timeout_s,
                "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s, "written": sorted(self.written),
                "rolling_update_percentage": self.rolling_update_percentage,
                "max_surge_percent": self.max_surge_percent, "initial_replicas": self.initial_replicas}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeploymentSettings":
        return cls(**{**{k: v for k, v in data.items() if k != "written"},
                      "written": frozenset(data.get("written") or ())})


def _replicas(dep: dict[str, Any]) -> tuple[int, int, bool]:
    auto = dep.get("autoscaling_config")
    if dep.get("num_replicas") == "auto" or isinstance(auto, dict):
        auto = auto if isinstance(auto, dict) else {}
        low = int(auto.get("min_replicas", SERVE_DEFAULT_MIN_REPLICAS))
        return low, int(auto.get("max_replicas", max(low, 100))), True
    count = int(dep.get("num_replicas", 1))
    return count, count, False


def _initial_replicas(dep: dict[str, Any]) -> int | None:
    auto = dep.get("autoscaling_config")
    value = auto.get("initial_replicas") if isinstance(auto, dict) else None
    return int(value) if value is not None else None


def deployment_settings(serve_config: dict[str, Any]) -> list[DeploymentSettings]:
    """Every deployment of every application, in config order."""
    out = []
    for app in serve_config.get("applications") or []:
        for dep in app.get("deployments") or []:
            low, high, auto = _replicas(dep)
            actor = dep.get("ray_actor_options") or {}
            written = {k for k in dep if dep[k] is not None}
            if actor.get("num_cpus") is not None:
                written.add("num_cpus")
            if dep.get("num_replicas") is not None:
                written.add("num_replicas")
            out.append(DeploymentSettings(
                app=str(app.get("name", "default")), name=str(dep.get("name")), min_replicas=low, max_replicas=high,
                autoscaling=auto, max_replicas_per_node=dep.get("max_replicas_per_node"),
                initial_replicas=_initial_replicas(dep),
                num_cpus=float(actor["num_cpus"]) if actor.get("num_cpus") is not None else SERVE_DEFAULT_REPLICA_CPUS,
                health_check_period_s=float(dep.get("health_check_period_s", SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S)),
                health_check_timeout_s=float(dep.get("health_check_timeout_s", SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S)),
                graceful_shutdown_timeout_s=float(dep.get("graceful_shutdown_timeout_s",
                                                          SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S)),
                written=frozenset(written),
                rolling_update_percentage=float(dep.get("rolling_update_percentage")
                                                or SERVE_DEFAULT_ROLLING_UPDATE_PERCENTAGE),
                max_surge_percent=float(dep.get("max_surge_percent") or 0.0)))
    return out


def request_timeout_s(serve_config: dict[str, Any]) -> float | None:
    """``http_options.request_timeout_s``: the proxy's end-to-end HTTP timeout (None: no timeout)."""
    value = (serve_config.get("http_options") or {}).get("request_timeout_s")
    return None if value is None else float(value)


def composed_apps(serve_config: dict[str, Any]) -> list[str]:
    """Applications with more than one deployment: their ingress calls the others through handles."""
    return [str(app.get("name", "default")) for app in serve_config.get("applications") or []
            if len(app.get("deployments") or []) > 1]


def app_summary(serve_config: dict[str, Any], source: str) -> dict[str, Any]:
    """What a verdict keeps of the app's config: each deployment's settings, the HTTP
    request timeout, and where the config came from (the report names the user's file)."""
    return {"source": source, "deployments": [d.to_dict() for d in deployment_settings(serve_config)],
            "request_timeout_s": request_timeout_s(serve_config), "composed": composed_apps(serve_config)}
