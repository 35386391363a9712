"""Gray faults of the local cluster: a pod starved of CPU, pressed for memory, losing packets,
or one of its processes slowed -- alive, but worse.

Each is injected with what the kernel offers on our machines (ray-facts.md): the pod's
cgroup v1 ``cpu`` quota, a memory hog inside the pod's cgroups under its memory limit,
nftables ``numgen random`` drops in and out of the pod's network namespace, and a
SIGSTOP/SIGCONT duty cycle.  ``tc netem`` does not exist on these kernels, so latency
cannot be injected here (``delay_supported`` tells why).  Every fault has a duration
after which the supervisor lifts it even if the harness never does; ``lift`` returns
what the fault did while it lasted, so a fault that changed nothing can be told.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local import cgroups, procs
from serve_chaos.runtime.local.commands import run
from serve_chaos.runtime.local.pods import Pod

CFS_PERIOD_US = 100_000
LOSS_TABLE = "serve_chaos_loss"
#: The hog allocates in chunks of this many bytes, touching every page of each.
HOG_CHUNK_BYTES = 16 * 1024 * 1024
#: What the raylet logs when Ray's memory monitor kills workers (Ray 2.60 ``node_manager.cc``:
#: "Killing N worker(s), kill details: Memory on the node ... was X used / Y limit", then one
#: "Selected to kill: (Actor(<id>): ... task name=<name>:<Class>.__init__, ..., pid=<pid>" per victim).
RAY_OOM_LINE = re.compile(r"Killing \d+ worker\(s\), kill details: (.*)")
RAY_OOM_VICTIM = re.compile(r"Selected to kill: \((?:Actor\((?P<actor_id>[0-9a-f]+)\))?.*?task name=(?P<task>[^,]*)"
                            r"(?:.*?pid=(?P<pid>\d+))?")
KERNEL_OOM_LINE = re.compile(r"Memory cgroup out of memory: Killed process (\d+) \(([^)]*)\)")

#: The hog: allocate and touch ``size`` bytes at ``rate`` bytes/s, report progress, hold, exit.
HOG_SCRIPT = """
import sys, time
size, rate, hold_until, chunk = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
held, total, t0 = [], 0, time.time()
while total < size:
    block = bytearray(min(chunk, size - total))
    block[::4096] = b"\\x01" * len(block[::4096])
    held.append(block)
    total += len(block)
    print(total, flush=True)
    time.sleep(max(0.0, t0 + total / rate - time.time()))
print("held", total, flush=True)
time.sleep(max(0.0, hold_until - time.time()))
"""


def delay_supported() -> tuple[bool, str]:
    """Whether ``tc netem`` can delay packets here, and if not why (one line).  Probed in a
    throwaway network namespace, so nothing of the host's changes."""
    try:
        out = subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"tc is not usable here ({err})"
    if out.returncode != 0:
        return False, ("tc netem is not available on this kernel "
                       f"({(out.stderr.strip() or 'tc failed').splitlines()[0]}); latency needs the kind target")
    return False, "packet delay (tc netem) is not written for the local target yet; use the kind target"


@dataclass
class GrayFault:
    """One gray fault in effect on a pod incarnation (times epoch s)."""

    kind: str
    pod: Pod
    uid: str
    t_start: float
    until: float
    params: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> dict[str, Any]:
        """End the fault; what it did while it lasted."""
        raise NotImplementedError


@dataclass
class CpuStarvation(GrayFault):
    """The pod's cgroup v1 CPU quota cut to ``cpu_share`` of one core (CFS bandwidth)."""

    before: dict[str, int] = field(default_factory=dict)

    @property
    def group(self) -> Path:
        group = self.pod.v1_groups.get("cpu")
        if group is None:
            raise ServeChaosError(f"pod {self.pod.name} has no cgroup v1 cpu group",
                                  hint="the cpu controller must be mounted at /sys/fs/cgroup/cpu (netns isolation)")
        return group

    def start(self) -> None:
        quota = max(1000, int(float(self.params["cpu_share"]) * CFS_PERIOD_US))
        cgroups.write(self.group / "cpu.cfs_period_us", CFS_PERIOD_US)
        self.before = cgroups.read_stat(self.group / "cpu.stat")
        cgroups.write(self.group / "cpu.cfs_quota_us", quota)

    def stop(self) -> dict[str, Any]:
        try:
            cgroups.write(self.group / "cpu.cfs_quota_us", -1)
        except OSError:
            return {"pod_gone": True}
        after = cgroups.read_stat(self.group / "cpu.stat")
        delta = {k: after.get(k, 0) - self.before.get(k, 0) for k in ("nr_periods", "nr_throttled", "throttled_time")}
        return {"cpu_share": self.params["cpu_share"], "periods": delta["nr_periods"],
                "throttled_periods": delta["nr_throttled"], "throttled_s": round(delta["throttled_time"] / 1e9, 3)}


