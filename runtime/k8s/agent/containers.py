"""One container of a pod on the node: its incarnations, exits, restarts and probes.

Restart rules are the kubelet's (``pkg/kubelet/kuberuntime/kuberuntime_manager.go``
computePodActions, ``pkg/kubelet/container/helpers.go`` ShouldContainerBeRestarted): under
``Always`` every exit restarts, under ``OnFailure`` a non-zero one, under ``Never`` none;
a restart waits a back-off of 10 s doubling to 300 s, reset once a container ran 10
minutes (``pkg/kubelet/kubelet.go`` backOffPeriod / MaxContainerBackOff), shown as the
waiting reason ``CrashLoopBackOff``.  Stopping is SIGTERM to the container's PID 1, then
SIGKILL to its cgroup when the grace period ends (``killContainer``).
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from serve_chaos.runtime.k8s.agent import rootfs
from serve_chaos.runtime.k8s.agent.children import Children, child_pid
from serve_chaos.runtime.k8s.agent.probes import ProbeWorker
from serve_chaos.runtime.local import cgroups

BACKOFF_INITIAL_S = 10.0
BACKOFF_MAX_S = 300.0
BACKOFF_RESET_S = 600.0


def rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    """A container's exit code as the runtime reports it (128 + signal for a killed one)."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class Terminated:
    exit_code: int
    reason: str
    started_at: float
    finished_at: float
    container_id: str
    message: str = ""

    def to_api(self) -> dict[str, Any]:
        out = {"exitCode": self.exit_code, "reason": self.reason, "startedAt": rfc3339(self.started_at),
               "finishedAt": rfc3339(self.finished_at), "containerID": self.container_id}
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class Launch:
    """What starting one incarnation needs, resolved by the pod worker."""

    argv: list[str]
    env: dict[str, str]
    cgroup_procs: list[Path]
    #: The cgroup v2 group of the incarnation: ``cgroup.kill`` there ends all of it.
    kill_group: Path | None
    log: Path
    state_dir: Path
    image_id: str


@dataclass
class ContainerRun:
    spec: dict[str, Any]
    init: bool
    restarts: int = 0
    proc: subprocess.Popen | None = None
    pid: int | None = None  # the container's PID 1 as the host sees it
    env: list[str] = field(default_factory=list)
    cgroup_procs: list[Path] = field(default_factory=list)
    kill_group: Path | None = None
    container_id: str = ""
    image_id: str = ""
    started_at: float | None = None
    log: Path | None = None
    previous_log: Path | None = None
    terminated: Terminated | None = None
    last: Terminated | None = None
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    next_start: float = 0.0
    backoff_s: float = 0.0
    ready: bool = False
    started: bool = False
    stopping: bool = False
    probes: list[ProbeWorker] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.terminated is None

    def start(self, children: Children, launch: Launch) -> None:
        self.container_id = f"serve-chaos://{uuid.uuid4().hex}"
        self.image_id = launch.image_id
        if self.log is not None:
            self.previous_log = self.log
        self.log = launch.log
        launch.log.parent.mkdir(parents=True, exist_ok=True)
        launch.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**launch.env, rootfs.CGROUPS_ENV: " ".join(str(p) for p in launch.cgroup_procs)}
        with open(launch.log, "ab") as out:
            self.proc = children.spawn(launch.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        self.pid = child_pid(self.proc.pid)
        self.env = [f"{k}={v}" for k, v in launch.env.items()]
        self.cgroup_procs = launch.cgroup_procs
        self.kill_group = launch.kill_group
        self.started_at = time.time()
        self.terminated = None
        self.waiting = None
        self.ready = False
        self.started = not self.spec.get("startupProbe")
        self.stopping = False

    def poll(self, children: Children) -> Terminated | None:
        """The incarnation's end, the first time it is seen."""
        if self.proc is None or self.terminated is not None:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        children.release(self.proc.pid)
        self.stop_probes()
        ec = exit_code(code)
        reason = "Completed" if ec == 0 else "Error"
        self.terminated = Terminated(ec, reason, self.started_at or time.time(), time.time(), self.container_id)
        self.ready = False
        self.pid = None
        return self.terminated

    def signal(self, sig: int) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL everything of this incarnation (its cgroup), as the runtime does after the grace period."""
        if self.kill_group is not None:
            cgroups.kill(self.kill_group)
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float, children: Children, run_hook: Callable[[list[str], float], Any] | None = None,
             wait_poll: float = 0.1) -> None:
        """preStop hook (bounded by the grace period), SIGTERM to PID 1, SIGKILL when the grace ends."""
        if not self.running:
            return
        self.stopping = True
        deadline = time.monotonic() + max(0.0, grace_s)
        hook = ((self.spec.get("lifecycle") or {}).get("preStop") or {}).get("exec")
        if hook and run_hook is not None:
            run_hook(hook["command"], max(0.0, deadline - time.monotonic()))
        self.signal(signal.SIGTERM)
        while time.monotonic() < deadline and self.proc is not None and self.proc.poll() is None:
            time.sleep(wait_poll)
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.poll(children)

    def stop_probes(self) -> None:
        for worker in self.probes:
            worker.stop.set()
        self.probes = []

    def schedule_restart(self, now: float) -> None:
        """When to start again: at once after the first exit, then no sooner than the back-off after
        the previous start, the back-off doubling each time (client-go ``flowcontrol.Backoff`` as the
        kubelet keys it per container; an entry idle for 10 minutes is forgotten)."""
        assert self.terminated is not None
        ran = self.terminated.finished_at - self.terminated.started_at
        if ran >= BACKOFF_RESET_S:
            self.backoff_s = 0.0
        previous_start = self.terminated.started_at
        self.next_start = now if self.backoff_s == 0.0 else max(now, previous_start + self.backoff_s)
        self.backoff_s = BACKOFF_INITIAL_S if self.backoff_s == 0.0 else min(self.backoff_s * 2, BACKOFF_MAX_S)
        self.last = self.terminated
        self.restarts += 1
        if self.next_start > now:
            self.waiting = ("CrashLoopBackOff", f"back-off {self.next_start - now:.0f}s restarting failed "
                                                f"container={self.name}")

    def should_restart(self, policy: str) -> bool:
        if self.terminated is None:
            return False
        if policy == "Always":
            return True
        if policy == "OnFailure":
            return self.terminated.exit_code != 0
        return False

    def to_status(self, image: str) -> dict[str, Any]:
        if self.running:
            state: dict[str, Any] = {"running": {"startedAt": rfc3339(self.started_at)}}
        elif self.waiting is not None and (self.terminated is None or self.next_start):
            state = {"waiting": {"reason": self.waiting[0], **({"message": self.waiting[1]} if self.waiting[1]
                                                               else {})}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated.to_api()}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        out: dict[str, Any] = {"name": self.name, "image": image, "imageID": self.image_id,
                               "ready": self.ready and self.running, "restartCount": self.restarts, "state": state,
                               "lastState": {"terminated": self.last.to_api()} if self.last else {}}
        if self.container_id:
            out["containerID"] = self.container_id
        if not self.init:
            out["started"] = self.running and self.started
        return out

    def nodeserver_state(self) -> dict[str, Any]:
        return {"pid": self.pid or 0, "env": self.env, "cgroups": [str(p) for p in self.cgroup_procs],
                "log": str(self.log or ""), "previous_log": str(self.previous_log or "")}

