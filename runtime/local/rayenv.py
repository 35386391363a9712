"""The Ray a local cluster's pods run: the harness's own, or a virtual environment per version.

The pinned Ray (what ``pip install -e .`` put next to the harness) runs from the
harness's own environment.  Any other supported version gets a virtual
environment in a cache directory (``$SERVE_CHAOS_RAY_ENVS``, else
``${XDG_CACHE_HOME:-~/.cache}/serve-chaos``), made on first use with
``pip install ray[serve]==X`` and reused after that.  A stamp file written last
marks an environment as complete; one without it (an install that was killed or
failed) is removed and made again, never used.  Nothing of this project is
installed there: the pods get the project on ``PYTHONPATH``, as an image would
carry it, so they import ``serve_chaos.runtime.local.podinit``, ``serve_chaos.runtime.raykill`` and the
bundled apps from the very code the harness runs.

The choice of interpreter is ``RayRuntime``: everything that runs in a pod
(``ray start``, ``ray.kill`` through ``serve_chaos.runtime.raykill``, ``ray drain-node``)
takes its ``python`` / ``ray_bin`` / ``pod_env`` from it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import serve_chaos
from serve_chaos.runtime.errors import ConfigError, InfrastructureError
from serve_chaos.runtime.ray_requirements import extra_requirements
from serve_chaos.runtime.ray_versions import SUPPORTED_RANGE, TESTED_RAY_VERSIONS

STAMP = "serve-chaos-ready.json"
#: The directory ``serve_chaos`` is imported from: the checkout, or the site-packages it was installed into.
PROJECT_ROOT = Path(serve_chaos.__file__).resolve().parent.parent

Progress = Callable[[str], None]


def default_cache_root() -> Path:
    """``$SERVE_CHAOS_RAY_ENVS``, else ``${XDG_CACHE_HOME:-~/.cache}/serve-chaos``."""
    if os.environ.get("SERVE_CHAOS_RAY_ENVS"):
        return Path(os.environ["SERVE_CHAOS_RAY_ENVS"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "serve-chaos"


def harness_ray_version() -> str | None:
    """The Ray installed next to the harness (None when there is none)."""
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class RayRuntime:
    """One Ray installation the pods run: ``bin_dir`` holds its ``python`` and ``ray``."""

    version: str
    bin_dir: Path
    python_path: Path
    #: True for the harness's own environment (nothing was made for it).
    own: bool = False

    @property
    def python(self) -> str:
        return str(self.python_path)

    @property
    def ray_bin(self) -> str:
        return str(self.bin_dir / "ray")

    def pod_env(self, app_dir: str | None = None) -> dict[str, str]:
        """What a pod's processes need beyond the host's environment: this Ray first on
        ``PATH`` (Ray starts its helpers with its own interpreter; PATH is for anything a user's
        code looks up) and the project, then ``app_dir``, then an inherited ``PYTHONPATH``."""
        path = os.pathsep.join(p for p in (str(import_root()), app_dir, os.environ.get("PYTHONPATH")) if p)
        return {"PYTHONPATH": path, "VIRTUAL_ENV": str(self.bin_dir.parent),
                "PATH": os.pathsep.join(p for p in (str(self.bin_dir), os.environ.get("PATH")) if p)}

    def module(self, name: str, *args: str) -> list[str]:
        """``python -m name args`` with this Ray's interpreter."""
        return [self.python, "-m", name, *args]

    def exec_argv(self, argv: list[str], app_dir: str | None = None) -> list[str]:
        """``argv`` for a one-off command in a pod (``kubectl exec`` has no env of its own):
        ``env K=V ... argv`` with ``pod_env``."""
        return ["env", *(f"{k}={v}" for k, v in self.pod_env(app_dir).items()), *argv]


def import_root(root: Path = PROJECT_ROOT, cache: Path | None = None) -> Path:
    """The directory the pods import ``serve_chaos`` from: one in the cache holding only a link to
    the project's ``serve_chaos`` -- never ``root`` itself, where the checkout's ``harness/``,
    ``runtime/`` and ``scenarios/`` would shadow a user's packages of those names in ``--app-dir``,
    or, installed, the harness's own Ray in the same site-packages would shadow the pods' Ray."""
    shim = (cache or default_cache_root()) / f"import-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"
    link = shim / "serve_chaos"
    if not link.is_symlink():
        shim.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(root / "serve_chaos", target_is_directory=True)
        except FileExistsError:
            pass  # another harness made it meanwhile
    return shim


