"""Serve config files for the apps under test (the ``serveConfigV2`` of a RayService)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from serve_chaos.runtime.app.spec import AppSpec, RequestSpec, bundled_files, replicas_at_rest
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.waiting import NotYet, wait_until

APP_NAME = "sleepy"
DEPLOYMENT_NAME = "SleepyPid"
IMPORT_PATH = "serve_chaos.runtime.app.sleepy_pid:app"
#: The modules of the bundled examples, shipped together (one ConfigMap on Kubernetes),
#: so a cluster carries every bundled example and scenarios may switch between them.
BUNDLED_MODULES = ("sleepy_pid", "composed", "chained")
HEALTH_MODES = ("ok", "raise", "hang", "flap")
#: Deployment options for a fast health check (1 s period, 2 s timeout), so an unhealthy or
#: frozen replica is found within seconds instead of Serve's default minute.
FAST_HEALTH_CHECK = {"health_check_period_s": 1.0, "health_check_timeout_s": 2.0}


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

    def spec(self) -> AppSpec:
        """This SleepyPid as the app under test: bundled, answering the health toggle."""
        return AppSpec.of(self.to_serve_config(), "bundled SleepyPid (runtime/app/sleepy_pid.py)",
                          files=bundled_files(*BUNDLED_MODULES), health_toggle=True, bundled="sleepy_pid")

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


#: Deployment options Serve updates without restarting replicas (Ray 2.60 ``serve/_private/config.py``:
#: every ``DeploymentConfig`` field whose update_type is LightWeight, NeedsReconfigure or
#: NeedsActorReconfigure; the Serve guide's "Updating Applications In-Place").  Anything else
#: -- code, ``ray_actor_options``, ``runtime_env``, ``max_replicas_per_node``, placement -- rolls
#: every replica (``version.py`` ``requires_actor_restart``).
LIGHTWEIGHT_OPTIONS = ("num_replicas", "max_ongoing_requests", "max_queued_requests", "user_config",
                       "graceful_shutdown_timeout_s", "graceful_shutdown_wait_loop_s", "health_check_period_s",
                       "health_check_timeout_s", "autoscaling_config", "request_router_config", "logging_config",
                       "max_constructor_retry_count", "rolling_update_percentage", "max_surge_percent",
                       "backpressure_config")


def restarts_replicas(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether going from Serve config ``old`` to ``new`` restarts replicas (a rolling update or a
    new app), rather than updating them in place."""
    def heavy(config: dict[str, Any]) -> Any:
        out = json.loads(json.dumps(config))
        for app in out.get("applications", []):
            app.pop("route_prefix", None)
            for dep in app.get("deployments", []):
                for key in LIGHTWEIGHT_OPTIONS:
                    dep.pop(key, None)
        return out

    return heavy(old) != heavy(new)


def desired_replicas(serve_config: dict[str, Any]) -> int:
    """Total replicas a Serve config asks for (sum over apps and deployments)."""
    total = 0
    for app in serve_config.get("applications", []):
        for dep in app.get("deployments", []):
            total += replicas_at_rest(dep)
    return total


#: The app the scenarios run: the guide's SleepyPid, at most 2 replicas per node.
#: Serve's soft spreading placed 6 replicas 4/2/0, 3/2/1 and 6/0/0 on a head and
#: two workers here, so a worker fault would often hit nothing; 2 per node
#: makes every node host exactly 2 on every run.  The spreading scenarios
#: measure the unset and the strict (1 per node) settings explicitly.
SCENARIO_SLEEPY = SleepyPidConfig(max_replicas_per_node=2)
SCENARIO_APP = SCENARIO_SLEEPY.spec()