@dataclass
class MemoryHog(GrayFault):
    """A process inside the pod's cgroups that allocates and touches memory up to a size."""

    spawn: Callable[[list[str], Any], subprocess.Popen] | None = None
    log_dir: Path | None = None
    proc: subprocess.Popen | None = None
    oom_before: int = 0
    dmesg_before: int = 0
    raylet_log: Path | None = None
    raylet_lines_before: int = 0

    def start(self) -> None:
        group = self.pod.v1_groups.get("memory")
        if group is None or self.spawn is None or self.log_dir is None:
            raise ServeChaosError(f"pod {self.pod.name} has no cgroup v1 memory group to press",
                                  hint="the memory controller must be mounted at /sys/fs/cgroup/memory (netns isolation)")
        self.oom_before = cgroups.read_stat(group / "memory.oom_control").get("oom_kill", 0)
        self.dmesg_before = len(_dmesg())
        self.raylet_lines_before = len(_lines(self.raylet_log))
        cmd = [sys.executable, "-c", HOG_SCRIPT, str(int(self.params["size_bytes"])),
               str(float(self.params["rate_bytes_s"])), str(self.until), str(HOG_CHUNK_BYTES)]
        with open(self.log_dir / f"hog.{self.pod.name}.{int(self.t_start)}.log", "w") as log:
            self.proc = self.spawn(cmd, log)
        self.params["log"] = log.name

    def stop(self) -> dict[str, Any]:
        assert self.proc is not None
        lifted = self.proc.poll() is None
        if lifted:
            procs.kill_and_wait([self.proc.pid], timeout_s=5)
        code = self.proc.wait(timeout=5)
        group = self.pod.v1_groups.get("memory")
        progress = [ln.split()[-1] for ln in _lines(Path(self.params["log"])) if ln.strip()]
        peak = max((int(x) for x in progress if x.isdigit()), default=0)
        kernel = [{"pid": int(m.group(1)), "name": m.group(2)} for m in
                  (KERNEL_OOM_LINE.search(ln) for ln in _dmesg()[self.dmesg_before:]) if m]
        raylet = _lines(self.raylet_log)[self.raylet_lines_before:]
        rounds = [m.group(1)[:200] for m in map(RAY_OOM_LINE.search, raylet) if m]
        ray_killed = [{"actor_id": m.group("actor_id"), "task": m.group("task").strip(),
                       "pid": int(m.group("pid")) if m.group("pid") else None}
                      for m in map(RAY_OOM_VICTIM.search, raylet) if m]
        return {
            "size_bytes": self.params["size_bytes"],
            "hog_peak_bytes": peak,
            "hog_held": any(ln.startswith("held") for ln in _lines(Path(self.params["log"]))),
            "hog_end": "lifted" if lifted else ("killed by SIGKILL" if code == -signal.SIGKILL else f"exit {code}"),
            "hog_pid": self.proc.pid,
            "limit_bytes": cgroups.read_int(group / "memory.limit_in_bytes") if group else None,
            "max_usage_bytes": cgroups.read_int(group / "memory.max_usage_in_bytes") if group else None,
            "cgroup_oom_kills": (cgroups.read_stat(group / "memory.oom_control").get("oom_kill", 0) - self.oom_before)
            if group else None,
            "kernel_oom_killed": kernel,
            "ray_memory_monitor_rounds": rounds,
            "ray_memory_monitor_killed": ray_killed,
        }


