"""Installed, serve-chaos claims one top-level import name, ``serve_chaos`` (issue 26): a user's own
``harness``, ``runtime`` or ``scenarios`` package stays theirs.  The folders of the repository stay
where they are; setup.py maps them into the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_NAMES = ("harness", "runtime", "scenarios")
#: What a wheel is built from: the packaged folders and the packaging files.
SOURCES = ("serve_chaos", *OLD_NAMES, "setup.py", "pyproject.toml", "README.md")


def _wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(path, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("serve_chaos-*.whl")
    return wheel


def _imported_old_names(code: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    probe = code + ("\nimport json, sys, serve_chaos\n"
                    f"print(json.dumps({{'old': sorted({{m.split('.')[0] for m in sys.modules}} & {set(OLD_NAMES)!r}),"
                    "'file': serve_chaos.__file__, 'path': list(serve_chaos.__path__)}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_wheel_installs_one_top_level_package_that_works_alone(tmp_path):
    wheel = _wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"serve_chaos"}
    assert {"serve_chaos/runtime/k8s/go/go.mod", "serve_chaos/harness/load/locustfile.py",
            "serve_chaos/runtime/kuberay/kind-config.yaml"} <= set(names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "serve_chaos.harness.pytest_plugin" in text and "serve_chaos.harness.cli:main" in text

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site)}
    seen = _imported_old_names("from serve_chaos.harness.catalog import load_scenarios\n"
                               "assert len(load_scenarios()) > 40\nimport serve_chaos.harness.cli", tmp_path, env)
    assert seen["old"] == [] and seen["file"].startswith(str(site))
    assert seen["path"] == [str(site / "serve_chaos")]  # everything inside the package, nothing borrowed


def test_from_a_checkout_nothing_imports_the_folders_by_their_own_names(tmp_path):
    seen = _imported_old_names("from serve_chaos.harness.catalog import load_scenarios\nload_scenarios()\n"
                               "import serve_chaos.harness.cli, serve_chaos.harness.pytest_plugin\n"
                               "import serve_chaos.runtime.k8s.cluster, serve_chaos.runtime.local.cluster", ROOT)
    assert seen["old"] == [] and Path(seen["file"]).parent == ROOT / "serve_chaos"
    assert str(ROOT) in seen["path"]


def test_a_pod_imports_the_bundled_app_from_its_configmap_alone(tmp_path):
    """kind ships the bundled apps as files on the pods' PYTHONPATH (the stock Ray image has no
    serve-chaos): those files alone import, under the same name the Serve config gives."""
    from serve_chaos.runtime.app.serve_config import IMPORT_PATH, SCENARIO_APP

    for path, text in SCENARIO_APP.files:
        (tmp_path / "mount" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mount" / path).write_text(text)
    module, _, attr = IMPORT_PATH.partition(":")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "mount")}
    seen = _imported_old_names(f"import {module} as m\nassert hasattr(m, {attr!r})", tmp_path, env)
    assert seen["file"] == str(tmp_path / "mount" / "serve_chaos" / "__init__.py")
    assert seen["path"] == [str(tmp_path / "mount" / "serve_chaos")]


def test_the_local_pods_import_serve_chaos_and_nothing_else_of_the_checkout(tmp_path):
    """The pods' PYTHONPATH leads to the project's one package, through a link that still finds
    its folders; a user's ``runtime`` or ``harness`` in ``--app-dir`` is not shadowed."""
    from serve_chaos.runtime.local.rayenv import import_root

    env = {**os.environ, "PYTHONPATH": str(import_root(cache=tmp_path / "cache"))}
    seen = _imported_old_names("import serve_chaos.runtime.raykill, serve_chaos.runtime.local.podinit\n"
                               "import importlib.util as u\n"
                               "assert not any(u.find_spec(n) for n in ('harness', 'runtime', 'scenarios'))",
                               tmp_path, env)
    assert seen["old"] == [] and seen["file"].startswith(str(tmp_path / "cache"))


def test_scenario_modules_import_each_other_relatively():
    # pytest imports scenarios/test_x.py as `scenarios.test_x`; an absolute `serve_chaos.scenarios.test_y`
    # import beside it would load a second copy of test_y (and of its Scenario) in the same process.
    absolute = [f"{p.name}: {line.strip()}" for p in sorted((ROOT / "scenarios").glob("*.py"))
                for line in p.read_text().splitlines() if line.startswith(("from serve_chaos.scenarios",
                                                                            "import serve_chaos.scenarios"))]
    assert absolute == []
