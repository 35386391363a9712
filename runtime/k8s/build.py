"""The k8s target's programs, built from their Go modules through the Go module proxy, once, cached.

- **Kubernetes** (``kube-apiserver``, ``kube-controller-manager``, ``kube-scheduler``,
  ``kubectl``) and **etcd** at the versions Kubernetes pins, plus our **nodeserver** (the
  kubelet's exec/port-forward/logs endpoints), from one small module of ours,
  ``runtime/k8s/go``: it requires ``k8s.io/kubernetes`` and replaces each ``k8s.io/*``
  staging module by its published ``v0.<minor>.<patch>``, as modules that depend on
  k8s.io/kubernetes do (its own go.mod points them into ./staging, which a dependent
  module does not inherit).
- **The KubeRay operator** with ``go install github.com/ray-project/kuberay/ray-operator@<v>``:
  v1.7.0 first; where the proxy refuses it, the newest release it serves, said in one line.

Binaries go to ``<cache>/k8s/<digest>/`` (the cache of ``serve_chaos.runtime.local.rayenv``); the digest
covers our module's files, the Go version and the build flags, so a change rebuilds and a
warm start reuses.  A stamp written last marks a complete build.  Go's own caches
(GOCACHE, GOMODCACHE) stay where Go keeps them, outside the repository.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from serve_chaos.runtime.errors import EnvironmentProblem, InfrastructureError
from serve_chaos.runtime.local.rayenv import default_cache_root

GO_MODULE = Path(__file__).resolve().parent / "go"
KUBERAY_MODULE = "github.com/ray-project/kuberay/ray-operator"
#: The operator release the project is written against, then what to run when the proxy refuses it
#: (measured 2026-12-06: proxy.golang.org answers 403 "This module version is not available" for
#: v1.7.0's zip; v1.6.2 is the newest it serves).
KUBERAY_VERSIONS = ("v1.7.0", "v1.6.2")
TOOLS = ("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
         "k8s.io/kubernetes/cmd/kube-scheduler", "k8s.io/kubernetes/cmd/kubectl", "go.etcd.io/etcd/server/v3")
#: Names of the binaries ``go build -o DIR/`` writes (the last element of each package path;
#: etcd's main package is its module root, ``server/v3`` -> ``server``).
BINARIES = {"kube-apiserver": "kube-apiserver", "kube-controller-manager": "kube-controller-manager",
            "kube-scheduler": "kube-scheduler", "kubectl": "kubectl", "etcd": "server"}
STAMP = "serve-chaos-built.json"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Binaries:
    """Paths of the built programs, and the versions they are."""

    dir: Path
    kubernetes_version: str
    etcd_version: str
    kuberay_version: str
    kuberay_operator: Path
    #: The operator module's source directory (CRDs and RBAC under ``config/``).
    kuberay_source: Path
    #: Why the KubeRay release that runs is not the one the project is written against, or "".
    kuberay_note: str = ""
    #: Our nodeserver, built apart (it changes more often than Kubernetes).
    nodeserver: Path | None = None

    def path(self, name: str) -> Path:
        if name == "nodeserver" and self.nodeserver is not None:
            return self.nodeserver
        return self.dir / BINARIES[name]

    @property
    def kubectl(self) -> Path:
        return self.path("kubectl")


def go_binary() -> str:
    found = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
                                        if Path(p).exists()), None)
    if found is None:
        raise EnvironmentProblem("Go is not installed: the k8s target builds Kubernetes and the KubeRay operator "
                                 "from their Go modules", hint="install Go 1.26 (https://go.dev/doc/install) and make "
                                                                "sure the Go module proxy is reachable")
    return found


def module_versions() -> tuple[str, str]:
    """(Kubernetes, etcd) versions our module requires, read from its go.mod."""
    text = (GO_MODULE / "go.mod").read_text()
    kube = re.search(r"k8s\.io/kubernetes (v\S+)", text)
    etcd = re.search(r"go\.etcd\.io/etcd/server/v3 (v\S+)", text)
    return (kube.group(1) if kube else "?", etcd.group(1) if etcd else "?")


def ldflags(kubernetes_version: str) -> str:
    """Strip symbols (a third of the link time) and stamp the version the binaries report
    (``k8s.io/component-base/version``; otherwise they say v0.0.0-master)."""
    major, minor = kubernetes_version.lstrip("v").split(".")[:2]
    stamps = {"k8s.io/component-base/version.gitVersion": kubernetes_version,
              "k8s.io/component-base/version.gitMajor": major, "k8s.io/component-base/version.gitMinor": minor,
              "k8s.io/client-go/pkg/version.gitVersion": kubernetes_version,
              "k8s.io/component-base/version.gitTreeState": "clean"}
    return "-s -w " + " ".join(f"-X {k}={v}" for k, v in stamps.items())


def _digest(go: str, files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(str(path.relative_to(GO_MODULE)).encode())
        h.update(path.read_bytes())
    h.update(subprocess.run([go, "version"], capture_output=True, text=True).stdout.encode())
    h.update(ldflags(module_versions()[0]).encode())
    return h.hexdigest()[:12]


def cache_root() -> Path:
    return default_cache_root() / "k8s"


def _proxy_problem(output: str) -> str | None:
    """One line saying the module proxy refused or could not be reached, or None."""
    for line in output.splitlines():
        if re.search(r"(proxy\.golang\.org|GOPROXY|dial tcp|no such host|403 Forbidden|404 Not Found|"
                     r"not available|connection refused|i/o timeout)", line):
            return line.strip()
    return None


def _run_go(cmd: list[str], what: str, env: dict[str, str], cwd: Path | None, progress: Progress,
            expected_s: float) -> subprocess.CompletedProcess[str]:
    """Run a go command with a progress line every 15 s; one-line errors."""
    t0 = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(15.0):
            progress(f"{what}: {time.monotonic() - t0:.0f} s (about {expected_s / 60:.1f} min from nothing on 2 cores)")

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"{what} did not finish within an hour") from None
    finally:
        done.set()
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout or "").strip()
        refused = _proxy_problem(output)
        if refused:
            raise EnvironmentProblem(f"{what}: the Go module proxy could not serve a module ({refused})",
                                     hint="check GOPROXY and the network; the k8s target needs the Go module proxy "
                                          "the first time it builds")
        raise InfrastructureError(f"{what} failed (exit {proc.returncode})",
                                  evidence=(output.splitlines() or ["no output"])[-1])
    return proc


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-buildvcs=false")
    env["CGO_ENABLED"] = env.get("CGO_ENABLED", "1")
    return env


def _build(go: str, out: Path, packages: list[str], names: list[str], what: str, progress: Progress,
           expected_s: float) -> None:
    """``go build`` ``packages`` of our module into ``out`` (made whole or not at all), stamped."""
    kube, _ = module_versions()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.monotonic()
    _run_go([go, "build", "-trimpath", "-ldflags", ldflags(kube), "-o", str(tmp) + "/", *packages],
            what, _go_env(), GO_MODULE, progress, expected_s=expected_s)
    for name in names:
        if not (tmp / name).exists():
            raise InfrastructureError(f"{what} wrote no {name}", hint=f"see {tmp}")
    (tmp / STAMP).write_text(json.dumps({"built_s": round(time.monotonic() - t0, 1), "at": time.time()}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    prefix = out.name.rsplit("-", 1)[0] + "-"
    for older in out.parent.glob(prefix + "*"):  # builds of an earlier module: never used again
        if older != out and older.is_dir() and not older.name.endswith(".partial"):
            shutil.rmtree(older, ignore_errors=True)
    progress(f"{what}: done in {time.monotonic() - t0:.0f} s (cached in {out})")


def _kuberay(go: str, progress: Progress) -> tuple[str, Path, Path, str]:
    """(version, operator binary, module source dir, note) of the first KubeRay release the proxy serves."""
    refusals = []
    for version in KUBERAY_VERSIONS:
        out = cache_root() / f"kuberay-{version}"
        binary = out / "ray-operator"
        source = _module_dir(go, version)
        if isinstance(source, str):
            refusals.append(f"{version}: {source}")
            continue
        if not binary.exists():
            progress(f"building the KubeRay operator {version} (go install {KUBERAY_MODULE}@{version})")
            env = {**_go_env(), "GOBIN": str(out)}
            _run_go([go, "install", "-trimpath", "-ldflags", "-s -w", f"{KUBERAY_MODULE}@{version}"],
                    f"building KubeRay {version}", env, None, progress, expected_s=1.5 * 60)
        note = ""
        if version != KUBERAY_VERSIONS[0]:
            note = (f"KubeRay {KUBERAY_VERSIONS[0]} cannot be had from the Go module proxy ({refusals[0]}); "
                    f"running {version}, the newest release it serves")
            progress(note)
        return version, binary, source, note
    raise EnvironmentProblem(f"the Go module proxy serves none of KubeRay {', '.join(KUBERAY_VERSIONS)}",
                             evidence="; ".join(refusals), hint="check GOPROXY and the network")


def _module_dir(go: str, version: str) -> Path | str:
    """The module's source directory (downloaded if needed), or the proxy's refusal in one line."""
    proc = subprocess.run([go, "mod", "download", "-json", f"{KUBERAY_MODULE}@{version}"], capture_output=True,
                          text=True, env=_go_env(), timeout=600)
    try:
        info = json.loads(proc.stdout or "{}")
    except ValueError:
        info = {}
    if info.get("Dir") and Path(info["Dir"]).is_dir():
        return Path(info["Dir"])
    error = info.get("Error") or (proc.stderr or "").strip() or "no answer"
    return error.splitlines()[-1].split("server response: ")[-1].strip()


def ensure_binaries(progress: Progress = _quiet) -> Binaries:
    """Build what is missing (once per machine; concurrent callers wait for one build) and return the paths."""
    go = go_binary()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    kube, etcd = module_versions()
    module = [GO_MODULE / "go.mod", GO_MODULE / "go.sum"]
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = root / f"kubernetes-{_digest(go, module)}"
        if not (out / STAMP).exists():
            _build(go, out, list(TOOLS), list(BINARIES.values()),
                   f"building Kubernetes {kube} (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) "
                   f"and etcd {etcd} from the Go module proxy", progress, expected_s=5.5 * 60)
        server = root / f"nodeserver-{_digest(go, module + sorted((GO_MODULE / 'nodeserver').glob('*.go')))}"
        if not (server / STAMP).exists():
            _build(go, server, ["./nodeserver"], ["nodeserver"], "building the nodeserver", progress,
                   expected_s=60)
        version, operator, source, note = _kuberay(go, progress)
    return Binaries(dir=out, kubernetes_version=kube, etcd_version=etcd, kuberay_version=version,
                    kuberay_operator=operator, kuberay_source=source, kuberay_note=note,
                    nodeserver=server / "nodeserver")
