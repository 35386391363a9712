"""Settings of the embedded local cluster, as small frozen dataclasses.

Every time is in seconds and every size in bytes.  Defaults are chosen so a
head and two workers share 2 cores and 24 GB, and so the supervisor behaves as
KubeRay and the kubelet do (see DESIGN.md and ray-facts.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from runtime.app.serve_config import SleepyPidConfig
from runtime.errors import ConfigError

GiB = 1024**3
MiB = 1024**2

#: Where every run keeps its state, logs and pod temp dirs.  Kept short because
#: Ray puts unix sockets under a pod's temp dir and socket paths max out at 107 bytes.
DEFAULT_HOME = Path(os.environ.get("SERVE_CHAOS_HOME", "/tmp/serve-chaos"))
MAX_HOME_LEN = 40

#: KubeRay's env on RayService pods (ray-facts.md) -- they shape recovery times.
KUBERAY_RAYSERVICE_ENV = {
    "RAY_timeout_ms_task_wait_for_death_info": "0",
    "RAY_gcs_server_request_timeout_seconds": "5",
    "RAY_SERVE_KV_TIMEOUT_S": "5",
}


@dataclass(frozen=True)
class PodResources:
    """What one Ray pod may claim: logical CPUs, heap memory and object store (bytes)."""

    num_cpus: int = 1
    memory: int = 4 * GiB
    object_store_memory: int = 300 * MiB


@dataclass(frozen=True)
class SupervisorTiming:
    """How the supervisor imitates Kubernetes and KubeRay (all seconds).

    - ``recreate_delay_s``: a deleted pod's replacement starts this long after the
      old one is gone (ReplicaSet/KubeRay reconcile latency).
    - ``crash_backoff_s`` / ``crash_backoff_max_s``: a pod whose process exits on
      its own restarts at once the first time, then after 10, 20, 40 ... capped
      (kubelet CrashLoopBackOff); reset after ``crash_backoff_reset_s`` running.
    - ``readiness_period_s``: readiness probe period (KubeRay: 5 s).
    - ``readiness_timeout_s``: one probe's timeout.
    - ``operator_period_s``: RayService reconcile period: re-apply the Serve config
      when the controller or the app is missing.
    - ``grace_period_s``: terminationGracePeriodSeconds of a graceful delete.
    - ``prestop_timeout_s``: how long the preStop ``ray stop`` may take.
    - ``node_replacement_delay_s``: a lost node's pods come up on a spare node after this.
    """

    recreate_delay_s: float = 1.0
    crash_backoff_s: float = 10.0
    crash_backoff_max_s: float = 300.0
    crash_backoff_reset_s: float = 600.0
    readiness_period_s: float = 5.0
    readiness_timeout_s: float = 2.0
    operator_period_s: float = 2.0
    grace_period_s: float = 30.0
    prestop_timeout_s: float = 16.0
    node_replacement_delay_s: float = 10.0


@dataclass(frozen=True)
class LocalClusterConfig:
    """One embedded cluster: a head pod, ``workers`` worker pods, a Redis pod.

    ``isolation``: ``netns`` (root: a network namespace and a cgroup per pod),
    ``loopback`` (no root: 127.0.x.y addresses and process-tree kills) or
    ``auto`` (netns when possible).  ``front_port`` is the stable front door on
    127.0.0.1.  ``gcs_ft`` turns the external Redis GCS store on.
    ``gcs_reconnect_timeout_s`` is what KubeRay sets on workers when GCS FT is on.
    """

    workers: int = 2
    spare_nodes: int = 1
    gcs_ft: bool = True
    isolation: str = "auto"
    front_port: int = 18000
    serve_port: int = 8000
    dashboard_port: int = 8265
    gcs_port: int = 6379
    redis_port: int = 6379
    gcs_reconnect_timeout_s: int = 600
    head: PodResources = field(default_factory=PodResources)
    worker: PodResources = field(default_factory=PodResources)
    timing: SupervisorTiming = field(default_factory=SupervisorTiming)
    app: SleepyPidConfig = field(default_factory=SleepyPidConfig)
    home: str = str(DEFAULT_HOME)

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 8:
            raise ConfigError(f"workers must be between 1 and 8, got {self.workers}")
        if not 0 <= self.spare_nodes <= 4:
            raise ConfigError(f"spare_nodes must be between 0 and 4, got {self.spare_nodes}")
        if self.isolation not in ("auto", "netns", "loopback"):
            raise ConfigError(
                f"isolation must be auto, netns or loopback, got {self.isolation!r}",
                hint="use --isolation netns (root) or --isolation loopback",
            )
        for name in ("front_port", "serve_port", "dashboard_port", "gcs_port", "redis_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise ConfigError(f"{name} must be a TCP port (1-65535), got {port}")
        if len(self.home) > MAX_HOME_LEN:
            raise ConfigError(
                f"SERVE_CHAOS_HOME {self.home!r} is {len(self.home)} characters long",
                hint=f"use a path of at most {MAX_HOME_LEN} characters: Ray's unix socket paths"
                " under it must stay below 107 bytes",
            )

    def with_(self, **changes: Any) -> "LocalClusterConfig":
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LocalClusterConfig":
        data = dict(data)
        nested = {
            "head": PodResources,
            "worker": PodResources,
            "timing": SupervisorTiming,
            "app": SleepyPidConfig,
        }
        for key, klass in nested.items():
            if key in data and isinstance(data[key], dict):
                data[key] = klass(**data[key])
        try:
            return cls(**data)
        except TypeError as err:
            raise ConfigError(f"bad local cluster config: {err}") from None
