"""Ray versions: the one check of ``--ray-version``, and the per-version environments of the local target.

The environment tests run ``RayEnvCache`` against a stand-in for ``python -m venv``
and pip (a script that writes an environment whose ``python`` and ``ray`` answer like
the real ones, or fails as pip does for a release PyPI lacks): making a real one takes
a download of ~400 MB.  Real environments were made with the same code and checked with
``ray --version`` and ``import ray.serve`` (README, "Other Ray versions").
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from serve_chaos.runtime.errors import ConfigError, InfrastructureError
from serve_chaos.runtime.local.rayenv import STAMP, RayEnvCache, own_runtime, pip_step, ray_runtime
from serve_chaos.runtime.ray_versions import check_ray_version, parse_ray_versions


@pytest.mark.parametrize("text", ["2.40.0", "2.50.0", "2.60.0", " 2.45.1 "])
def test_supported_releases_pass(text):
    assert check_ray_version(text) == text.strip()


@pytest.mark.parametrize("text,words", [
    ("2.60", "write it as X.Y.Z"),
    ("v2.50.0", "write it as X.Y.Z"),
    ("2.50.0rc1", "write it as X.Y.Z"),
    ("latest", "write it as X.Y.Z"),
    ("", "write it as X.Y.Z"),
    ("2.39.9", "outside the supported Ray range 2.40.0..2.60.0"),
    ("2.9.0", "outside the supported Ray range 2.40.0..2.60.0"),
    ("2.61.0", "outside the supported Ray range 2.40.0..2.60.0"),
    ("3.0.0", "outside the supported Ray range 2.40.0..2.60.0"),
])
def test_bad_versions_are_one_line_naming_the_range(text, words):
    with pytest.raises(ConfigError) as err:
        check_ray_version(text)
    line = err.value.one_line()
    assert words in line and "\n" not in line
    assert "2.40.0..2.60.0" in line


def test_version_lists_are_sorted_numerically_and_deduplicated():
    assert parse_ray_versions("2.60.0, 2.40.0,2.50.0,2.40.0") == ("2.40.0", "2.50.0", "2.60.0")
    # Numerically, not as text: 2.45.10 comes after 2.45.9.
    assert parse_ray_versions("2.45.10,2.45.9") == ("2.45.9", "2.45.10")
    with pytest.raises(ConfigError, match="names no Ray version"):
        parse_ray_versions(" , ")
    with pytest.raises(ConfigError, match="--ray-versions '2.5'"):
        parse_ray_versions("2.50.0,2.5")


# ---------------------------------------------------------------------- environments
FAKE_PYTHON = """\
#!{python}
# Stand-in for a venv's python: `-m pip install ray[serve]==X`, and `-c CODE` printing X.
import os, sys
here = os.path.dirname(os.path.abspath(__file__))
version = open(os.path.join(here, "..", "version")).read().strip() if os.path.exists(os.path.join(here, "..", "version")) else ""
args = sys.argv[1:]
if args[:3] == ["-m", "pip", "install"]:
    want = next(a for a in args if a.startswith("ray[serve]==")).split("==")[1]
    open(os.path.join(here, "..", "pinned"), "w").write(" ".join(a for a in args[3:] if a.startswith("protobuf")))
    print(f"Collecting ray[serve]=={{want}}")
    if want in os.environ.get("FAKE_PYPI_LACKS", ""):
        print("ERROR: Could not find a version that satisfies the requirement ray[serve]==" + want)
        print("ERROR: No matching distribution found for ray[serve]==" + want)
        sys.exit(1)
    if os.environ.get("FAKE_PIP_NETWORK_DOWN"):
        print("ERROR: Could not install packages due to an OSError: connection refused")
        sys.exit(1)
    print("  Downloading ray-" + want + "-cp311-cp311-manylinux2014_x86_64.whl (66.9 MB)")
    print("Installing collected packages: ray")
    print("Successfully installed ray-" + want)
    open(os.path.join(here, "..", "version"), "w").write(want)
    sys.exit(0)
if args and args[0] == "-c":
    print(os.environ.get("FAKE_IMPORT_VERSION") or version)
    sys.exit(0)
sys.exit(2)
"""

FAKE_RAY = """\
#!/bin/sh
echo "ray, version $(cat "$(dirname "$0")/../version")"
"""

FAKE_BASE = """\
#!{python}
# Stand-in for `python -m venv DIR`.
import os, sys
assert sys.argv[1:3] == ["-m", "venv"], sys.argv
env = sys.argv[3]
os.makedirs(os.path.join(env, "bin"))
for name, text in (("python", {fake_python!r}), ("ray", {fake_ray!r})):
    path = os.path.join(env, "bin", name)
    open(path, "w").write(text)
    os.chmod(path, 0o755)
