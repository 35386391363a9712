"""Settings of the embedded local cluster, as a schema: validated once, strictly.

Every time is in seconds and every size in bytes.  Types are strict (a JSON
``"no"`` is not a boolean, ``2.5`` not a whole number), numbers finite, nested
keys known, ports distinct; each violation is one ``ConfigError`` line naming
the key.  Defaults are chosen so a head and two workers share 2 cores and
24 GB, and so the supervisor behaves as KubeRay and the kubelet do (see
DESIGN.md and ray-facts.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from serve_chaos.runtime.app.serve_config import SleepyPidConfig
from serve_chaos.runtime.app.spec import validate_serve_config
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.ray_versions import DEFAULT_RAY_VERSION, check_ray_version

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

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(ge=0)]


class _Schema(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def with_(self, **changes: Any) -> Any:
        """A copy with ``changes``, validated like the original."""
        return validated(type(self), {**self.model_dump(), **changes})


class PodResources(_Schema):
    """What one Ray pod may claim: logical CPUs, heap memory and object store (bytes), and the
    pod's memory limit (bytes; a container's ``resources.limits.memory``, enforced by the pod's
    cgroup v1 memory controller where it is mounted; None: no limit)."""

    num_cpus: int = Field(1, ge=1, le=64)
    memory: int = Field(4 * GiB, ge=256 * MiB)
    object_store_memory: int = Field(300 * MiB, ge=75 * MiB)
    memory_limit: int | None = Field(None, ge=512 * MiB)


class SupervisorTiming(_Schema):
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

    recreate_delay_s: Seconds = 1.0
    crash_backoff_s: Seconds = 10.0
    crash_backoff_max_s: Seconds = 300.0
    crash_backoff_reset_s: Seconds = 600.0
    readiness_period_s: Annotated[float, Field(gt=0)] = 5.0
    readiness_timeout_s: Annotated[float, Field(gt=0)] = 2.0
    operator_period_s: Annotated[float, Field(gt=0)] = 2.0
    grace_period_s: Seconds = 30.0
    prestop_timeout_s: Seconds = 16.0
    node_replacement_delay_s: Seconds = 10.0


def _app(value: Any) -> SleepyPidConfig:
    if isinstance(value, SleepyPidConfig):
        return value
    if not isinstance(value, dict):
        raise ValueError("must be an object of SleepyPid settings")
    try:
        return SleepyPidConfig(**value)
    except TypeError as err:
        raise ValueError(str(err).replace("SleepyPidConfig.__init__() ", "")) from None


def _serve_config(value: Any) -> Any:
    if value is not None:
        if not isinstance(value, dict):
            raise ValueError("must be a Serve config object (applications: [...])")
        validate_serve_config(value, "serve_config")
    return value


def _ray_version(value: str) -> str:
    try:
        return check_ray_version(value, "ray_version")
    except ConfigError as err:
        raise ValueError(err.what) from None


class LocalClusterConfig(_Schema):
    """One embedded cluster: a head pod, ``workers`` worker pods, a Redis pod.

    ``isolation``: ``netns`` (root: a network namespace and a cgroup per pod),
    ``loopback`` (no root: 127.0.x.y addresses and process-tree kills) or
    ``auto`` (netns when possible).  ``front_port`` is the stable front door on
    127.0.0.1.  ``gcs_ft`` turns GCS fault tolerance on; ``gcs_backend`` keeps its tables in
    the Redis pod (``redis``) or in RocksDB on the head's own persistent directory (``rocksdb``,
    as KubeRay v1.7.0 mounts a PVC).  ``ingress``: Serve's Python proxies (``proxy``) or the
    HAProxy Serve runs on every node (``haproxy``, ``RAY_SERVE_ENABLE_HA_PROXY=1``; netns only).
    ``gcs_reconnect_timeout_s`` is what KubeRay sets on workers when GCS FT is on.
    ``ray_version``: the Ray the pods run (the harness's own, or a cached virtual
    environment made for it: ``runtime/local/rayenv.py``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False,
                              arbitrary_types_allowed=True)

    workers: int = Field(2, ge=1, le=8)
    spare_nodes: int = Field(1, ge=0, le=4)
    gcs_ft: bool = True
    gcs_backend: Literal["redis", "rocksdb"] = "redis"
    ingress: Literal["proxy", "haproxy"] = "proxy"
    isolation: Literal["auto", "netns", "loopback"] = "auto"
    front_port: Port = 18000
    serve_port: Port = 8000
    dashboard_port: Port = 8265
    gcs_port: Port = 6379
    redis_port: Port = 6379
    gcs_reconnect_timeout_s: int = Field(600, ge=1)
    head: PodResources = PodResources()
    #: Worker pods get a memory limit, as KubeRay pods carry one: Ray's memory monitor reads it
    #: when the raylet starts (ray-facts.md), and memory pressure needs a limit to press against.
    #: An idle worker of the bundled apps uses about 620 MiB.
    worker: PodResources = PodResources(memory_limit=2 * GiB)
    timing: SupervisorTiming = SupervisorTiming()
    app: Annotated[SleepyPidConfig, BeforeValidator(_app)] = SleepyPidConfig()
    #: The Serve config deployed at start (Serve's schema); None: the SleepyPid of ``app``.
    serve_config: Annotated[dict[str, Any] | None, BeforeValidator(_serve_config)] = None
    #: A directory on the Ray pods' import path (``PYTHONPATH``): the code a user's config imports.
    app_dir: str | None = None
    #: ``AppSpec.code_id`` of the code the pods carry (a running cluster with other code is refused).
    app_code: str = ""
    home: str = Field(str(DEFAULT_HOME), min_length=1)
    ray_version: Annotated[str, AfterValidator(_ray_version)] = DEFAULT_RAY_VERSION

    def __init__(self, **data: Any) -> None:
        # Only here, not in the nested schemas: pydantic calls a custom __init__ of a nested
        # model itself, and the key path of an error would be lost.
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise config_error(err) from None

    @model_validator(mode="after")
    def _consistent(self) -> "LocalClusterConfig":
        if Path(self.home).exists() and not Path(self.home).is_dir():
            raise ValueError(f"SERVE_CHAOS_HOME {self.home} is a file; it must be a directory (or not exist yet)")
        if len(self.home) > MAX_HOME_LEN:
            raise ValueError(f"SERVE_CHAOS_HOME {self.home!r} is {len(self.home)} characters long; use a path of at "
                             f"most {MAX_HOME_LEN} characters: Ray's unix socket paths under it must stay below "
                             "107 bytes")
        # The front door binds on the host; the others bind inside pods, and without
        # namespaces on the host too: no two may share a port.
        ports = {"front_port": self.front_port, "serve_port": self.serve_port,
                 "dashboard_port": self.dashboard_port, "gcs_port": self.gcs_port}
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(f"{name} {port} is also the {seen[port]}; every port must differ")
            seen[port] = name
        if self.app_dir is not None and not Path(self.app_dir).is_dir():
            raise ValueError(f"app_dir {self.app_dir} is not a directory")
        if self.timing.crash_backoff_max_s < self.timing.crash_backoff_s:
            raise ValueError("timing.crash_backoff_max_s must be >= timing.crash_backoff_s")
        return self

    def to_json(self) -> str:
        data = self.model_dump()
        data["app"] = self.app.__dict__.copy()
        import json

        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> "LocalClusterConfig":
        if not isinstance(data, dict):
            raise ConfigError("a local cluster config must be a JSON object")
        return validated(cls, data)


def validated(model: type[_Schema], data: dict[str, Any]) -> Any:
    """``model(**data)``: every violation is one ConfigError line naming the key."""
    return model(**data)


def config_error(err: ValidationError) -> ConfigError:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "config"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if first.get("type") in ("missing", "value_error") or isinstance(got, dict) else f" (got {got!r})"
    hint = {"extra_forbidden": "remove it, or see the fields of runtime/local/config.py"}.get(first.get("type"), "")
    text = message if first.get("type") == "value_error" and where == "config" else f"{where}: {message}{shown}"
    return ConfigError(f"bad local cluster config: {text}", hint=hint)
