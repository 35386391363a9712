"""``--ray-version`` on up / run / nightly / soak and pytest: validated once, wired to both targets,
and a running cluster of another Ray is refused in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from serve_chaos.harness.targets import TargetOptions, bring_up, build_cluster, check_ray_version_fits
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.errors import ConfigError

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, home: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SERVE_CHAOS_HOME=home)
    return subprocess.run([sys.executable, "-m", "serve_chaos.harness.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def home():
    base = tempfile.mkdtemp(prefix="scv", dir="/tmp")
    yield os.path.join(base, "h")
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("command", [["up"], ["run", "replica_failure", "--dry-run"], ["nightly", "replica_failure"],
                                     ["soak", "--dry-run", "--duration", "60"]])
@pytest.mark.parametrize("version,words", [("2.39.0", "outside the supported Ray range 2.40.0..2.60.0"),
                                           ("2.5", "is not a Ray release: write it as X.Y.Z")])
def test_every_command_refuses_a_bad_version_in_one_line_before_any_work(home, command, version, words):
    proc = cli(*command, "--ray-version", version, home=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr
    assert not os.path.exists(home)  # nothing was started or made


def test_a_dry_run_takes_a_supported_version(home):
    proc = cli("run", "replica_failure", "--dry-run", "--ray-version", "2.50.0", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "replica_failure" in proc.stdout


def test_pytest_refuses_a_bad_version_as_a_usage_error(pytester, monkeypatch):
    # The plugin of this checkout, not whatever an editable install points at.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('# the plugin loads through its pytest11 entry point')
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--ray-version", "2.61.0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("outside the supported Ray range 2.40.0..2.60.0" in line for line in result.errlines), result.errlines


def test_the_version_reaches_both_targets(monkeypatch):
    local = build_cluster(TargetOptions(ray_version="2.50.0"))
    assert local.config.ray_version == "2.50.0"
    assert build_cluster(TargetOptions()).config.ray_version == "2.60.0"
    # The kind target's config as build_cluster makes it (no kubeconfig needed to look).
    monkeypatch.setattr("serve_chaos.runtime.kuberay.cluster.KubeRayCluster", lambda target: target)
    kind = build_cluster(TargetOptions(target="kind", ray_version="2.40.0"))
    assert kind.ray.ray_image == "rayproject/ray:2.40.0" and kind.ray.pod_image == "rayproject/ray:2.40.0"
    assert build_cluster(TargetOptions(target="kind")).ray.ray_image == "rayproject/ray:2.60.0"


def _app_with(**deployment: Any) -> AppSpec:
    config = {"applications": [{"name": "a", "route_prefix": "/", "import_path": "m:app",
                                "deployments": [{"name": "D", **deployment}]}]}
    return AppSpec.of(config, "your app (a.yaml)")


def test_a_config_key_the_version_lacks_is_one_line():
    app = _app_with(request_router_config={"request_router_class": "x:Y"})
    with pytest.raises(ConfigError) as err:
        TargetOptions(app=app, ray_version="2.40.0")
    line = err.value.one_line()
    assert "deployment a/D: request_router_config (first in Ray 2.50.0)" in line and "Ray 2.40.0" in line
    # A release that has it, and a run that asks no version, accept it.
    TargetOptions(app=app, ray_version="2.50.0")
    TargetOptions(app=app)


@dataclass
class FakeCluster:
    recorded: str | None = "2.60.0"
    running: bool = True
    label: str = "abc123"
    calls: list[str] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        return {"ray_version": self.recorded} if self.recorded else {}

    def endpoints(self) -> Any:
        from serve_chaos.runtime.cluster import Endpoints

        return Endpoints(front_door="http://127.0.0.1:1", dashboard="http://127.0.0.1:1")

    def attach(self) -> bool:
        self.calls.append("attach")
        return self.running

    def up(self) -> None:
        self.calls.append("up")


def test_a_running_cluster_of_another_ray_is_refused(monkeypatch):
    cluster = FakeCluster(recorded="2.60.0")
    with pytest.raises(ConfigError) as err:
        check_ray_version_fits(cluster, "2.50.0")
    assert "runs Ray 2.60.0, not 2.50.0" in err.value.one_line() and "serve-chaos down" in err.value.one_line()
    check_ray_version_fits(cluster, "2.60.0")
    check_ray_version_fits(cluster, None)  # nothing asked: whatever runs
    # A target that does not record it is asked through the dashboard's /api/version.
    monkeypatch.setattr("serve_chaos.harness.targets.cluster_ray_version", lambda dashboard: "2.40.0")
    with pytest.raises(ConfigError, match="runs Ray 2.40.0, not 2.50.0"):
        check_ray_version_fits(FakeCluster(recorded=None), "2.50.0")


def test_bring_up_checks_a_running_cluster_before_using_it():
    cluster = FakeCluster(recorded="2.60.0", running=True)
    with pytest.raises(ConfigError):
        bring_up(cluster, TargetOptions(ray_version="2.40.0"))
    assert cluster.calls == ["attach"]  # never brought up nor changed


def test_bring_up_makes_the_local_ray_first_with_progress(monkeypatch):
    made: list[tuple[str, Any]] = []
    monkeypatch.setattr("serve_chaos.runtime.local.rayenv.ray_runtime", lambda version, progress=None: made.append((version, progress)))
    options = TargetOptions(ray_version="2.50.0")
    cluster = build_cluster(options)
    monkeypatch.setattr(cluster, "attach", lambda: False)
    monkeypatch.setattr(cluster, "up", lambda: made.append(("up", None)))
    say = print
    bring_up(cluster, options, say)
    assert made == [("2.50.0", say), ("up", None)]


def test_a_running_rayservice_of_another_ray_is_refused_before_anything_is_applied():
    from tests.test_kuberay import Kube

    kube = Kube()
    try:
        kube.bring_up()
        assert kube.cluster.settings()["ray_version"] == "2.60.0"
        with pytest.raises(ConfigError, match="runs Ray 2.60.0, not 2.40.0"):
            check_ray_version_fits(kube.cluster, "2.40.0")
        check_ray_version_fits(kube.cluster, "2.60.0")
    finally:
        kube.close()
