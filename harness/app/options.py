"""``--app``, ``--app-dir``, ``--image``, ``--requests``, ``--locustfile``, ``--deployment``,
``--health-toggle``: the app under test from the command line, checked before anything runs.

Every mistake is one ConfigError line: a file that is missing or not Serve's
schema, a directory that is not one, an option that needs ``--app``, a
deployment the config does not have, a locustfile Locust cannot use.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serve_chaos.harness.app.selection import AppUnderTest
from serve_chaos.runtime.app.serve_config import SCENARIO_APP
from serve_chaos.runtime.app.spec import AppSpec, load_requests
from serve_chaos.runtime.errors import ConfigError


def app_spec(app: str | None, app_dir: str | None = None, image: str | None = None,
             requests: str | None = None, health_toggle: bool = False) -> AppSpec | None:
    """The user's app, or None for the bundled SleepyPid (with ``--requests`` applied to it)."""
    if app is None:
        for flag, value in (("--app-dir", app_dir), ("--image", image), ("--health-toggle", health_toggle or None)):
            if value is not None:
                raise ConfigError(f"{flag} needs --app", hint="pass --app YOUR_SERVE_CONFIG.yaml with it")
        return SCENARIO_APP.with_requests(load_requests(requests)) if requests else None
    if not Path(app).is_file():
        raise ConfigError(f"--app {app} is not a file", hint="pass the Serve config YAML `serve build` writes")
    spec = AppSpec.from_file(app, app_dir=app_dir, image=image, requests_file=requests)
    return spec.with_health_toggle(health_toggle)


def check_locustfile(path: str) -> None:
    """Load the locustfile in a process of its own (Locust patches the interpreter)."""
    if not Path(path).is_file():
        raise ConfigError(f"--locustfile {path} is not a file")
    proc = subprocess.run([sys.executable, "-m", "serve_chaos.harness.load.userload", path], capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        why = (proc.stdout.strip() or proc.stderr.strip().splitlines()[-1:] or ["it failed to load"])
        raise ConfigError(f"--locustfile {path} cannot drive the load: {why if isinstance(why, str) else why[0]}",
                          hint="one HttpUser subclass with @task methods that use self.client")


def app_under_test(spec: AppSpec | None, deployment: str | None = None, requests: str | None = None,
                   locustfile: str | None = None) -> AppUnderTest:
    """The app a run tests, with where its replica faults aim and whose load drives it."""
    if requests and locustfile:
        raise ConfigError("--requests and --locustfile both describe the traffic; pass one of them")
    base = spec or SCENARIO_APP
    if deployment is not None:
        base.deployment(deployment)  # a ConfigError naming the deployments there are
    if locustfile:
        check_locustfile(locustfile)
    elif not base.routes():
        raise ConfigError(f"no application of {base.label()} is exposed over HTTP (every route_prefix is null)",
                          hint="pass --requests or --locustfile with the requests that reach it")
    return AppUnderTest(base=base, deployment=deployment, locustfile=locustfile)