def own_runtime() -> RayRuntime:
    version = harness_ray_version() or "unknown"
    return RayRuntime(version=version, bin_dir=Path(sys.executable).parent, python_path=Path(sys.executable), own=True)


def pinned_with(version: str) -> list[str]:
    """What a Ray release needs installed beside it today (``runtime/ray_requirements.py``, each
    requirement with why)."""
    return extra_requirements(version)


class RayEnvCache:
    """Virtual environments ``<root>/ray-<version>/``, one per Ray version, made once."""

    def __init__(self, root: Path | None = None, base_python: str = sys.executable) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        # A venv made from inside a venv uses the base interpreter (the same Python as ours).
        self.base_python = base_python

    def path(self, version: str) -> Path:
        return self.root / f"ray-{version}"

    def log_path(self, version: str) -> Path:
        return self.root / f"ray-{version}.install.log"

    def ready(self, version: str) -> RayRuntime | None:
        """The environment of ``version`` if it is complete (stamped), else None."""
        env = self.path(version)
        try:
            stamp = json.loads((env / STAMP).read_text())
        except (OSError, ValueError):
            return None
        python = env / "bin" / "python"
        if not isinstance(stamp, dict) or stamp.get("ray_version") != version or not python.exists():
            return None
        if stamp.get("pinned", []) != pinned_with(version):
            return None  # made before a pin was known: made again
        return RayRuntime(version=version, bin_dir=env / "bin", python_path=python)

    def ensure(self, version: str, progress: Progress | None = None) -> RayRuntime:
        """The environment of ``version``, made first if it is missing or half-made.
        ``progress`` gets one short line per step.  A lock file keeps two harnesses from
        making the same environment at once."""
        say = progress or (lambda line: None)
        found = self.ready(version)
        if found is not None:
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"ray-{version}.lock", "w") as lock:
            say(f"waiting for another install of Ray {version} to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = self.ready(version)  # another harness may have made it meanwhile
            if found is not None:
                return found
            return self._make(version, say)

    def _make(self, version: str, say: Progress) -> RayRuntime:
        env = self.path(version)
        if env.exists():
            say(f"removing the half-made environment {env}")
            shutil.rmtree(env)
        log_path = self.log_path(version)
        t0 = time.monotonic()
        try:
            with open(log_path, "w") as log:
                say(f"creating a virtual environment for Ray {version} in {env}")
                self._run([self.base_python, "-m", "venv", str(env)], log, say, version)
                say(f"installing ray[serve]=={version} from PyPI (about a minute, once)")
                self._run([str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                           "--no-input", "--progress-bar", "off", f"ray[serve]=={version}", *pinned_with(version)],
                          log, say, version)
            checked = self._verify(env, version, log_path)
        except BaseException:
            # Never leave something that looks usable: the stamp is missing, but remove it all.
            shutil.rmtree(env, ignore_errors=True)
            raise
        stamp = {"ray_version": version, **checked, "pinned": pinned_with(version), "python": str(env / "bin" / "python"),
                 "made_at": time.time(), "took_s": round(time.monotonic() - t0, 1)}
        tmp = env / (STAMP + ".tmp")
        tmp.write_text(json.dumps(stamp, indent=2))
        os.replace(tmp, env / STAMP)
        say(f"Ray {version} ready in {env} ({stamp['took_s']:.0f} s)")
        return RayRuntime(version=version, bin_dir=env / "bin", python_path=env / "bin" / "python")

    @staticmethod
    def _run(cmd: list[str], log: object, say: Progress, version: str) -> None:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)  # type: ignore[attr-defined]
            tail = (tail + [line.strip()])[-40:]
            step = pip_step(line)
            if step:
                say(step)
        code = proc.wait()  # pip has its own network timeouts and retries
        if code != 0:
            raise install_error(version, tail, str(getattr(log, "name", "")))

    @staticmethod
    def _verify(env: Path, version: str, log_path: Path) -> dict[str, str]:
        """``ray --version`` and ``import ray.serve`` in the new environment, as a user would check."""
        python, ray = str(env / "bin" / "python"), str(env / "bin" / "ray")
        checks = {"ray_cli": [ray, "--version"],
                  "import_serve": [python, "-c", "import ray, ray.serve; print(ray.__version__)"]}
        out: dict[str, str] = {}
        for key, cmd in checks.items():
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            text = (proc.stdout + proc.stderr).strip()
            if proc.returncode != 0 or version not in proc.stdout:
                last = text.splitlines()[-1] if text else "no output"
                raise InfrastructureError(f"the new Ray {version} environment fails `{' '.join(cmd[-3:])}`: {last}",
                                          evidence=str(log_path), hint=verify_hint(version, last))
            out[key] = text.splitlines()[-1]
        return out


