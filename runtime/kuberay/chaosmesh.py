"""Gray faults on Kubernetes through Chaos Mesh v2.8.3: the objects, and what their status says.

Chaos Mesh (``chaos-mesh.org/v1alpha1``, CRDs in ``../shared/chaos-mesh``) is the engine;
nothing is injected by hand.  Each object is ours (``app.kubernetes.io/managed-by:
serve-chaos``), aims at exactly one pod (``selector.pods: {<namespace>: [<pod>]}``, mode
``all``), carries a ``duration`` (Chaos Mesh recovers by itself at its end, so a dead harness
leaves at most that much behind) and is leased; ``lift`` deletes it and reports the status
records (``status.experiment.containerRecords``: per target, ``phase`` Injected / Not
Injected, ``injectedCount``, ``recoveredCount``, events with failure messages --
``api/v1alpha1/common_types.go`` Record) so the fault can verify it took effect.

- ``starve_cpu`` -> StressChaos, CPU stressor in the pod's Ray container.  Chaos Mesh runs
  ``stress-ng --cpu N --cpu-load L`` and attaches it to the container's cgroup
  (``pkg/chaosdaemon/stress_server_linux.go`` ExecCPUStressors, AttachProcess): it
  *contends* for the container's CPU limit, it sets no quota.  With N busy workers next to
  one busy Ray process, CFS gives that process about limit / (N + 1) cores, so a share ``s``
  of a core under a limit of ``L`` cores takes N = ceil(L / s) - 1 workers at load 100.
- ``press_memory`` -> StressChaos, memory stressor: Chaos Mesh's ``memStress`` in the
  container's cgroup allocates ``size`` and touches it, growing linearly for ``--time``
  (``options``); the container's memory limit and Ray's memory monitor decide what dies.
- ``lose_packets`` -> two NetworkChaos ``loss`` (netem): ``-out`` on every packet the pod
  sends (direction ``to``, no target: ``controllers/chaosimpl/networkchaos/trafficcontrol/
  impl.go`` applies tc to the whole device), and ``-in`` on the packets the cluster's other
  pods send to it (direction ``to``, target the pod: their egress filtered by an ipset of
  its IP).  netem acts on egress only, so these two make it both directions between the
  cluster's pods; a client outside the namespace still loses the pod's answers.
- ``delay_packets`` -> one NetworkChaos ``delay`` on every packet the pod sends.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from typing import Any

from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig, labels

GROUP, VERSION = "chaos-mesh.org", "v1alpha1"
PLURALS = {"StressChaos": "stresschaos", "NetworkChaos": "networkchaos"}
CRDS = ("stresschaos.chaos-mesh.org", "networkchaos.chaos-mesh.org")
CHART_VERSION = "2.8.3"
#: The fault each object type serves, for the kinds of leases.
FAULT_KINDS = ("starve_cpu", "press_memory", "lose_packets", "delay_packets")
POD_ANNOTATION = "serve-chaos/pod"
#: stress-ng's limit (StressChaos CRD: "Maximum 8192 workers").
MAX_WORKERS = 8192


def object_name(fault: str, pod: str, suffix: str = "", injection: str = "") -> str:
    """A DNS-1123 name for one injection of ``fault`` on ``pod`` (pod names may be long: hashed).

    Every injection gets names of its own (``injection``, random): an object of an earlier
    injection may still be finalizing (Chaos Mesh recovers the pod before its finalizer lets the
    object go) or have run out its duration, and applying the next injection onto that name
    would patch an object Chaos Mesh no longer acts on -- so it would never inject."""
    digest = hashlib.sha256(pod.encode()).hexdigest()[:10]
    tail = f"-{injection}" if injection else ""
    return f"serve-chaos-{fault.replace('_', '-')}-{digest}{suffix}{tail}"


def _meta(config: KubeRayConfig, fault: str, pod: str, suffix: str = "") -> dict[str, Any]:
    return {"name": object_name(fault, pod, suffix, secrets.token_hex(3)), "namespace": config.namespace,
            "labels": {**labels(config, "chaos"), "serve-chaos/fault": fault.replace("_", "-")},
            "annotations": {POD_ANNOTATION: pod}}


def _pods(config: KubeRayConfig, pods: list[str]) -> dict[str, Any]:
    return {"namespaces": [config.namespace], "pods": {config.namespace: sorted(pods)}}


def _duration(duration_s: float) -> str:
    if not 0 < duration_s <= 86400:
        raise ConfigError(f"a gray fault's duration must be in (0, 86400] seconds, got {duration_s}")
    return f"{max(1, math.ceil(duration_s))}s"


def cpu_cores(quantity: str | None) -> float:
    """A Kubernetes CPU quantity ("1", "500m", "1.5") in cores; 1 when there is no limit."""
    if not quantity:
        return 1.0
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def cpu_workers(cpu_share: float, limit_cores: float) -> int:
    """stress-ng workers at load 100 that leave one busy process about ``cpu_share`` of a core."""
    if not 0 < cpu_share < limit_cores:
        raise ConfigError(f"cpu_share {cpu_share} must be above 0 and below the pod's CPU limit ({limit_cores:g} cores)")
    return min(MAX_WORKERS, max(1, math.ceil(limit_cores / cpu_share) - 1))


def stress_cpu(config: KubeRayConfig, pod: str, container: str, cpu_share: float, limit_cores: float,
               duration_s: float) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "StressChaos", "metadata": _meta(config, "starve_cpu", pod),
            "spec": {"mode": "all", "selector": _pods(config, [pod]), "containerNames": [container],
                     "duration": _duration(duration_s),
                     "stressors": {"cpu": {"workers": cpu_workers(cpu_share, limit_cores), "load": 100}}}}


def stress_memory(config: KubeRayConfig, pod: str, container: str, size_bytes: int, rate_bytes_s: float,
                  duration_s: float) -> dict[str, Any]:
    if size_bytes <= 0 or rate_bytes_s <= 0:
        raise ConfigError(f"press_memory needs a size and a rate above 0 (got {size_bytes} B at {rate_bytes_s} B/s)")
    grow_s = max(1, math.ceil(size_bytes / rate_bytes_s))
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "StressChaos",
            "metadata": _meta(config, "press_memory", pod),
            "spec": {"mode": "all", "selector": _pods(config, [pod]), "containerNames": [container],
                     "duration": _duration(duration_s),
                     "stressors": {"memory": {"workers": 1, "size": f"{int(size_bytes)}B",
                                              "options": [f"--time {grow_s}s"]}}}}


def network_loss(config: KubeRayConfig, pod: str, peers: list[str], percent: float,
                 duration_s: float) -> list[dict[str, Any]]:
    if not 0 < percent <= 100:
        raise ConfigError(f"packet loss must be in (0, 100] %, got {percent}")
    loss = {"loss": f"{percent:g}", "correlation": "0"}
    out = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NetworkChaos",
           "metadata": _meta(config, "lose_packets", pod, "-out"),
           "spec": {"action": "loss", "mode": "all", "selector": _pods(config, [pod]), "direction": "to",
                    "loss": loss, "duration": _duration(duration_s)}}
    if not peers:
        return [out]
    into = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NetworkChaos",
            "metadata": _meta(config, "lose_packets", pod, "-in"),
            "spec": {"action": "loss", "mode": "all", "selector": _pods(config, peers), "direction": "to",
                     "target": {"mode": "all", "selector": _pods(config, [pod])},
                     "loss": loss, "duration": _duration(duration_s)}}
    return [out, into]


def network_delay(config: KubeRayConfig, pod: str, delay_ms: float, jitter_ms: float,
                  duration_s: float) -> dict[str, Any]:
    if delay_ms <= 0 or jitter_ms < 0:
        raise ConfigError(f"a delay must be above 0 ms and its jitter at least 0 ms (got {delay_ms} +- {jitter_ms})")
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NetworkChaos",
            "metadata": _meta(config, "delay_packets", pod),
            "spec": {"action": "delay", "mode": "all", "selector": _pods(config, [pod]), "direction": "to",
                     "delay": {"latency": f"{delay_ms:g}ms", "jitter": f"{jitter_ms:g}ms", "correlation": "0"},
                     "duration": _duration(duration_s)}}


def records(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """What Chaos Mesh recorded per target of one object: injected or not, how often, and why not."""
    name = (obj.get("metadata") or {}).get("name", "")
    status = obj.get("status") or {}
    out = []
    for rec in ((status.get("experiment") or {}).get("containerRecords") or []):
        failures = [e.get("message", "") for e in rec.get("events") or [] if e.get("type") == "Failed"]
        out.append({"object": name, "target": rec.get("id"), "selector": rec.get("selectorKey"),
                    "phase": rec.get("phase"), "injected": int(rec.get("injectedCount") or 0) > 0,
                    "injected_count": int(rec.get("injectedCount") or 0),
                    "recovered_count": int(rec.get("recoveredCount") or 0), "failures": failures[-3:]})
    return out


def effect(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """``injected``: every object injected every target it selected (at least one each)."""
    per_object = [records(o) for o in objects]
    flat = [r for recs in per_object for r in recs]
    injected = bool(per_object) and all(recs and all(r["injected"] for r in recs) for recs in per_object)
    return {"injected": injected, "records": flat}


#: Placeholder pod names for review (``serve-chaos kind manifests --faults``): KubeRay names the
#: real ones ``<raycluster>-head-<5>`` / ``<raycluster>-workers-worker-<5>`` at run time.
PLACEHOLDER_WORKER = "PLACEHOLDER-raycluster-workers-worker-xxxxx"
PLACEHOLDER_PEERS = ["PLACEHOLDER-raycluster-head-xxxxx", "PLACEHOLDER-raycluster-workers-worker-yyyyy",
                     "PLACEHOLDER-redis-pod"]


def review_objects(config: KubeRayConfig, limit_cores: float = 1.0, memory_bytes: int = 2 * 2**30,
                   duration_s: float = 30.0) -> list[tuple[str, dict[str, Any]]]:
    """Every object the gray faults apply, with the issue-17 scenarios' settings (5 % of a core;
    memory up to the pod's limit at 64 MiB/s; 20 % and 50 % loss; 200 +- 50 ms), each with a
    comment saying which fault it serves.  Pod names are placeholders, marked as such."""
    worker = PLACEHOLDER_WORKER
    out: list[tuple[str, dict[str, Any]]] = [
        ("starve_cpu: 5 % of a core", stress_cpu(config, worker, "ray-worker", 0.05, limit_cores, duration_s)),
        ("press_memory: up to the pod's memory limit",
         stress_memory(config, worker, "ray-worker", memory_bytes, 64 * 2**20, duration_s)),
    ]
    for percent in (20, 50):
        for obj in network_loss(config, worker, PLACEHOLDER_PEERS, percent, duration_s):
            out.append((f"lose_packets: {percent} %", obj))
    out.append(("delay_packets: 200 +- 50 ms", network_delay(config, worker, 200, 50, duration_s)))
    return out
