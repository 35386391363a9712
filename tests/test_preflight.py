"""The machine checks before a local cluster starts: one clear line each, with the fix."""

import os
import socket

import pytest

from serve_chaos.runtime.errors import EnvironmentProblem
from serve_chaos.runtime.local import cluster as local_cluster
from serve_chaos.runtime.local.config import LocalClusterConfig


def test_port_already_taken():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(EnvironmentProblem) as err:
            local_cluster.preflight(LocalClusterConfig(front_port=port))
    text = str(err.value)
    assert f"port {port} on 127.0.0.1 (the front door) is already in use" in text
    assert "--front-port" in text and "\n" not in text


def test_missing_redis_server(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("serve_chaos.runtime.local.supervisor.Path.exists", lambda self: False)
    with pytest.raises(Exception) as err:
        local_cluster.preflight(LocalClusterConfig())
    assert "redis-server is not installed" in str(err.value) and "apt-get install redis-server" in str(err.value)


def test_not_linux(monkeypatch):
    real = os.uname()

    class Uname:
        sysname = "Darwin"

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(os, "uname", lambda: Uname())
    with pytest.raises(EnvironmentProblem) as err:
        local_cluster.preflight(LocalClusterConfig())
    assert "needs Linux, this is Darwin" in str(err.value) and "--target kind" in str(err.value)


def test_netns_without_root_is_refused(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem) as err:
        local_cluster.resolve_isolation("netns")
    assert "need root" in str(err.value) and "--isolation loopback" in str(err.value)
    assert local_cluster.resolve_isolation("auto") == "loopback"
