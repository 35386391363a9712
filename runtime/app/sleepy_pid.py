"""The Ray Serve fault-tolerance guide's ``SleepyPid`` app, plus a health toggle.

``GET /`` behaves exactly as the guide's example: it returns the PID of the
replica that served it.  ``GET /?work_ms=N`` does N ms of (awaited) work first, so
requests are in flight when a replica is stopped (graceful shutdown has work to wait for).  ``POST /-/chaos/health?mode=raise|hang|ok`` flips the
replica that receives it into failing (or hanging in) ``check_health``; it
answers with that replica's PID so the harness knows its victim.  A bad version for the
bad-rollout scenarios: ``SERVE_CHAOS_BAD_VERSION`` (``constructor`` | ``health``) in the
runtime_env, or ``user_config: {serve_chaos_fail_reconfigure: true}``.  A query of death:
``GET /?serve_chaos_exit=1`` ends the replica's process.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

from ray import serve
from starlette.requests import Request

# Self-contained on purpose: the kind target ships this very file to the pods in
# a ConfigMap, without the rest of the package.  runtime.app.serve_config holds
# the same two constants for the harness (a test keeps them equal).
HEALTH_ROUTE = "/-/chaos/health"
HEALTH_MODES = ("ok", "raise", "hang", "flap")

#: The most work (ms) one request may ask for with ``?work_ms=``.
MAX_WORK_MS = 10_000.0

#: Seconds the constructor sleeps, as in the guide (a slow model load).
CONSTRUCTOR_SLEEP_S = float(os.environ.get("SLEEPY_PID_CONSTRUCTOR_SLEEP_S", "10"))

#: A deliberately bad version, set in the deployment's runtime_env by the bad-rollout scenarios
#: (harness/faults/badversion.py holds the same names): ``constructor`` raises in ``__init__``,
#: ``health`` fails every ``check_health``.  Read in ``__init__``, not at import: Ray pickles a
#: deployment class by value (cloudpickle ``_should_pickle_by_reference`` is False for it), so
#: the module globals its methods read are fixed in the task that builds the app, which runs
#: without the deployment's env vars (measured: read at import, the bad version started fine).
BAD_VERSION_ENV = "SERVE_CHAOS_BAD_VERSION"
#: A query of death: ``GET /?serve_chaos_exit=1`` makes the replica that serves it exit at once
#: (harness/faults/poison.py holds the same name).
EXIT_QUERY = "serve_chaos_exit"
#: A ``user_config`` key that makes ``reconfigure`` raise (a bad in-place update).
FAIL_RECONFIGURE_KEY = "serve_chaos_fail_reconfigure"


@serve.deployment(num_replicas=6, ray_actor_options={"num_cpus": 0})
class SleepyPid:
    def __init__(self) -> None:
        bad = os.environ.get(BAD_VERSION_ENV, "")
        if bad == "constructor":
            raise RuntimeError("serve-chaos: this version's constructor fails (SERVE_CHAOS_BAD_VERSION)")
        time.sleep(0.0 if bad == "health" else CONSTRUCTOR_SLEEP_S)
        self._health_mode = "raise" if bad == "health" else "ok"
        self._flap_left = 0
        self._failed_checks = 0

    def reconfigure(self, config: dict) -> None:
        if config.get(FAIL_RECONFIGURE_KEY):
            raise RuntimeError("serve-chaos: this user_config makes reconfigure fail")

    async def __call__(self, request: Request) -> int | dict:
        if request.url.path.rstrip("/").endswith(HEALTH_ROUTE):
            mode = request.query_params.get("mode", "raise")
            if mode not in HEALTH_MODES:
                return {"error": f"mode must be one of {HEALTH_MODES}", "pid": os.getpid()}
            if mode == "flap":
                self._flap_left = max(0, int(request.query_params.get("failures", "1")))
                self._failed_checks = 0  # this flap's count, not an earlier one's
            self._health_mode = mode
            return {"pid": os.getpid(), "mode": mode, "failed_checks": self._failed_checks,
                    "replica_id": _replica_id()}
        if request.query_params.get(EXIT_QUERY):
            os._exit(17)  # a request that crashes its replica (a segfault in a model, an OOM-kill)
        work_ms = request.query_params.get("work_ms")
        if work_ms:
            await asyncio.sleep(min(max(float(work_ms), 0.0), MAX_WORK_MS) / 1000.0)
        return os.getpid()

    def check_health(self) -> None:
        if self._health_mode == "flap":
            if self._flap_left > 0:
                self._flap_left -= 1
                self._failed_checks += 1
                raise RuntimeError("serve-chaos: health check flapping")
            self._health_mode = "ok"
        if self._health_mode == "raise":
            self._failed_checks += 1
            raise RuntimeError("serve-chaos: health check switched to fail")
        if self._health_mode == "hang":
            # Blocking (not awaiting) is the point: a hung check must hit the timeout.
            threading.Event().wait()


def _replica_id() -> str | None:
    """This replica's id as Serve's APIs name it (PIDs repeat across pods on Kubernetes)."""
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - an older Ray names it otherwise: the PID must do
        return None


app = SleepyPid.bind()