def composed_app(replicas: int = 3, max_per_node: int = 2) -> AppSpec:
    """The bundled composed example (``runtime/app/composed.py``): ``Ingress`` calls
    ``Downstream`` through a DeploymentHandle; ``replicas`` of each, at most
    ``max_per_node`` of each per node -- 2, so a drained or lost node's replicas have
    somewhere to go on three nodes (Serve spreads them one per node when it can)."""
    deployments = [{"name": name, "num_replicas": replicas, "max_replicas_per_node": max_per_node,
                    "ray_actor_options": {"num_cpus": 0}} for name in ("Ingress", "Downstream")]
    config = {"applications": [{"name": "composed", "route_prefix": "/", "import_path": "serve_chaos.runtime.app.composed:app",
                                "deployments": deployments}]}
    return AppSpec.of(config, "bundled composed example (runtime/app/composed.py)",
                      files=bundled_files(*BUNDLED_MODULES), bundled="composed")


COMPOSED_APP = composed_app()


def chained_app(replicas: int = 3, max_per_node: int = 2) -> AppSpec:
    """The bundled chained example (``runtime/app/chained.py``): ``Ingress`` passes ``Embed``'s
    unresolved response into its call to ``Score``; ``replicas`` of each, at most ``max_per_node``
    of each per node."""
    deployments = [{"name": name, "num_replicas": replicas, "max_replicas_per_node": max_per_node,
                    "ray_actor_options": {"num_cpus": 0}} for name in ("Ingress", "Embed", "Score")]
    config = {"applications": [{"name": "chained", "route_prefix": "/", "import_path": "serve_chaos.runtime.app.chained:app",
                                "deployments": deployments}]}
    return AppSpec.of(config, "bundled chained example (runtime/app/chained.py)",
                      files=bundled_files(*BUNDLED_MODULES), bundled="chained")


CHAINED_APP = chained_app()

#: Requests of the planned-disruption scenarios on SleepyPid: half of them do 250 ms of work,
#: so a replica being stopped has requests in flight for its graceful shutdown to finish.
WORK_REQUESTS = (RequestSpec(name="instant", path="/"), RequestSpec(name="work-250ms", path="/?work_ms=250"))
#: SleepyPid for planned disruptions: the scenarios' app (2 replicas per node) with that traffic.
PLANNED_APP = SCENARIO_APP.with_requests(WORK_REQUESTS)
#: Long requests (2 s of work each): a pod deleted under them has requests in flight on every path.
LONG_REQUESTS = (RequestSpec(name="work-2s", path="/?work_ms=2000"),)
LONG_REQUEST_APP = SCENARIO_APP.with_requests(LONG_REQUESTS)
#: Replica autoscaling on SleepyPid: from 2 replicas at rest up to 6 (2 per node), 2 requests in
#: flight per replica; metrics every 1 s averaged over 5 s, a rise acted on after 3 s, a fall after
#: 15 s -- a step of under a minute shows a whole cycle.  The requests do 0.5 s of work each.
AUTOSCALING = {"min_replicas": 2, "max_replicas": 6, "target_ongoing_requests": 2, "metrics_interval_s": 1.0,
               "look_back_period_s": 5.0, "upscale_delay_s": 3.0, "downscale_delay_s": 15.0}
AUTOSCALING_WORK_S = 0.5


def autoscaling_app() -> AppSpec:
    """SleepyPid (2 s constructor) with ``AUTOSCALING`` instead of a fixed ``num_replicas``."""
    config = SCENARIO_SLEEPY.with_(constructor_sleep_s=2.0).to_serve_config()
    deployment = config["applications"][0]["deployments"][0]
    deployment.pop("num_replicas")
    deployment["autoscaling_config"] = dict(AUTOSCALING)
    requests = (RequestSpec(name="work-500ms", path=f"/?work_ms={AUTOSCALING_WORK_S * 1000:g}"),)
    return AppSpec.of(config, "bundled SleepyPid (runtime/app/sleepy_pid.py), autoscaling",
                      files=bundled_files(*BUNDLED_MODULES), health_toggle=True,
                      bundled="sleepy_pid").with_requests(requests)


