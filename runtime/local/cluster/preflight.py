"""Before a local cluster starts: what this machine can do (isolation, network delay, free ports, the
platform), and the cluster config file."""

from __future__ import annotations

import functools
import json
import os
import socket
from pathlib import Path

from serve_chaos.runtime.errors import ConfigError, EnvironmentProblem
from serve_chaos.runtime.local import netns
from serve_chaos.runtime.local.config import LocalClusterConfig
from serve_chaos.runtime.local.gray import delay_supported
from serve_chaos.runtime.local.operator import redis_server_binary
from serve_chaos.runtime.ray_compat import FEATURE_SINCE, features


@functools.lru_cache(maxsize=1)
def _delay_support() -> tuple[bool, str]:
    return delay_supported()


def resolve_isolation(requested: str) -> str:
    ok, why = netns.netns_supported()
    if requested == "netns" and not ok:
        raise EnvironmentProblem(
            f"isolation 'netns' is not possible here: {why}",
            hint="run as root, or pass --isolation loopback",
        )
    if requested == "auto":
        return "netns" if ok else "loopback"
    return requested


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_platform() -> None:
    if os.uname().sysname != "Linux":
        raise EnvironmentProblem(
            f"the embedded local cluster needs Linux, this is {os.uname().sysname}",
            hint="run on Linux, or use --target kind",
        )


def preflight(config: LocalClusterConfig) -> str:
    """Check the machine; return the isolation mode.  One clear error per problem.

    Run after leftovers of dead runs are reaped: they may hold the ports.
    """
    check_platform()
    redis_server_binary()
    mode = resolve_isolation(config.isolation)
    if mode == "loopback" and features(config.ray_version).worker_proxy_port_env is None:
        raise EnvironmentProblem(
            f"loopback isolation gives every worker pod's Serve proxy a port of its own, which Ray "
            f"{config.ray_version} cannot do (RAY_SERVE_WORKER_PROXY_HTTP_PORT is first in Ray "
            f"{FEATURE_SINCE['worker_proxy_port_env']})",
            hint="run as root (namespace isolation), or use --ray-version "
                 f"{FEATURE_SINCE['worker_proxy_port_env']}")
    if not port_free("127.0.0.1", config.front_port):
        raise EnvironmentProblem(
            f"port {config.front_port} on 127.0.0.1 (the front door) is already in use",
            hint="stop whatever listens there, or pass --front-port with a free port",
        )
    if mode == "loopback":
        # Without namespaces these bind on every address of the host.
        wanted = {port: "a Serve proxy port" for port in [config.serve_port + i for i in range(config.workers + 1)]}
        wanted[config.gcs_port] = "the GCS port"
        for port, what in wanted.items():
            if not port_free("0.0.0.0", port):
                raise EnvironmentProblem(
                    f"port {port} ({what} in loopback isolation) is already in use",
                    hint="free it, or use root for namespace isolation",
                )
    return mode


def load_config_file(path: str | None) -> LocalClusterConfig:
    """A LocalClusterConfig from a JSON file (or the defaults)."""
    if path is None:
        return LocalClusterConfig()
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read cluster config {path}: {err.strerror}") from None
    except ValueError as err:
        raise ConfigError(f"cluster config {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"cluster config {path} must hold a JSON object")
    return LocalClusterConfig.from_dict(data)
