"""The local target runs the Ray it was asked for: every command that runs in a pod takes that
Ray's interpreter and ``ray`` (``RayServiceOperator.runtime``), never the harness's own."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from serve_chaos.runtime.errors import ConfigError, EnvironmentProblem
from serve_chaos.runtime.local import cluster as local_cluster
from serve_chaos.runtime.local.config import LocalClusterConfig
from serve_chaos.runtime.local.layout import RunLayout
from serve_chaos.runtime.local.operator import RayServiceOperator
from serve_chaos.runtime.local.pods import Pod
from serve_chaos.runtime.local.rayenv import RayRuntime, import_root

VENV = Path("/cache/serve-chaos/ray-2.50.0")


class StubKubelet:
    """What the operator reads of a kubelet; ``exec_in`` answers like raykill does."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.fixed_ips = {"head": "198.18.0.10", "redis": "198.18.0.2"}
        self.pods = {"head": Pod("head", "head", "node-head", "node-head", ip="198.18.0.10", phase="Running"),
                     "worker-1": Pod("worker-1", "worker", "node-w1", "node-w1", ip="198.18.0.20", serve_port=8001,
                                     slot_index=1)}
        self.exit_status: dict[int, int] = {}
        self.executed: list[list[str]] = []
        self.pod_spec = None
        self.on_started = None

    def exec_in(self, pod: Pod, cmd: list[str], log: Any) -> Any:
        self.executed.append(cmd)
        log.write(json.dumps({"killed": [], "actor_id": None}).encode() + b"\n")
        log.flush()
        self.exit_status[4242] = 0
        return SimpleNamespace(pid=4242)


def operator(tmp_path: Path, version: str = "2.50.0", mode: str = "netns", **config: Any) -> tuple[Any, StubKubelet]:
    layout = RunLayout(tmp_path, "abc123")
    layout.logs.mkdir(parents=True)
    kubelet = StubKubelet(mode)
    runtime = RayRuntime(version=version, bin_dir=VENV / "bin", python_path=VENV / "bin" / "python")
    cfg = LocalClusterConfig(ray_version=version, **config)
    op = RayServiceOperator(cfg, layout, kubelet, lambda *a, **k: None, threading.RLock(), runtime=runtime)
    return op, kubelet


def test_head_and_workers_start_that_versions_ray_with_the_project_on_the_import_path(tmp_path):
    app_dir = tmp_path / "src"
    app_dir.mkdir()
    op, kubelet = operator(tmp_path, app_dir=str(app_dir))
    head_cmd, head_env = op.pod_spec(kubelet.pods["head"])
    assert head_cmd[:3] == [str(VENV / "bin" / "ray"), "start", "--head"]
    worker_cmd, worker_env = op.pod_spec(kubelet.pods["worker-1"])
    # The init step (wait for the GCS) and `ray start` both come from the version's environment.
    assert worker_cmd[:3] == [str(VENV / "bin" / "python"), "-m", "serve_chaos.runtime.local.podinit"]
    assert worker_cmd[worker_cmd.index("--") + 1:][:2] == [str(VENV / "bin" / "ray"), "start"]
    for env in (head_env, worker_env):
        assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(import_root()), str(app_dir)]
        assert env["PATH"].startswith(str(VENV / "bin") + os.pathsep)
        assert env["RAY_SERVE_KV_TIMEOUT_S"] == "5"  # KubeRay's env is still there
    assert op.settings()["ray_version"] == "2.50.0"


def test_ray_kill_runs_as_a_driver_of_that_version(tmp_path):
    op, kubelet = operator(tmp_path)
    op.kill_actor(["SERVE_REPLICA::sleepy#SleepyPid#abc"], "serve", no_restart=True)
    (cmd,) = kubelet.executed
    # `kubectl exec` has no environment: the driver gets the pod's through env(1).
    assert cmd[0] == "env" and any(a.startswith(f"PYTHONPATH={import_root()}") for a in cmd)
    start = cmd.index(str(VENV / "bin" / "python"))
    assert cmd[start:start + 3] == [str(VENV / "bin" / "python"), "-m", "serve_chaos.runtime.raykill"]
    assert "--name=SERVE_REPLICA::sleepy#SleepyPid#abc" in cmd and "--no-restart" in cmd


@pytest.mark.parametrize("version,expected", [("2.60.0", "8001"), ("2.50.0", None), ("2.40.0", None)])
def test_the_per_worker_proxy_port_is_set_only_where_ray_reads_it(tmp_path, version, expected):
    op, kubelet = operator(tmp_path, version=version, mode="loopback")
    _, env = op.pod_spec(kubelet.pods["worker-1"])
    assert env.get("RAY_SERVE_WORKER_PROXY_HTTP_PORT") == expected
    assert env["SERVE_SOCKET_REUSE_PORT_ENABLED"] == "0"


def test_loopback_isolation_is_refused_for_a_ray_without_per_worker_proxy_ports():
    with pytest.raises(EnvironmentProblem) as err:
        local_cluster.preflight(LocalClusterConfig(isolation="loopback", ray_version="2.50.0"))
    line = err.value.one_line()
    assert "Ray 2.50.0" in line and "RAY_SERVE_WORKER_PROXY_HTTP_PORT is first in Ray 2.60.0" in line
    assert "run as root" in line and "\n" not in line


@pytest.mark.parametrize("value,words", [("2.39.0", "outside the supported Ray range 2.40.0..2.60.0"),
                                         ("2.50", "write it as X.Y.Z")])
def test_a_config_files_ray_version_is_checked_like_the_option(value, words):
    with pytest.raises(ConfigError) as err:
        LocalClusterConfig.from_dict({"ray_version": value})
    assert "ray_version" in str(err.value) and words in str(err.value)


def test_the_version_reaches_the_supervisor_through_the_config_json():
    cfg = LocalClusterConfig(ray_version="2.40.0")
    assert LocalClusterConfig.from_dict(json.loads(cfg.to_json())).ray_version == "2.40.0"
    assert LocalClusterConfig().ray_version == "2.60.0"
