"""kind, helm and docker, driven through their CLIs (each missing tool gets one line naming it).

``kind up`` creates the cluster from ``kind-config.yaml`` (or reuses an existing
one), installs the KubeRay operator with its helm chart unless present, can
preload images, and applies the manifests.  ``kind down`` deletes a cluster
only if this tool created it: creation leaves a labelled ConfigMap in
``kube-system`` as the proof.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from runtime.errors import EnvironmentProblem, InfrastructureError

KUBERAY_CHART = "kuberay/kuberay-operator"
KUBERAY_CHART_VERSION = "1.7.0"
KUBERAY_REPO = "https://ray-project.github.io/kuberay-helm/"
OPERATOR_NAMESPACE = "kuberay-system"
CREATED_MARKER = "serve-chaos-created-this-cluster"
INSTALL_HINTS = {
    "kind": "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "helm": "install helm: https://helm.sh/docs/intro/install/",
    "docker": "install Docker and start its daemon: https://docs.docker.com/engine/install/",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
}
DEFAULT_KIND_CONFIG = Path(__file__).resolve().parents[2] / "kind-config.yaml"


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise EnvironmentProblem(f"{tool} is not installed", hint=INSTALL_HINTS.get(tool, f"install {tool}"))
    return path


def run(cmd: list[str], timeout_s: float = 600.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    require(cmd[0])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"{' '.join(cmd[:3])} timed out after {timeout_s:.0f} s") from None
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InfrastructureError(f"`{' '.join(cmd[:4])}` failed (exit {proc.returncode})", evidence=tail[0])
    return proc


def docker_daemon_up() -> None:
    require("docker")
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise EnvironmentProblem("the Docker daemon is not reachable (the docker client is installed)",
                                 hint=INSTALL_HINTS["docker"])


def clusters() -> list[str]:
    return [line.strip() for line in run(["kind", "get", "clusters"]).stdout.splitlines() if line.strip()]


def create(name: str, config: Path = DEFAULT_KIND_CONFIG, image: str | None = None) -> None:
    cmd = ["kind", "create", "cluster", "--name", name, "--config", str(config), "--wait", "180s"]
    if image:
        cmd += ["--image", image]
    run(cmd, timeout_s=900)


def delete(name: str) -> None:
    run(["kind", "delete", "cluster", "--name", name], timeout_s=300)


def load_images(name: str, images: list[str]) -> None:
    for image in images:
        run(["docker", "pull", image], timeout_s=1800, check=False)
        run(["kind", "load", "docker-image", image, "--name", name], timeout_s=1800)


def install_operator(context: str) -> None:
    run(["helm", "repo", "add", "kuberay", KUBERAY_REPO, "--force-update"], timeout_s=120)
    run(["helm", "upgrade", "--install", "kuberay-operator", KUBERAY_CHART, "--version", KUBERAY_CHART_VERSION,
         "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--kube-context", context,
         "--wait", "--timeout", "300s"], timeout_s=420)


# ---------------------------------------------------------------------- node faults (kind nodes are containers)
def node_network(node: str, connect: bool, network: str = "kind") -> None:
    """Cut or restore a kind node's network: peers then see silence, not refusals."""
    action = "connect" if connect else "disconnect"
    run(["docker", "network", action, network, node], timeout_s=60, check=connect is False)


def node_kill(node: str) -> None:
    run(["docker", "kill", node], timeout_s=60)


def node_start(node: str) -> None:
    run(["docker", "start", node], timeout_s=120)
