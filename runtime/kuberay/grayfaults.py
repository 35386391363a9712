"""Gray faults of one pod on the kube target: Chaos Mesh objects, and a slowed process.

``GrayFaults`` injects, lifts and heals them for ``KubeRayCluster``.  Every one is leased in
the cluster's lease ConfigMap with what undoing it needs, under the fault's name as its
kind and the pod as its target (one of a kind per pod at a time):

- ``starve_cpu`` / ``press_memory`` / ``lose_packets`` / ``delay_packets``: Chaos Mesh
  objects (``chaosmesh.py``), data ``objects`` = their kinds and names.  ``lift`` reads
  their status, deletes them (Chaos Mesh recovers the pod: its finalizer), and returns
  ``details`` = ``{"engine", "objects", "injected", "records"}`` (``chaosmesh.effect``).
- ``slow_process``: one exec in the pod running a loop bounded by its duration that stops
  and continues ``pid`` (``slow_loop``); data ``pid``, ``stopped_ms``, ``period_ms``.
  ``lift`` ends the loop and continues the process, and returns ``details`` =
  ``{"pid", "cycles", "ended", "stopped_ms", "period_ms"}`` (``cycles``: stop/continue
  rounds the loop completed; ``ended``: ``lifted`` or ``duration``).
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable

from serve_chaos.runtime.cluster import ActionRecord
from serve_chaos.runtime.errors import ConfigError, InfrastructureError, ServeChaosError
from serve_chaos.runtime.kuberay import chaosmesh
from serve_chaos.runtime.kuberay.api import KubeApi
from serve_chaos.runtime.kuberay.execs import Background, PodExec
from serve_chaos.runtime.kuberay.lease import KubeLease
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig

SLOW_PID_FILE = "/tmp/serve-chaos-slow-{pid}.pid"


#: What a network fault does not touch on Kubernetes, said in its verdict (issue 23, 10.9): a
#: port-forward enters the pod on its loopback -- the kubelet's runtime dials localhost inside the
#: pod's network namespace (containerd's PortForward; ``runtime/k8s/go/nodeserver`` does the same)
#: -- so the per-pod load never crosses the eth0 a NetworkChaos shapes.
PORT_FORWARD_NOTE = ("the load sent to this pod's own endpoint goes through a port-forward, which enters the pod "
                     "on its loopback and so never crosses the interface this fault shapes; the front door's "
                     "traffic and the pod's peers' do")


def slow_loop(pid: int, stopped_ms: float, period_ms: float, duration_s: float) -> list[str]:
    """The bounded loop: stop ``pid`` for ``stopped_ms`` of every ``period_ms`` for ``duration_s``.

    It writes its own PID where ``stop_slow_loop`` finds it, leaves the process running on
    every way out (its end, SIGTERM), and prints the rounds it completed.  bash (``SECONDS``,
    ``trap``) and GNU ``sleep`` with fractions: the Ray images have both (and KubeRay's probes
    need bash anyway)."""
    if not 0 < stopped_ms < period_ms:
        raise ConfigError(f"a slowed process must be stopped for part of each period: 0 < {stopped_ms} < {period_ms} ms")
    if not 0 < duration_s <= 86400:
        raise ConfigError(f"slow_process needs a duration in (0, 86400] seconds, got {duration_s}")
    pid = int(pid)
    stop, run = stopped_ms / 1000, (period_ms - stopped_ms) / 1000
    # The time stopped is measured (bash's EPOCHREALTIME, in microseconds once its separator is
    # dropped), not assumed: a fault that changed nothing must fail its scenario.
    now = "${EPOCHREALTIME/[.,]/}"
    tally = 'cycles=$n stopped_us=$us'
    script = (f"echo $$ > {SLOW_PID_FILE.format(pid=pid)}; n=0; us=0; "
              f"trap 'kill -CONT {pid} 2>/dev/null; echo \"{tally} ended=lifted\"; exit 0' TERM INT; "
              f"kill -0 {pid} || {{ echo \"no process {pid}\"; exit 3; }}; end=$((SECONDS + {math.ceil(duration_s)})); "
              f"while [ $SECONDS -lt $end ] && t={now} && kill -STOP {pid}; do sleep {stop:.3f}; kill -CONT {pid}; "
              f"us=$((us + {now} - t)); n=$((n+1)); sleep {run:.3f}; done; kill -CONT {pid} 2>/dev/null; "
              f"echo \"{tally} ended=duration\"")
    return ["bash", "-c", script]


def stop_slow_loop(pid: int) -> list[str]:
    """End the loop (its trap continues the process) and continue the process once more."""
    pid_file = SLOW_PID_FILE.format(pid=int(pid))
    return ["bash", "-c", f"[ -f {pid_file} ] && kill -TERM $(cat {pid_file}) 2>/dev/null; sleep 0.3; "
                          f"kill -CONT {int(pid)} 2>/dev/null; rm -f {pid_file}; true"]


def loop_outcome(output: str) -> dict[str, Any]:
    """The loop's last words: cycles completed, the seconds the process was stopped in all
    (``stopped_s``, measured), and how it ended (``lifted``, ``duration``, ``unknown``)."""
    found = re.search(r"cycles=(\d+) stopped_us=(\d+) ended=(\w+)", output)
    if not found:
        return {"cycles": None, "stopped_s": None, "ended": "unknown"}
    return {"cycles": int(found[1]), "stopped_s": round(int(found[2]) / 1e6, 2), "ended": found[3]}


class GrayFaults:
    """Injects, lifts and heals the gray faults of one RayService's pods."""

    def __init__(self, api: KubeApi, config: KubeRayConfig, lease: KubeLease, execs: PodExec,
                 find_pod: Callable[[str], Any], peers: Callable[[str], list[str]]) -> None:
        self.api = api
        self.config = config
        self.lease = lease
        self.execs = execs
        self.find_pod = find_pod
        self.peers = peers
        self._chaos_mesh: bool | None = None
        self._loops: dict[str, Background] = {}

    # ------------------------------------------------------------------ Chaos Mesh
    def chaos_mesh_missing(self) -> str | None:
        """Why Chaos Mesh faults cannot run here (its CRDs are not installed), or None."""
        if self._chaos_mesh is None:
            try:
                self._chaos_mesh = all(self.api.crd_installed(name) for name in chaosmesh.CRDS)
            except ServeChaosError:
                return "the cluster's CRDs could not be read to find Chaos Mesh"
        if not self._chaos_mesh:
            return (f"Chaos Mesh {chaosmesh.CHART_VERSION} is not installed on this cluster (its CRDs "
                    f"{', '.join(chaosmesh.CRDS)} are missing); `serve-chaos kind up` installs it")
        return None

    def _target(self, fault: str, pod: str) -> tuple[Any, Any]:
        missing = self.chaos_mesh_missing() if fault in chaosmesh.FAULT_KINDS else None
        if missing:
            raise ServeChaosError(missing)
        if self.lease.fault(fault, pod) is not None:
            raise ServeChaosError(f"a {fault} is in effect on {pod} already", hint="lift it first")
        found = self.find_pod(pod)
        return found, found.spec.containers[0]

    def starve_cpu(self, pod: str, cpu_share: float, duration_s: float) -> ActionRecord:
        found, container = self._target("starve_cpu", pod)
        limit = chaosmesh.cpu_cores(((container.resources and container.resources.limits) or {}).get("cpu"))
        obj = chaosmesh.stress_cpu(self.config, pod, container.name, cpu_share, limit, duration_s)
        return self._inject("starve_cpu", pod, [obj], {"cpu_share": cpu_share, "limit_cores": limit,
                                                       "workers": obj["spec"]["stressors"]["cpu"]["workers"]})

    def press_memory(self, pod: str, size_bytes: int, rate_bytes_s: float, duration_s: float) -> ActionRecord:
        found, container = self._target("press_memory", pod)
        obj = chaosmesh.stress_memory(self.config, pod, container.name, size_bytes, rate_bytes_s, duration_s)
        return self._inject("press_memory", pod, [obj], {"size_bytes": size_bytes, "rate_bytes_s": rate_bytes_s})

    def lose_packets(self, pod: str, percent: float, duration_s: float) -> ActionRecord:
        self._target("lose_packets", pod)
        objects = chaosmesh.network_loss(self.config, pod, self.peers(pod), percent, duration_s)
        return self._inject("lose_packets", pod, objects, {"percent": percent, "per_pod_load": PORT_FORWARD_NOTE})

    def delay_packets(self, pod: str, delay_ms: float, jitter_ms: float, duration_s: float) -> ActionRecord:
        self._target("delay_packets", pod)
        obj = chaosmesh.network_delay(self.config, pod, delay_ms, jitter_ms, duration_s)
        return self._inject("delay_packets", pod, [obj], {"delay_ms": delay_ms, "jitter_ms": jitter_ms,
                                                          "per_pod_load": PORT_FORWARD_NOTE})

    def _inject(self, fault: str, pod: str, objects: list[dict[str, Any]], details: dict[str, Any]) -> ActionRecord:
        t0 = time.time()
        refs = [{"kind": o["kind"], "name": o["metadata"]["name"]} for o in objects]
        # Leased first: a harness that dies between the two still has its objects deleted.
        self.lease.add_fault(fault, pod, objects=refs)
        for obj in objects:
            self.api.apply(obj)
        return ActionRecord(fault, pod, t0, time.time(),
                            {"engine": f"chaos-mesh {chaosmesh.CHART_VERSION}", "objects": [r["name"] for r in refs],
                             "duration": objects[0]["spec"]["duration"], **details})

    def _remove_chaos(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Read what Chaos Mesh recorded, then delete the objects (Chaos Mesh recovers the pod)."""
        refs = (fault.get("data") or {}).get("objects") or []
        objects = [o for o in (self.api.read(r["kind"], r["name"], self.config.namespace) for r in refs) if o]
        seen = chaosmesh.effect([o if isinstance(o, dict) else o.to_dict() for o in objects])
        for ref in refs:
            self.api.delete_custom(ref["kind"], ref["name"], self.config.namespace)
        return {"engine": f"chaos-mesh {chaosmesh.CHART_VERSION}", "objects": [r["name"] for r in refs], **seen}

    # ------------------------------------------------------------------ a slowed process
    def slow_process(self, pod: str, pid: int, stopped_ms: float, period_ms: float,
                     duration_s: float) -> ActionRecord:
        found, container = self._target("slow_process", pod)
        command = slow_loop(pid, stopped_ms, period_ms, duration_s)
        t0 = time.time()
        self.lease.add_fault("slow_process", pod, pid=int(pid), stopped_ms=stopped_ms, period_ms=period_ms)
        loop = Background(self.execs, found.metadata.name, container.name, command, timeout_s=duration_s + 30)
        early = loop.wait(0.5)  # a process that is not there ends the loop at once
        if early is not None and early.returncode not in (0, None) or loop.error:
            self.lease.drop_faults("slow_process", pod)
            why = early.output if early is not None else loop.error
            raise ServeChaosError(f"slowing PID {pid} in pod {pod} failed: {(why or 'no output')[:200]}")
        self._loops[pod] = loop
        return ActionRecord("slow_process", pod, t0, time.time(),
                            {"pid": int(pid), "stopped_ms": stopped_ms, "period_ms": period_ms,
                             "duration_s": duration_s})

    def _stop_slow(self, fault: dict[str, Any]) -> dict[str, Any]:
        pod, data = fault["target"], fault.get("data") or {}
        pid = int(data["pid"])
        found = self.find_pod(pod)
        result = self.execs.run(found.metadata.name, found.spec.containers[0].name, stop_slow_loop(pid), timeout_s=30)
        if not result.ok:
            raise InfrastructureError(f"ending the slow loop of PID {pid} in pod {pod} failed: {result.output[:200]}")
        loop = self._loops.pop(pod, None)
        outcome: dict[str, Any] = {"cycles": None, "stopped_s": None, "ended": "unknown"}
        if loop is not None:
            ended = loop.wait(5.0)
            outcome = loop_outcome(ended.output) if ended is not None else outcome
        return {"pid": pid, "stopped_ms": data.get("stopped_ms"), "period_ms": data.get("period_ms"), **outcome}

    # ------------------------------------------------------------------ lift and heal
    def lift(self, fault: str, pod: str) -> ActionRecord:
        lease = self.lease.fault(fault, pod)
        if lease is None or not self.lease.mine_fault(lease):
            raise ServeChaosError(f"no {fault} of this harness is in effect on {pod}")
        t0 = time.time()
        details = self.undo(lease)
        self.lease.drop_faults(fault, pod)
        return ActionRecord(f"lift_{fault}", pod, t0, time.time(), details)

    def undo(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Undo one leased gray fault (heal, reclaim, lift); a pod that is gone needs nothing."""
        if fault["kind"] == "slow_process":
            try:
                return self._stop_slow(fault)
            except ServeChaosError as err:
                if "no pod" in err.what:
                    self._loops.pop(fault["target"], None)
                    return {"pid": (fault.get("data") or {}).get("pid"), "cycles": None, "ended": "pod gone"}
                raise
        return self._remove_chaos(fault)
