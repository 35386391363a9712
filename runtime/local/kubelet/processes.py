"""A pod's processes: spawned in its namespaces and cgroup, reaped, frozen and thawed, signalled,
killed, and commands run inside it (``kubectl exec``)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from serve_chaos.runtime.cluster import ActionRecord
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local import cgroups, mounts, netns, procs
from serve_chaos.runtime.local.kubelet.base import KubeletBase
from serve_chaos.runtime.local.kubelet.spec import session_dir
from serve_chaos.runtime.local.pods import Pod


class KubeletProcesses(KubeletBase):
    """A pod's processes: spawned in its namespaces and cgroup, reaped, frozen and thawed, signalled,
    killed, and commands run inside it (``kubectl exec``)."""

    def spawn(self, cmd: list[str], log: Any, role: str, pod: Pod | None = None,
              extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        env = dict(os.environ)
        env.pop("RAY_ADDRESS", None)
        env.update(extra_env or {})
        env[procs.RUN_ENV] = self.layout.label
        env[procs.ROLE_ENV] = role
        if pod is not None:
            env[procs.POD_ENV] = f"{pod.name}.{pod.serial}"
        if pod is not None and pod.cgroup is not None:
            # Join the pod's cgroups before entering its namespace: nothing the pod
            # starts can escape them, and one cgroup.kill ends them all.
            groups = [pod.cgroup, *pod.v1_groups.values()]
            env["SC_POD_CGROUPS"] = " ".join(str(g / "cgroup.procs") for g in groups)
            cmd = ["sh", "-c", 'for f in $SC_POD_CGROUPS; do echo $$ > "$f" || exit 126; done; exec "$@"', "pod",
                   *cmd]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=str(self.layout.root))
        self.children[proc.pid] = proc
        return proc

    def reap(self) -> list[int]:
        exited = []
        for pid, status in procs.reap_children():
            self.exit_status[pid] = status
            proc = self.children.pop(pid, None)
            if proc is not None:
                # Tell Popen the status is taken so it never waits on a reused PID.
                proc.returncode = os.waitstatus_to_exitcode(status)
            exited.append(pid)
        return exited

    def frozen(self, pod: Pod) -> bool:
        """Whether any process of the pod is stopped (SIGSTOP): the pod looks alive but answers nothing."""
        return pod.pid is not None and any(procs.is_stopped(pid) for pid in self.members(pod))

    def signal_process(self, pod: Pod, pid: int, name: str) -> ActionRecord:
        """SIGSTOP or SIGCONT one process of the pod's current incarnation (never another's)."""
        sig = {"STOP": signal.SIGSTOP, "CONT": signal.SIGCONT}.get(name)
        if sig is None:
            raise ServeChaosError(f"signal {name!r} is not STOP or CONT")
        t0 = time.time()
        with self.lock:
            if pid not in self.members(pod):
                raise ServeChaosError(f"PID {pid} is not a process of pod {pod.name}",
                                      hint="the process may have exited; take a fresh snapshot")
            os.kill(pid, sig)
        self.event(f"process_{name.lower()}", pod=pod.name, pid=pid)
        return ActionRecord(f"signal_{name}", f"{pod.name}:{pid}", t0, time.time(), {"pid": pid})

    def kill_named(self, pod: Pod, name: str) -> ActionRecord:
        """SIGKILL the pod's processes whose ``comm`` is ``name`` (a crash), by PID, never another
        pod's: ``ray start --block`` then ends the pod's other Ray processes and exits."""
        t0 = time.time()
        with self.lock:
            pids = [pid for pid in self.members(pod) if procs.command_name(pid) == name]
            if not pids:
                raise ServeChaosError(f"pod {pod.name} runs no process named {name!r}",
                                      hint="the pod may be restarting; take a fresh snapshot")
            procs.signal_pids(pids, signal.SIGKILL)
        self.event("process_killed", pod=pod.name, name=name, pids=pids)
        return ActionRecord("kill_process", f"{pod.name}:{name}", t0, time.time(), {"pids": pids, "name": name})

    def thaw(self, pod: Pod) -> ActionRecord | None:
        """SIGCONT every stopped process of the pod."""
        stopped = [pid for pid in self.members(pod) if procs.is_stopped(pid)]
        if not stopped:
            return None
        t0 = time.time()
        procs.signal_pids(stopped, signal.SIGCONT)
        return ActionRecord("thaw", pod.name, t0, time.time(), {"pids": stopped})

    def kill_processes(self, pod: Pod) -> None:
        if pod.cgroup is not None:
            cgroups.kill(pod.cgroup)
        else:
            procs.signal_pids(self.members(pod), signal.SIGKILL)

    def exec_in(self, pod: Pod, cmd: list[str], log: Any) -> subprocess.Popen:
        """Run ``cmd`` inside the pod's network and mount namespaces (``kubectl exec``)."""
        if pod.net is not None:
            enter = mounts.enter_prefix(pod.pid) if pod.private_mounts and pod.pid else []
            cmd = netns.nsenter_prefix(pod.net, *enter) + cmd
        return self.spawn(cmd, log, role="exec")

    def spawn_in_pod(self, pod: Pod, cmd: list[str], log: Any) -> subprocess.Popen:
        """Run ``cmd`` inside the pod: its network namespace and its cgroups, so it counts
        against the pod's limits and dies with the pod (``kubectl exec`` into its container)."""
        if pod.net is not None:
            cmd = netns.nsenter_prefix(pod.net) + cmd
        return self.spawn(cmd, log, role="exec", pod=pod)

    def raylet_log(self, pod: Pod) -> Path:
        """The pod's raylet log as the host sees it."""
        return session_dir(self.layout.pod_dir(pod.name, pod.serial)) / "logs" / "raylet.out"