def published_ray_releases(python: str = sys.executable, timeout_s: float = 120.0) -> list[str]:
    """The Ray releases the package index serves (``pip index versions ray``), newest first."""
    try:
        proc = subprocess.run([python, "-m", "pip", "index", "versions", "ray", "--disable-pip-version-check"],
                              capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InfrastructureError(f"could not ask the package index which Ray releases exist: {err}") from None
    found = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode != 0 or not found:
        last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise InfrastructureError(f"could not ask the package index which Ray releases exist: {last[0]}",
                                  hint="check that pip reaches the package index, or list releases with A,B,C")
    return [v.strip() for v in found.group(1).split(",") if v.strip()]


def verify_hint(version: str, last_line: str) -> str:
    """What to do when a freshly made environment cannot import Serve (it was removed already)."""
    missing = re.search(r"No module named '([\w.]+)'", last_line)
    if missing:
        return (f"ray[serve]=={version} imports {missing.group(1)} without declaring it, and serve-chaos does not "
                f"install it for this release yet (runtime/ray_requirements.py): pick another release, or add "
                f"{missing.group(1).split('.')[0]} there with the releases it applies to")
    return "the half-made environment was removed; see the install log, or pick another release"


def pip_step(line: str) -> str:
    """The part of a pip output line worth showing as progress ("" for the rest)."""
    text = line.strip()
    for prefix in ("Collecting ", "Downloading ", "Installing collected packages", "Successfully installed"):
        if text.startswith(prefix):
            return text if len(text) <= 100 else text[:97] + "..."
    return ""


def install_error(version: str, tail: list[str], log: str) -> Exception:
    """pip's failure as one line: a release PyPI lacks is the user's to fix, anything else ours."""
    text = "\n".join(tail)
    missing = ("No matching distribution found for ray" in text
               or "Could not find a version that satisfies the requirement ray" in text)
    if missing:
        return ConfigError(f"Ray {version} cannot be installed: PyPI has no ray[serve]=={version} for Python "
                           f"{sys.version_info.major}.{sys.version_info.minor}",
                           hint=f"pick a released version in {SUPPORTED_RANGE}, e.g. {', '.join(TESTED_RAY_VERSIONS)}")
    last = next((ln for ln in reversed(tail) if ln.startswith("ERROR")), tail[-1] if tail else "no output")
    return InfrastructureError(f"pip could not install ray[serve]=={version}: {last}", evidence=log,
                               hint="check access to PyPI (proxy settings), then run again")


def ray_runtime(version: str, cache: RayEnvCache | None = None, progress: Progress | None = None) -> RayRuntime:
    """The Ray ``version`` runs from: the harness's own when it is that version, else a cached
    environment, made on first use."""
    own = own_runtime()
    if own.version == version:
        return own
    return (cache or RayEnvCache()).ensure(version, progress)


def installed_runtime(version: str, cache: RayEnvCache | None = None) -> RayRuntime:
    """Like ``ray_runtime`` but never makes anything (for the supervisor, which has no console):
    the environment must be ready, which ``LocalCluster.up`` sees to before it starts it."""
    own = own_runtime()
    if own.version == version:
        return own
    cache = cache or RayEnvCache()
    found = cache.ready(version)
    if found is None:
        raise InfrastructureError(f"Ray {version} has no complete environment in {cache.path(version)}",
                                  hint=f"`serve-chaos up --ray-version {version}` makes it")
    return found
