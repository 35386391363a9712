"""A real etcd and kube-apiserver (the k8s target's own binaries, ``runtime/k8s/build.py``) on loopback,
for self-tests of what only the real API server settles: optimistic concurrency, server-side
apply, finalizers and namespace deletion.  Nothing else runs (no controllers, no nodes), so it
needs neither root nor a bridge and starts in a few seconds.

Used where the k8s target's binaries are built (``serve-chaos k8s build``; ``.ci/run`` builds them
before the self-tests): elsewhere these tests are skipped *with that reason*, never passed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from serve_chaos.runtime.k8s.controlplane import ControlPlane
from serve_chaos.runtime.ports import free_port
from serve_chaos.runtime.k8s.layout import K8sLayout


def built_binaries():
    """The cached build, or None when it is not built here (nothing is built by a test)."""
    from serve_chaos.runtime.k8s import build

    try:
        go = build.go_binary()
    except Exception:  # noqa: BLE001 - no Go: not built
        return None
    module = [build.GO_MODULE / "go.mod", build.GO_MODULE / "go.sum"]
    out = build.cache_root() / f"kubernetes-{build._digest(go, module)}"
    if not (out / build.STAMP).exists():
        return None
    kube, etcd = build.module_versions()
    return build.Binaries(dir=out, kubernetes_version=kube, etcd_version=etcd, kuberay_version="",
                          kuberay_operator=Path("/nonexistent"), kuberay_source=Path("/nonexistent"))


@dataclass
class RealApiServer:
    kubeconfig: str
    url: str
    processes: list[subprocess.Popen]
    root: Path

    def close(self) -> None:
        for proc in self.processes:
            proc.kill()
        for proc in self.processes:
            proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> RealApiServer:
    binaries = built_binaries()
    if binaries is None:
        pytest.skip("the k8s target's binaries are not built here: `serve-chaos k8s build` builds them (.ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="sc-apiserver-"))
    layout = K8sLayout(root, "aaaaaa", "127.0.0.0/24", api_port=free_port())
    layout.root.mkdir(parents=True)
    cp = ControlPlane.plan(layout, binaries)
    cp.prepare([])
    procs = []
    for comp in (cp.etcd(), cp.apiserver()):
        log = open(layout.root / f"{comp.name}.log", "wb")
        procs.append(subprocess.Popen(comp.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    server = RealApiServer(str(layout.admin_kubeconfig), layout.api_url, procs, root)
    pki = layout.pki
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{layout.api_url}/readyz", cert=(str(pki / "admin.crt"), str(pki / "admin.key")),
                            verify=str(pki / "ca.crt"), timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            logs = (layout.root / "kube-apiserver.log").read_text()[-2000:]
            server.close()
            raise RuntimeError(f"the API server did not come up:\n{logs}")
        time.sleep(0.3)


def context_of(kubeconfig: str) -> str:
    return yaml.safe_load(Path(kubeconfig).read_text())["current-context"]