@dataclass
class PacketLoss(GrayFault):
    """Random drops of ``percent`` % of the pod's packets: arriving ones in the pod's namespace
    (input hook), leaving ones on the host side of its veth (netdev ingress), both silent."""

    netns_name: str = ""
    host_if: str = ""

    @property
    def host_table(self) -> str:
        return f"{LOSS_TABLE}_{self.host_if}"

    def start(self) -> None:
        percent = int(round(float(self.params["percent"])))
        pod_rules = (f"table inet {LOSS_TABLE} {{\n chain input {{\n  type filter hook input priority -300; "
                     f"policy accept;\n  iif \"lo\" accept\n  numgen random mod 100 lt {percent} counter drop\n }}\n}}\n")
        host_rules = (f"table netdev {self.host_table} {{\n chain pod_egress {{\n  type filter hook ingress device "
                      f"\"{self.host_if}\" priority -300; policy accept;\n  numgen random mod 100 lt {percent} "
                      f"counter drop\n }}\n}}\n")
        run(["ip", "netns", "exec", self.netns_name, "nft", "-f", "-"], input_text=pod_rules,
            hint="install nftables (apt-get install nftables)")
        try:
            run(["nft", "-f", "-"], input_text=host_rules, hint="install nftables (apt-get install nftables)")
        except ServeChaosError:
            self._delete_pod_table()
            raise

    def _delete_pod_table(self) -> None:
        run(["ip", "netns", "exec", self.netns_name, "nft", "delete", "table", "inet", LOSS_TABLE], check=False)

    def stop(self) -> dict[str, Any]:
        inbound = _dropped(run(["ip", "netns", "exec", self.netns_name, "nft", "list", "table", "inet", LOSS_TABLE],
                               check=False).stdout)
        outbound = _dropped(run(["nft", "list", "table", "netdev", self.host_table], check=False).stdout)
        self._delete_pod_table()
        run(["nft", "delete", "table", "netdev", self.host_table], check=False)
        return {"percent": self.params["percent"], "dropped_in": inbound, "dropped_out": outbound}


@dataclass
class SlowProcess(GrayFault):
    """One process stopped ``stopped_ms`` of every ``period_ms`` (SIGSTOP, then SIGCONT)."""

    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cycles: int = 0
    stopped_s: float = 0.0
    error: str = ""

    def start(self) -> None:
        self.thread = threading.Thread(target=self._cycle, daemon=True, name=f"slow-{self.pod.name}")
        self.thread.start()

    def _cycle(self) -> None:
        pid = int(self.params["pid"])
        stopped, period = float(self.params["stopped_ms"]) / 1e3, float(self.params["period_ms"]) / 1e3
        try:
            while not self.done.is_set() and time.time() < self.until:
                t0 = time.monotonic()
                os.kill(pid, signal.SIGSTOP)
                self.done.wait(stopped)
                os.kill(pid, signal.SIGCONT)
                self.stopped_s += time.monotonic() - t0
                self.cycles += 1
                self.done.wait(max(0.0, period - stopped))
        except ProcessLookupError:
            self.error = f"PID {pid} exited"
        finally:
            procs.signal_pids([pid], signal.SIGCONT)

    def stop(self) -> dict[str, Any]:
        self.done.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        return {"pid": self.params["pid"], "cycles": self.cycles, "stopped_s": round(self.stopped_s, 2),
                "stopped_ms": self.params["stopped_ms"], "period_ms": self.params["period_ms"],
                **({"error": self.error} if self.error else {})}


def _dropped(listing: str) -> int:
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))


def _lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _dmesg() -> list[str]:
    out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10, check=False)
    return out.stdout.splitlines() if out.returncode == 0 else []


#: ``kind -> GrayFault class``; what the control API's ``gray_fault`` route may inject.
KINDS: dict[str, type[GrayFault]] = {"starve_cpu": CpuStarvation, "press_memory": MemoryHog,
                                     "lose_packets": PacketLoss, "slow_process": SlowProcess}
#: The supervisor lifts a fault this long (s) after its duration, should its harness not.
EXPIRY_GRACE_S = 2.0