AUTOSCALING_APP = autoscaling_app()
#: A drain needs room for the replacements elsewhere: up to 3 SleepyPid replicas per node (two
#: nodes then hold all 6); the composed example has room already (2 of each per node).
DRAIN_APP = SleepyPidConfig(max_replicas_per_node=3).spec().with_requests(WORK_REQUESTS)
#: A bad rollout waits for Serve's failure threshold, min(20, 3 x target) failed starts, each after
#: the constructor: 3 replicas (9 failures) with a 2 s model load keep that under a minute (measured
#: with 6 replicas and the guide's 10 s: ~14 s a failure, over 4 minutes for a bad reconfigure; with
#: 6 and 2 s: 45-102 s).
BAD_ROLLOUT_APP = SCENARIO_SLEEPY.with_(constructor_sleep_s=2.0, num_replicas=3).spec().with_requests(WORK_REQUESTS)


def _subset_differs(want: Any, got: Any) -> bool:
    """Whether ``got`` lacks or changes anything ``want`` sets (dicts compared key by key)."""
    if isinstance(want, dict):
        return not isinstance(got, dict) or any(_subset_differs(v, got.get(k)) for k, v in want.items())
    if isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(want, bool):
        return float(want) != float(got)
    return want != got


class AppDeployFailed(ConfigError):
    """Serve could not deploy an application of the config (an import that fails, a
    constructor that raises): the user's mistake, not a fault -- nothing is injected."""


def deploy_failure(details: dict[str, Any]) -> AppDeployFailed | None:
    """An application Serve reports DEPLOY_FAILED, with the last line of its message (the exception)."""
    for name, app in (details.get("applications") or {}).items():
        if app.get("status") == "DEPLOY_FAILED":
            lines = [ln.strip() for ln in str(app.get("message") or "").splitlines() if ln.strip()]
            return AppDeployFailed(f"Serve could not deploy application {name!r}: {lines[-1] if lines else 'no message'}",
                                   hint="check the import_path, --app-dir (or --image) and the app's constructor; "
                                        "`serve run` the config locally shows the full traceback")
    return None


#: What proves a Serve proxy routes: ``GET /-/routes`` answers 200 with the routes it has
#: (the app's own routes are the gate's business: a user's app need not answer ``/``).
PROXY_ROUTES_PATH = "/-/routes"


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
            ignored = placement_not_in_effect(name, dep, (apps.get(name) or {}).get("deployments") or {})
            if ignored:
                return ignored
    return None


#: Replica options Serve 2.60 keeps out of its "did the deployment change" test:
#: ``deployment_state.py`` ``DeploymentState.deploy`` compares the deployment config, the
#: ray_actor_options, the route prefix and the code version, not these ``replica_config``
#: fields.  A config that changes only them is shown in ``deployed_app_config`` and never
#: applied (measured on the k8s target: max_replicas_per_node 2 -> 3 stayed 2 for minutes).
PLACEMENT_OPTIONS = ("max_replicas_per_node", "placement_group_bundles", "placement_group_strategy")


def placement_not_in_effect(app: str, dep: dict[str, Any], running: dict[str, Any]) -> str | None:
    """Why a deployment's placement options (``PLACEMENT_OPTIONS``) as set in ``dep`` are not
    the ones its replicas run with (``deployments.<name>.deployment_config`` of the REST API),
    or None.  An option the API does not report (an older Ray) is taken as in effect."""
    effective = (running.get(dep.get("name")) or {}).get("deployment_config") or {}
    for key in PLACEMENT_OPTIONS:
        if key in dep and key in effective and _subset_differs(dep[key], effective[key]):
            return (f"deployment {app}/{dep.get('name')} runs {key} {effective[key]!r}, not {dep[key]!r}: Serve "
                    "took the config but not the change (it ignores a change of placement options alone)")
    return None


def wait_apps_deleted(session: Any, dashboard_url: str, timeout_s: float = 60.0) -> None:
    """Wait until the dashboard (``GET /api/serve/applications/``) lists no application;
    InfrastructureError after ``timeout_s`` (s)."""
    def gone() -> None:
        try:
            apps = session.get(f"{dashboard_url}/api/serve/applications/", timeout=5).json()
        except (OSError, ValueError) as err:
            raise NotYet(f"the dashboard does not answer: {type(err).__name__}") from None
        if apps.get("applications"):
            raise NotYet(f"still deployed: {', '.join(apps['applications'])}")

    wait_until(gone, timeout_s, 0.5, what="the old applications to be deleted")
