"""Starting the supervisor (or attaching to a running one), the lock, what else is in effect, and
taking it all down."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError
from serve_chaos.runtime.local import leftovers, procs
from serve_chaos.runtime.local.cluster.base import LocalClusterBase
from serve_chaos.runtime.local.cluster.preflight import check_platform, preflight
from serve_chaos.runtime.local.layout import RunLayout, new_label
from serve_chaos.runtime.local.rayenv import ray_runtime
from serve_chaos.runtime.local.supervisor import FORCED_SUFFIX
from serve_chaos.runtime.waiting import NotYet, wait_until


class LocalClusterLifecycle(LocalClusterBase):
    """Starting the supervisor (or attaching to a running one), the lock, what else is in effect, and
    taking it all down."""

    def attach(self) -> bool:
        """Attach to a live cluster of this tool, if there is one."""
        live = leftovers.live_runs(self.home)
        if not live:
            return False
        self.label = sorted(live)[0]
        self._control = RunLayout(self.home, self.label).read_control()
        if self._control is None:
            return False
        state = self.state()
        self.mode = state["mode"]
        return True

    def up(self, timeout_s: float = 180.0) -> None:
        if self.attach():
            self.wait_ready(timeout_s)
            return
        check_platform()
        leftovers.reap_all(self.home)
        mode = preflight(self.config)
        # The pods' Ray, made now if this version is new here (the supervisor only finds it).
        ray_runtime(self.config.ray_version, progress=self.progress)
        self.home.mkdir(parents=True, exist_ok=True)
        self.label = new_label()
        self.mode = mode
        layout = RunLayout(self.home, self.label)
        layout.root.mkdir(parents=True)
        cmd = [
            sys.executable,
            "-m",
            "serve_chaos.runtime.local.supervisor",
            "--config",
            self.config.to_json(),
            "--label",
            self.label,
            "--mode",
            mode,
        ]
        if self.owner_pid:
            cmd += ["--owner-pid", str(self.owner_pid)]
        env = dict(os.environ, **{procs.RUN_ENV: self.label, procs.ROLE_ENV: "supervisor"})
        log = open(self.home / f"{self.label}.supervisor.log", "ab")
        self._proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.created = True

        def control_file() -> None:
            self._raise_if_supervisor_died()
            self._control = layout.read_control()
            if self._control is None:
                raise NotYet("no control file yet")

        try:
            wait_until(control_file, 30.0, 0.1, what="the cluster supervisor to start",
                       evidence=str(self.home / f"{self.label}.supervisor.log"))
        except InfrastructureError:
            self.down()
            raise
        try:
            self.wait_ready(timeout_s)
        except ServeChaosError as err:
            # A cluster that never became ready is of no use to anyone: keep its
            # logs for the error message, remove everything else.
            kept = self._keep_logs()
            self.down()
            raise InfrastructureError(err.what, evidence=kept, hint=err.hint) from None
        except BaseException:
            self.down()
            raise

    def _keep_logs(self) -> str:
        """Copy the run's logs to ``<home>/failed-bringup-logs`` so they outlive teardown."""
        dst = self.home / "failed-bringup-logs"
        shutil.rmtree(dst, ignore_errors=True)
        if self.label is not None:
            src = RunLayout(self.home, self.label).logs
            if src.exists():
                shutil.copytree(src, dst)
        return str(dst)

    def _raise_if_supervisor_died(self) -> None:
        if self._proc is None or self._proc.poll() is None:
            return
        failed = self.home / f"{self.label}.failed"
        why = failed.read_text().strip() if failed.exists() else f"exit code {self._proc.returncode}"
        log = self.home / f"{self.label}.supervisor.log"
        raise InfrastructureError(f"the cluster supervisor stopped: {why}", evidence=str(log))

    def down(self, force: bool = False, timeout_s: float = 60.0) -> None:
        """Stop the supervisor (it tears everything down) and clean any leftovers.

        Refused while another harness holds the run lock, unless ``force``: that
        run then ends as interrupted."""
        if self.label is None and not self.attach():
            leftovers.reap_all(self.home)
            return
        pid = leftovers.live_supervisor(self.home, self.label) if self.label else None
        try:
            self._call("shutdown", force=force)
        except InfrastructureError:
            pass
        self._wait_gone(pid, timeout_s)
        leftovers.reap_all(self.home)
        for suffix in (".supervisor.log", ".failed"):
            (self.home / f"{self.label}{suffix}").unlink(missing_ok=True)
        self.label = None
        self._control = None

    def _wait_gone(self, pid: int | None, timeout_s: float) -> None:
        def gone() -> None:
            if self._proc is not None:
                self._proc.poll()
            if pid and procs.alive(pid):
                raise NotYet(f"supervisor PID {pid} still running")

        try:
            wait_until(gone, timeout_s, 0.2, what="the supervisor to tear down")
        except InfrastructureError:
            procs.kill_and_wait([pid])
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def lock(self, command: str) -> None:
        self._call("lock", command=command)

    def unlock(self) -> None:
        try:
            self._call("unlock")
        except InfrastructureError:
            pass  # a cluster that is gone holds no lock

    def interference(self) -> list[str]:
        """What keeps this cluster from being this harness's alone: faults in effect,
        partitioned or frozen pods, load generators of another harness, another run's lock."""
        state = self.state()
        me = os.getpid()
        found = list(state.get("faults_in_effect") or [])
        found += [f"a {x['kind'].replace('_', ' ')} of {x['target']} owned by PID {x['owner']} is in effect"
                  for x in (state.get("leases") or {}).get("faults", []) if x["owner"] != me]
        found += [f"a load generator (PID {x['pid']}) of another harness (PID {x['owner']}) is running"
                  for x in state.get("loads") or [] if x["owner"] != me]
        lock = (state.get("leases") or {}).get("lock")
        if lock and lock["owner"] != me:
            found.append(f"the cluster is locked by PID {lock['owner']} ({lock['command']})")
        return list(dict.fromkeys(found))

    def lost(self) -> str | None:
        """Why this cluster is gone from under us, or None while it is there."""
        if self.label is None:
            return None
        forced = self.home / f"{self.label}{FORCED_SUFFIX}"
        if forced.exists():
            return forced.read_text().strip()
        pid = (self._control or {}).get("pid")
        if pid and not procs.alive(pid):
            return f"the cluster supervisor (PID {pid}) is gone"
        return None