class GrayFaults:
    """The gray faults in effect on the local cluster's pods, one per kind and pod.

    ``spawn_in_pod(pod, cmd, log)`` starts a process inside a pod's cgroups (``kubectl
    exec``); ``raylet_log(pod)`` is the pod's raylet log.  A fault past its duration is
    lifted by ``expire`` (each supervisor tick); what it did is kept for a later ``lift``.
    """

    def __init__(self, spawn_in_pod: Callable[[Pod, list[str], Any], subprocess.Popen], log_dir: Path,
                 raylet_log: Callable[[Pod], Path], event: Callable[..., Any]) -> None:
        self.spawn_in_pod = spawn_in_pod
        self.log_dir = log_dir
        self.raylet_log = raylet_log
        self.event = event
        self.lock = threading.RLock()
        self.active: dict[tuple[str, str], GrayFault] = {}
        self.ended: dict[tuple[str, str], dict[str, Any]] = {}

    def inject(self, kind: str, pod: Pod, duration_s: float, **params: Any) -> dict[str, Any]:
        if kind not in KINDS:
            raise ServeChaosError(f"no gray fault {kind!r} on the local target", hint=f"kinds: {', '.join(KINDS)}")
        if pod.phase != "Running" or pod.pid is None:
            raise ServeChaosError(f"pod {pod.name} is {pod.phase}, not Running")
        with self.lock:
            if (kind, pod.name) in self.active:
                raise ServeChaosError(f"a {kind} is already in effect on {pod.name}")
            now = time.time()
            fault = KINDS[kind](kind, pod, pod.uid, now, now + float(duration_s), dict(params))
            self._wire(fault)
            fault.start()
            self.active[(kind, pod.name)] = fault
            self.ended.pop((kind, pod.name), None)
        self.event(f"gray_{kind}", pod=pod.name, duration_s=duration_s, **params)
        return {"action": kind, "target": pod.name, "t_start": now, "t_end": time.time(),
                "details": {"uid": pod.uid, "until": fault.until, **fault.params}}

    def _wire(self, fault: GrayFault) -> None:
        if isinstance(fault, MemoryHog):
            fault.spawn = lambda cmd, log: self.spawn_in_pod(fault.pod, cmd, log)
            fault.log_dir = self.log_dir
            fault.raylet_log = self.raylet_log(fault.pod)
        elif isinstance(fault, PacketLoss):
            if fault.pod.net is None:
                raise ServeChaosError(f"pod {fault.pod.name} has no network namespace", hint="run as root (netns)")
            fault.netns_name, fault.host_if = fault.pod.net.netns, fault.pod.net.host_if

    def lift(self, kind: str, pod_name: str) -> dict[str, Any]:
        """End the fault now (or report what it did, if it already ended by its duration)."""
        t0 = time.time()
        with self.lock:
            fault = self.active.pop((kind, pod_name), None)
            if fault is None:
                if (kind, pod_name) in self.ended:
                    details = self.ended.pop((kind, pod_name))
                    return {"action": f"lift_{kind}", "target": pod_name, "t_start": t0, "t_end": time.time(),
                            "details": details}
                raise ServeChaosError(f"no {kind} is in effect on {pod_name}")
            details = self._stop(fault)
        return {"action": f"lift_{kind}", "target": pod_name, "t_start": t0, "t_end": time.time(), "details": details}

    def _stop(self, fault: GrayFault) -> dict[str, Any]:
        try:
            details = fault.stop()
        except (OSError, ServeChaosError, subprocess.SubprocessError) as err:
            details = {"error": f"lifting failed: {err}"}
        details = {**details, "lasted_s": round(time.time() - fault.t_start, 2),
                   "pod_recreated": fault.pod.uid != fault.uid}
        self.event(f"gray_{fault.kind}_lifted", pod=fault.pod.name, **{k: v for k, v in details.items()
                                                                      if not isinstance(v, list)})
        return details

    def expire(self) -> None:
        now = time.time()
        with self.lock:
            for key, fault in list(self.active.items()):
                if now >= fault.until + EXPIRY_GRACE_S:
                    self.ended[key] = self._stop(self.active.pop(key))

    def lift_all(self, pods: set[str] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            keys = [k for k in self.active if pods is None or k[1] in pods]
        return [self.lift(kind, pod) for kind, pod in keys]

    def in_effect(self) -> list[str]:
        with self.lock:
            return [f"{kind.replace('_', ' ')} on pod {pod}" for kind, pod in self.active]
