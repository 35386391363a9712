"""GCS FT on RocksDB and Serve's HAProxy ingress: what the pods get, when the cluster restarts for
them, how runs and scenarios ask for them, and what the probe makes of HAProxy's actors."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

import tests.test_local_ray_version as ray_version_tests
from serve_chaos.harness.catalog import load_scenarios
from serve_chaos.harness.faults import IngressCrash
from serve_chaos.harness.targets import TargetOptions
from serve_chaos.runtime.cluster import PodInfo, RayOptions
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.local.config import LocalClusterConfig
from serve_chaos.runtime.local.layout import HAPROXY_DIR_RE, RunLayout
from serve_chaos.runtime.local.operator import RayServiceOperator
from serve_chaos.runtime.local.rayenv import RayRuntime
from tests import synthetic as syn


def operator(tmp_path: Path, version: str = "2.60.0", mode: str = "netns", **config):
    layout = RunLayout(tmp_path, "abc123")
    layout.logs.mkdir(parents=True)
    kubelet = ray_version_tests.StubKubelet(mode)
    venv = ray_version_tests.VENV
    runtime = RayRuntime(version=version, bin_dir=venv / "bin", python_path=venv / "bin" / "python")
    cfg = LocalClusterConfig(ray_version=version, **config)
    op = RayServiceOperator(cfg, layout, kubelet, lambda *a, **k: None, threading.RLock(), runtime=runtime)
    return op, kubelet


def test_rocksdb_gives_the_head_kuberays_env_on_a_directory_that_outlives_it_and_no_redis(tmp_path):
    op, kubelet = operator(tmp_path, gcs_backend="rocksdb")
    cmd, env = op.pod_spec(kubelet.pods["head"])
    assert env["RAY_gcs_storage"] == "rocksdb"
    store = Path(env["RAY_gcs_storage_path"])
    assert store.is_dir() and store.name == op.storage_namespace and tmp_path in store.parents
    assert "RAY_REDIS_ADDRESS" not in env and not any(a.startswith("--redis-password") for a in cmd)
    # A head restarted in place or recreated gets the same store (a PVC), a new cluster a new one.
    assert op.pod_spec(kubelet.pods["head"])[1]["RAY_gcs_storage_path"] == str(store)
    _, worker_env = op.pod_spec(kubelet.pods["worker-1"])
    assert worker_env["RAY_gcs_rpc_server_reconnect_timeout_s"] == "600"  # as with Redis (pod.go)


def test_redis_stays_the_default_backend(tmp_path):
    op, kubelet = operator(tmp_path)
    _, env = op.pod_spec(kubelet.pods["head"])
    assert env["RAY_REDIS_ADDRESS"].startswith("198.18.0.2:") and "RAY_gcs_storage" not in env
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in env


def test_haproxy_ingress_is_switched_on_in_every_ray_pod_with_short_socket_paths(tmp_path, monkeypatch):
    # The real directory is /tmp/sc-<label>-hap; the test's goes under its own tmp_path (as short).
    import tempfile

    monkeypatch.setattr("serve_chaos.runtime.local.layout.HAPROXY_TMP", Path(tempfile.mkdtemp(prefix="sc", dir="/tmp")))
    op, kubelet = operator(tmp_path, ingress="haproxy")
    for pod in ("head", "worker-1"):
        _, env = op.pod_spec(kubelet.pods[pod])
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        sock = Path(env["RAY_SERVE_HAPROXY_SOCKET_PATH"])
        assert HAPROXY_DIR_RE.match(sock.parent.name)
        # Serve puts each node's files in a directory named by its node id (56 hex digits).
        assert len(str(sock.parent / ("0" * 56) / sock.name).encode()) < 107
    assert op.layout.haproxy_dir.is_dir()
    import shutil

    shutil.rmtree(op.layout.haproxy_dir.parent)


def test_pods_that_cannot_run_the_options_say_why(tmp_path):
    op, _ = operator(tmp_path, version="2.50.0")
    assert "first in 2.57.0" in op.options_problem(RayOptions(True, "rocksdb", "proxy"))
    assert "first in 2.55.0" in op.options_problem(RayOptions(True, "redis", "haproxy"))
    op, _ = operator(tmp_path / "lo", mode="loopback")
    assert "network namespaces" in op.options_problem(RayOptions(True, "redis", "haproxy"))
    assert op.options_problem(RayOptions(True, "rocksdb", "proxy")) == ""


def test_the_cluster_restarts_only_for_options_that_differ_from_what_runs():
    settings = {"gcs_ft": True, "gcs_backend": "redis", "ingress": "proxy", "base_gcs_backend": "redis",
                "base_ingress": "proxy"}
    assert not RayOptions().differs(settings)
    assert RayOptions(gcs_backend="rocksdb").differs(settings)
    assert RayOptions(ingress="haproxy").differs(settings)
    assert RayOptions(gcs_ft=False).differs(settings)
    # After a RocksDB scenario a scenario that does not care goes back to what the run asked for.
    after = {**settings, "gcs_backend": "rocksdb"}
    assert RayOptions().differs(after) and RayOptions().resolved(after).gcs_backend == "redis"
    # Without GCS FT the backend does not matter.
    assert not RayOptions(gcs_ft=False, gcs_backend="rocksdb").differs({**settings, "gcs_ft": False})
    with pytest.raises(ValueError, match="ingress 'nginx'"):
        RayOptions(ingress="nginx")


def test_run_options_are_checked_in_one_line():
    with pytest.raises(ConfigError, match="--gcs-backend: gcs_backend 'etcd'"):
        TargetOptions(gcs_backend="etcd")
    with pytest.raises(ConfigError, match="local target only, not kind"):
        TargetOptions(target="kind", ingress="haproxy")
    assert TargetOptions(gcs_backend="rocksdb", ingress="haproxy").ingress == "haproxy"


def test_a_local_config_refuses_an_unknown_backend():
    with pytest.raises(ConfigError, match="gcs_backend"):
        LocalClusterConfig(gcs_backend="etcd")


def test_the_scenarios_ask_for_their_backend_and_ingress_and_need_the_capability():
    catalogue = load_scenarios()
    rocks, hap, crash = (catalogue[n] for n in ("head_failure_gcs_rocksdb", "head_failure_haproxy", "ingress_crash"))
    assert rocks.ray_options == RayOptions(True, "rocksdb", None) and "gcs_rocksdb" in rocks.requires
    assert hap.ray_options.ingress == "haproxy" and "serve_haproxy" in hap.requires
    assert "serve_haproxy" in crash.requires and "kill_process" in crash.requires
    # Everything else runs as the run has it.
    assert catalogue["replica_failure"].ray_options == RayOptions()


def test_an_ingress_crash_aims_at_a_worker_pods_proxy_and_leaves_its_replicas():
    pods = [PodInfo(name, role, f"n-{name}", ip, "Running", True, f"uid-{name}", 0)
            for name, role, ip in (("head", "head", "10.0.0.10"), ("worker-1", "worker", "10.0.0.20"),
                                   ("worker-2", "worker", "10.0.0.21"))]
    snap = syn.snapshot(0, syn.BASE_REPLICAS + syn.BASE_SYSTEM)
    plan = IngressCrash().plan(snap, pods, random.Random(3))
    assert plan.params["process"] == "haproxy" and plan.params["pod"].startswith("worker-")
    assert [v["role"] for v in plan.victims] == ["proxy"]
    assert plan.victims[0]["pod"] == plan.params["pod"]