"""


@pytest.fixture
def fake_base(tmp_path: Path) -> str:
    python = FAKE_PYTHON.format(python=sys.executable)
    base = tmp_path / "fake-base-python"
    base.write_text(FAKE_BASE.format(python=sys.executable, fake_python=python, fake_ray=FAKE_RAY))
    base.chmod(0o755)
    return str(base)


def test_an_environment_is_made_once_stamped_and_reused(tmp_path, fake_base):
    cache = RayEnvCache(tmp_path / "cache", base_python=fake_base)
    steps: list[str] = []
    made = cache.ensure("2.50.0", progress=steps.append)
    assert made.python == str(tmp_path / "cache" / "ray-2.50.0" / "bin" / "python")
    assert made.ray_bin.endswith("ray-2.50.0/bin/ray") and not made.own
    stamp = json.loads((tmp_path / "cache" / "ray-2.50.0" / STAMP).read_text())
    assert stamp["ray_version"] == "2.50.0" and stamp["ray_cli"] == "ray, version 2.50.0"
    # Serve before 2.60 cannot run on protobuf 7: the pin goes with the install and the stamp.
    assert (tmp_path / "cache" / "ray-2.50.0" / "pinned").read_text() == "protobuf<7"
    assert stamp["pinned"] == ["protobuf<7"]
    assert stamp["import_serve"] == "2.50.0"
    # Progress named each step, pip's included.
    assert any("creating a virtual environment" in s for s in steps)
    assert any(s.startswith("Collecting ray[serve]==2.50.0") for s in steps)
    assert any(s.startswith("Successfully installed") for s in steps)
    # The second time nothing is made: the same environment, no steps.
    again: list[str] = []
    marker = tmp_path / "cache" / "ray-2.50.0" / "kept"
    marker.write_text("x")
    assert cache.ensure("2.50.0", progress=again.append) == made
    assert again == [] and marker.exists()


def test_a_half_made_environment_is_rebuilt_never_used(tmp_path, fake_base):
    cache = RayEnvCache(tmp_path / "cache", base_python=fake_base)
    half = tmp_path / "cache" / "ray-2.40.0"
    (half / "bin").mkdir(parents=True)
    (half / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")
    (half / "leftover").write_text("from a killed install")
    assert cache.ready("2.40.0") is None
    made = cache.ensure("2.40.0")
    assert not (half / "leftover").exists()
    assert cache.ready("2.40.0") == made
    # A stamp for another version does not count either.
    (half / STAMP).write_text(json.dumps({"ray_version": "2.41.0"}))
    assert cache.ready("2.40.0") is None


def test_a_release_pypi_lacks_is_one_line_and_leaves_nothing(tmp_path, fake_base, monkeypatch):
    monkeypatch.setenv("FAKE_PYPI_LACKS", "2.45.7")
    cache = RayEnvCache(tmp_path / "cache", base_python=fake_base)
    with pytest.raises(ConfigError) as err:
        cache.ensure("2.45.7")
    line = err.value.one_line()
    assert "PyPI has no ray[serve]==2.45.7" in line and "2.40.0..2.60.0" in line and "\n" not in line
    assert not cache.path("2.45.7").exists()


def test_an_install_that_fails_otherwise_names_pips_error_and_its_log(tmp_path, fake_base, monkeypatch):
    monkeypatch.setenv("FAKE_PIP_NETWORK_DOWN", "1")
    cache = RayEnvCache(tmp_path / "cache", base_python=fake_base)
    with pytest.raises(InfrastructureError) as err:
        cache.ensure("2.50.0")
    assert "connection refused" in err.value.what
    assert err.value.evidence == str(cache.log_path("2.50.0")) and Path(err.value.evidence).exists()
    assert not cache.path("2.50.0").exists()


def test_an_environment_whose_ray_is_another_version_is_refused(tmp_path, fake_base, monkeypatch):
    monkeypatch.setenv("FAKE_IMPORT_VERSION", "2.49.9")
    cache = RayEnvCache(tmp_path / "cache", base_python=fake_base)
    with pytest.raises(InfrastructureError, match="fails"):
        cache.ensure("2.50.0")
    assert cache.ready("2.50.0") is None and not cache.path("2.50.0").exists()


def test_the_harnesss_own_ray_needs_no_environment(tmp_path):
    own = own_runtime()
    assert own.own and own.python == sys.executable
    cache = RayEnvCache(tmp_path / "never-made")
    assert ray_runtime(own.version, cache) == own
    assert not (tmp_path / "never-made").exists()


def test_pod_env_puts_this_ray_first_and_the_project_on_the_import_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/inherited")
    rt = own_runtime()
    env = rt.pod_env(app_dir="/user/src")
    # The project's one package (a link to it: the checkout's other folders stay off the path).
    root = env["PYTHONPATH"].split(os.pathsep)[0]
    assert sorted(p.name for p in Path(root).iterdir()) == ["serve_chaos"]
    assert (Path(root) / "serve_chaos").resolve() == Path(__file__).resolve().parent.parent / "serve_chaos"
    assert env["PYTHONPATH"].split(os.pathsep)[1:] == ["/user/src", "/inherited"]
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    argv = rt.exec_argv(rt.module("serve_chaos.runtime.raykill", "--name=x"), app_dir="/user/src")
    assert argv[0] == "env" and f"PYTHONPATH={env['PYTHONPATH']}" in argv
    assert argv[-4:] == [sys.executable, "-m", "serve_chaos.runtime.raykill", "--name=x"]


def test_pip_lines_worth_showing():
    assert pip_step("  Downloading ray-2.40.0.whl (66.9 MB)\n") == "Downloading ray-2.40.0.whl (66.9 MB)"
    assert pip_step("Requirement already satisfied: click") == ""
    assert len(pip_step("Collecting " + "x" * 300)) == 100


def test_the_cache_directory_follows_xdg_and_can_be_overridden(monkeypatch, tmp_path):
    from serve_chaos.runtime.local.rayenv import default_cache_root

    monkeypatch.delenv("SERVE_CHAOS_RAY_ENVS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "serve-chaos"
    monkeypatch.setenv("SERVE_CHAOS_RAY_ENVS", str(tmp_path / "mine"))
    assert default_cache_root() == tmp_path / "mine"


def test_the_pods_never_import_the_harnesss_ray_through_the_project(tmp_path):
    from serve_chaos.runtime.local.rayenv import import_root

    # A checkout: its harness/, runtime/ and scenarios/ would shadow a user's own; the pods get only `serve_chaos`.
    checkout = tmp_path / "checkout"
    (checkout / "serve_chaos").mkdir(parents=True)
    (checkout / "runtime").mkdir()
    shim = import_root(checkout, tmp_path / "cache")
    assert sorted(p.name for p in shim.iterdir()) == ["serve_chaos"]
    # Installed into a site-packages: the harness's Ray is there too; the pods get only `serve_chaos`.
    site = tmp_path / "site-packages"
    (site / "serve_chaos").mkdir(parents=True)
    (site / "ray").mkdir()
    shim = import_root(site, tmp_path / "cache")
    assert shim != site and sorted(p.name for p in shim.iterdir()) == ["serve_chaos"]
    assert (shim / "serve_chaos").resolve() == (site / "serve_chaos").resolve()
    assert import_root(site, tmp_path / "cache") == shim  # made once


def test_an_environment_made_before_its_pin_was_known_is_made_again(tmp_path, fake_base):
    cache = RayEnvCache(tmp_path / "cache", base_python=fake_base)
    cache.ensure("2.50.0")
    stamp_path = tmp_path / "cache" / "ray-2.50.0" / STAMP
    stamp = json.loads(stamp_path.read_text())
    del stamp["pinned"]
    stamp_path.write_text(json.dumps(stamp))
    assert cache.ready("2.50.0") is None
    assert cache.ensure("2.50.0").version == "2.50.0"
    assert json.loads(stamp_path.read_text())["pinned"] == ["protobuf<7"]


def test_each_release_gets_the_extra_requirements_it_needs_and_each_says_why():
    from serve_chaos.runtime.ray_requirements import EXTRA_REQUIREMENTS, extra_requirements

    assert extra_requirements("2.50.0") == ["protobuf<7"]
    assert extra_requirements("2.57.0") == extra_requirements("2.58.0") == ["protobuf<7", "jinja2"]
    assert extra_requirements("2.56.1") == extra_requirements("2.59.0") == ["protobuf<7"]
    assert extra_requirements("2.60.0") == []
    assert all(r.why and "seen" in r.why for r in EXTRA_REQUIREMENTS)


def test_a_release_that_imports_an_undeclared_package_says_so_not_remove_and_retry():
    from serve_chaos.runtime.local.rayenv import verify_hint

    hint = verify_hint("2.61.0", "ModuleNotFoundError: No module named 'jinja2'")
    assert "imports jinja2 without declaring it" in hint and "runtime/ray_requirements.py" in hint
    assert "try again" not in hint and "try again" not in verify_hint("2.61.0", "Segmentation fault")


def test_versions_check_says_per_release_whether_it_builds_and_why_not():
    from serve_chaos.harness.cli.versions import check_releases
    from serve_chaos.runtime.errors import InfrastructureError

    def ensure(version):
        if version == "2.41.0":
            raise InfrastructureError("the new Ray 2.41.0 environment fails `import ray, ray.serve`: boom",
                                      hint="pick another release")
        return object()

    results = check_releases(["2.40.0", "2.41.0", "2.57.0"], ensure)
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].why.startswith("the new Ray 2.41.0 environment fails") and "pick another release" in results[1].why
    assert results[2].extras == ("protobuf<7", "jinja2")
