"""The Ray Serve fault-tolerance guide's ``SleepyPid`` app, plus a health toggle.

``GET /`` behaves exactly as the guide's example: it returns the PID of the
replica that served it.  ``GET /?work_ms=N`` does N ms of (awaited) work first, so
requests are in flight when a replica is stopped (graceful shutdown has work to wait for).  ``POST /-/chaos/health?mode=raise|hang|ok`` flips the
replica that receives it into failing (or hanging in) ``check_health``; it
answers with that replica's PID so the harness knows its victim.  A bad version for the
bad-rollout scenarios: ``SERVE_CHAOS_BAD_VERSION`` (``constructor`` | ``health``) in the
runtime_env, or ``user_config: {serve_chaos_fail_reconfigure: true}``.  A query of death:
``GET /?serve_chaos_exit=1`` ends the replica's process.  A crash loop:
``POST /-/chaos/startgate?fail_for_s=N`` makes every SleepyPid constructor in the cluster raise
for the next N s (the gate lives in Ray's internal KV, which every replica reaches, on any target);
``GET`` on it says until when and how many starts failed.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

from ray import serve
from starlette.requests import Request

# Self-contained on purpose: the kind target ships this very file to the pods in
# a ConfigMap, without the rest of the package.  serve_chaos.runtime.app.serve_config holds
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
#: The crash-loop gate (harness/faults/crashloop.py holds the same names): a KV entry
#: ``{"until": epoch s, "failed": starts refused}``; constructors raise while ``until`` is ahead.
START_GATE_ROUTE = "/-/chaos/startgate"
START_GATE_KEY = b"serve-chaos-start-gate"
START_GATE_NAMESPACE = "serve_chaos"
#: A ``user_config`` key that makes ``reconfigure`` raise (a bad in-place update).
FAIL_RECONFIGURE_KEY = "serve_chaos_fail_reconfigure"


@serve.deployment(num_replicas=6, ray_actor_options={"num_cpus": 0})
class SleepyPid:
    def __init__(self) -> None:
        bad = os.environ.get(BAD_VERSION_ENV, "")
        if bad == "constructor":
            raise RuntimeError("serve-chaos: this version's constructor fails (SERVE_CHAOS_BAD_VERSION)")
        _refuse_start_while_gate_closed()
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
        if request.url.path.rstrip("/").endswith(START_GATE_ROUTE):
            if request.method == "POST":
                fail_for_s = min(max(float(request.query_params.get("fail_for_s", "0")), 0.0), 600.0)
                _write_gate({"until": time.time() + fail_for_s, "failed": 0})
            return {**_read_gate(), "pid": os.getpid(), "now": time.time()}
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


def _read_gate() -> dict:
    from ray.experimental import internal_kv

    raw = internal_kv._internal_kv_get(START_GATE_KEY, namespace=START_GATE_NAMESPACE)
    return json.loads(raw) if raw else {"until": 0.0, "failed": 0}


def _write_gate(gate: dict) -> None:
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(START_GATE_KEY, json.dumps(gate).encode(), overwrite=True,
                                 namespace=START_GATE_NAMESPACE)


def _refuse_start_while_gate_closed() -> None:
    """A crash loop: while the gate is closed every start fails (counted; replicas fail one by one,
    so an unlocked read-modify-write loses nothing that matters -- at least one failure is seen)."""
    gate = _read_gate()
    left_s = float(gate.get("until", 0.0)) - time.time()
    if left_s > 0:
        gate["failed"] = int(gate.get("failed", 0)) + 1
        _write_gate(gate)
        raise RuntimeError(f"serve-chaos: start gate closed for another {left_s:.1f} s (a crash loop)")


def _replica_id() -> str | None:
    """This replica's id as Serve's APIs name it (PIDs repeat across pods on Kubernetes)."""
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - an older Ray names it otherwise: the PID must do
        return None


app = SleepyPid.bind()
