"""Serve config files for the apps under test (the ``serveConfigV2`` of a RayService)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from runtime.errors import ConfigError

APP_NAME = "sleepy"
DEPLOYMENT_NAME = "SleepyPid"
IMPORT_PATH = "runtime.app.sleepy_pid:app"
#: Serve's own defaults, written out so a verdict can say what was in effect.
SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S = 10.0
SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S = 30.0
#: The app's own route that switches the receiving replica's check_health.
HEALTH_ROUTE = "/-/chaos/health"
HEALTH_MODES = ("ok", "raise", "hang")


@dataclass(frozen=True)
class SleepyPidConfig:
    """The guide's SleepyPid deployment.

    ``health_check_period_s`` / ``health_check_timeout_s`` (seconds) left as
    ``None`` mean Serve's defaults (10 s / 30 s).  ``max_replicas_per_node``
    ``None`` means Serve's soft spreading.  ``constructor_sleep_s`` is the
    sleep in ``__init__`` (seconds; 10 in the guide).
    """

    num_replicas: int = 6
    health_check_period_s: float | None = None
    health_check_timeout_s: float | None = None
    max_replicas_per_node: int | None = None
    constructor_sleep_s: float = 10.0
    serve_port: int = 8000

    def __post_init__(self) -> None:
        if self.num_replicas < 1:
            raise ConfigError(f"num_replicas must be >= 1, got {self.num_replicas}")
        for name in ("health_check_period_s", "health_check_timeout_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {value}")
        if self.max_replicas_per_node is not None and self.max_replicas_per_node < 1:
            raise ConfigError(f"max_replicas_per_node must be >= 1, got {self.max_replicas_per_node}")

    def with_(self, **changes: Any) -> "SleepyPidConfig":
        return replace(self, **changes)

    def effective_health_check(self) -> tuple[float, float]:
        """(period_s, timeout_s) that Serve will use."""
        return (
            self.health_check_period_s or SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S,
            self.health_check_timeout_s or SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S,
        )

    def to_serve_config(self) -> dict[str, Any]:
        deployment: dict[str, Any] = {
            "name": DEPLOYMENT_NAME,
            "num_replicas": self.num_replicas,
            "ray_actor_options": {"num_cpus": 0},
        }
        if self.health_check_period_s is not None:
            deployment["health_check_period_s"] = self.health_check_period_s
        if self.health_check_timeout_s is not None:
            deployment["health_check_timeout_s"] = self.health_check_timeout_s
        if self.max_replicas_per_node is not None:
            deployment["max_replicas_per_node"] = self.max_replicas_per_node
        app: dict[str, Any] = {
            "name": APP_NAME,
            "route_prefix": "/",
            "import_path": IMPORT_PATH,
            "deployments": [deployment],
        }
        if self.constructor_sleep_s != 10.0:
            app["runtime_env"] = {
                "env_vars": {"SLEEPY_PID_CONSTRUCTOR_SLEEP_S": str(self.constructor_sleep_s)}
            }
        return {
            "proxy_location": "EveryNode",
            "http_options": {"host": "0.0.0.0", "port": self.serve_port},
            "applications": [app],
        }


def desired_replicas(serve_config: dict[str, Any]) -> int:
    """Total replicas a Serve config asks for (sum over apps and deployments)."""
    total = 0
    for app in serve_config.get("applications", []):
        for dep in app.get("deployments", []):
            total += int(dep.get("num_replicas", 1))
    return total


def health_check_settings(serve_config: dict[str, Any]) -> dict[str, float]:
    """The health-check period and timeout (s) in effect for the first deployment."""
    for app in serve_config.get("applications", []):
        for dep in app.get("deployments", []):
            return {
                "health_check_period_s": float(
                    dep.get("health_check_period_s", SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S)
                ),
                "health_check_timeout_s": float(
                    dep.get("health_check_timeout_s", SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S)
                ),
                "max_replicas_per_node": dep.get("max_replicas_per_node"),
            }
    return {}


#: The app the scenarios run: the guide's SleepyPid, at most 2 replicas per node.
#: Serve's soft spreading placed 6 replicas 4/2/0, 3/2/1 and 6/0/0 on a head and
#: two workers here, so a worker fault would often hit nothing; 2 per node
#: makes every node host exactly 2 on every run.  The spreading scenarios
#: measure the unset and the strict (1 per node) settings explicitly.
SCENARIO_APP = SleepyPidConfig(max_replicas_per_node=2)


def _subset_differs(want: Any, got: Any) -> bool:
    """Whether ``got`` lacks or changes anything ``want`` sets (dicts compared key by key)."""
    if isinstance(want, dict):
        return not isinstance(got, dict) or any(_subset_differs(v, got.get(k)) for k, v in want.items())
    if isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(want, bool):
        return float(want) != float(got)
    return want != got


def deployed_config_problem(desired: dict[str, Any], details: dict[str, Any]) -> str | None:
    """Why the Serve REST API's ``applications`` (``GET /api/serve/applications/``) do not
    run ``desired``, or None.  Every field the desired config sets must be deployed as set;
    Serve fills in the rest with its defaults."""
    apps = details.get("applications") or {}
    for app in desired.get("applications", []):
        name = app.get("name", "default")
        deployed = (apps.get(name) or {}).get("deployed_app_config")
        if not deployed:
            return f"application {name} is not deployed"
        for key in ("import_path", "route_prefix"):
            if key in app and deployed.get(key) != app[key]:
                return f"application {name} runs {key} {deployed.get(key)!r}, not {app[key]!r}"
        by_name = {d.get("name"): d for d in deployed.get("deployments") or []}
        for dep in app.get("deployments", []):
            if _subset_differs(dep, by_name.get(dep.get("name"), {})):
                return f"deployment {name}/{dep.get('name')} is not deployed as configured"
    return None
