"""Load: Locust, headless, in a subprocess, writing one JSONL record per request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from serve_chaos.harness.load.spec import LoadSpec, Traffic, write_targets
from serve_chaos.runtime.errors import InfrastructureError
from serve_chaos.runtime.ports import free_port
from serve_chaos.runtime.waiting import NotYet, wait_until

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
__all__ = ["LoadGenerator"]


class LoadGenerator:
    """A running Locust process.  ``start`` returns once the first record is written."""

    def __init__(self, spec: LoadSpec, targets: list[dict[str, str]], out_path: Path,
                 max_duration_s: float, env_markers: dict[str, str] | None = None,
                 traffic: Traffic | None = None) -> None:
        self.spec = spec
        self.traffic = traffic or Traffic()
        self.targets = targets
        self.out_path = out_path
        self.max_duration_s = max_duration_s
        self.env_markers = env_markers or {}
        self.proc: subprocess.Popen | None = None
        #: Every Locust process of the load: the one, or the master first and its workers.
        self.procs: list[subprocess.Popen] = []
        self.log_path = out_path.with_suffix(".locust.log")
        #: The targets the Locust process re-reads about once a second (``retarget``).
        self.targets_path = out_path.with_suffix(".targets.json")
        #: The rate schedule the Locust process re-reads about once a second (``set_rates``).
        self.rates_path = out_path.with_suffix(".rates.json")

    def start(self, timeout_s: float = 20.0) -> None:
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.out_path.touch()
        write_targets(self.targets_path, self.targets)
        write_targets(self.rates_path, [])
        env = dict(os.environ)
        env.update(self.env_markers)
        env.update(
            {
                "SC_LOAD_ENDPOINTS_FILE": str(self.targets_path),
                "SC_LOAD_RATES_FILE": str(self.rates_path),
                "SC_LOAD_RATE": str(self.spec.rate),
                "SC_LOAD_TIMEOUT_S": str(self.spec.timeout_s),
                "SC_LOAD_MAX_IN_FLIGHT": str(self.spec.max_in_flight),
                "SC_LOAD_OUT": str(self.out_path),
                "SC_LOAD_REQUESTS": json.dumps(list(self.traffic.requests)),
                "SC_LOAD_ID_PREFIX": self.traffic.id_prefix,
                "SC_LOAD_WORKERS": str(self.traffic.workers),
            }
        )
        if self.traffic.user_file:
            env["SC_LOAD_USER_FILE"] = str(Path(self.traffic.user_file).resolve())
        log = open(self.log_path, "ab")
        try:
            self.procs = [self._spawn(cmd, env, log) for cmd in self._commands()]
        finally:
            log.close()
        self.proc = self.procs[0]

        def first_record() -> None:
            dead = next((proc for proc in self.procs if proc.poll() is not None), None)
            if dead is not None:
                raise InfrastructureError(f"Locust exited at start (code {dead.returncode})",
                                          evidence=str(self.log_path), hint="see the Locust log")
            if self.out_path.stat().st_size == 0:
                raise NotYet("no request record yet")

        # Locust's workers each import gevent and Locust before the master may start them.
        timeout_s = timeout_s + 5.0 * (len(self.procs) - 1)
        try:
            wait_until(first_record, timeout_s, 0.1, what="Locust's first request record", evidence=str(self.log_path))
        except InfrastructureError:
            self.stop()
            raise

    def _commands(self) -> list[list[str]]:
        """One Locust process, or Locust's master and ``traffic.workers`` workers on loopback."""
        common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING", "--skip-log-setup"]
        users = self.traffic.workers
        run = ["--headless", "--users", str(users), "--spawn-rate", str(users),
               "--run-time", f"{int(self.max_duration_s)}s", "--stop-timeout", "2",
               "--host", next(t["url"] for t in self.targets if t.get("url")), "--only-summary"]
        if users == 1:
            return [common + run]
        port = free_port()
        master = common + run + ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                                 "--expect-workers", str(users)]
        worker = common + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        return [master] + [worker] * users

    @staticmethod
    def _spawn(cmd: list[str], env: dict[str, str], log: Any) -> subprocess.Popen:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def retarget(self, targets: list[dict[str, Any]]) -> None:
        """Hand the running load new addresses for the same endpoints, in the same order
        (a slot's pod recreated elsewhere); Locust picks them up within about a second."""
        if [t["name"] for t in targets] != [t["name"] for t in self.targets]:
            raise ValueError("retarget keeps the endpoints and their order; only addresses change")
        self.targets = targets
        write_targets(self.targets_path, targets)

    def set_rates(self, rates: list[tuple[float, float]]) -> None:
        """From each ``(epoch s, rate)`` on, send ``rate`` requests per second per endpoint (a load
        shape: a step, a spike); Locust picks the schedule up within about a second, so entries
        should lie at least that far ahead."""
        write_targets(self.rates_path, [[float(t), float(r)] for t, r in rates])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Locust's graceful stop: in-flight requests finish and are recorded; a master
        first stops its workers, which record theirs), then SIGKILL whatever is left."""
        for proc in self.procs:
            _stop(proc, timeout_s)


def _stop(proc: subprocess.Popen, timeout_s: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)

