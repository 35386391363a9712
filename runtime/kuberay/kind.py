"""kind, helm and docker, driven through their CLIs (each missing tool gets one line naming it),
and what only a kind cluster needs: its creation with a marker, the operator, preloaded images.

``kind up`` creates the cluster from ``kind-config.yaml`` (or reuses an existing
one), installs the KubeRay operator with its helm chart unless present, can
preload images, and applies the manifests.  ``kind down`` deletes a cluster
only if this tool created it: creation leaves a labelled ConfigMap in
``kube-system`` as the proof.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from serve_chaos.runtime.errors import EnvironmentProblem, InfrastructureError

KUBERAY_CHART = "kuberay/kuberay-operator"
KUBERAY_CHART_VERSION = "1.7.0"
KUBERAY_REPO = "https://ray-project.github.io/kuberay-helm/"
OPERATOR_NAMESPACE = "kuberay-system"
#: Chaos Mesh, the engine of the gray faults (../shared/chaos-mesh/README.md: chart 2.8.3 in
#: namespace chaos-mesh; on kind the daemon talks to containerd at its socket).
CHAOS_MESH_CHART = "chaos-mesh/chaos-mesh"
CHAOS_MESH_CHART_VERSION = "2.8.3"
CHAOS_MESH_REPO = "https://charts.chaos-mesh.org"
CHAOS_MESH_NAMESPACE = "chaos-mesh"
CREATED_MARKER = "serve-chaos-created-this-cluster"
#: What serve-chaos installed on a cluster (helm releases), so `kind down` removes only that.
INSTALLED_MARKER = "serve-chaos-installed"
#: The node image KubeRay v1.7.0's own CI runs on (ray-facts.md), for kind v0.31.
KIND_NODE_IMAGE = "kindest/node:v1.35.0"
INSTALL_HINTS = {
    "kind": "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "helm": "install helm: https://helm.sh/docs/intro/install/",
    "docker": "install Docker and start its daemon: https://docs.docker.com/engine/install/",
    "kubectl": "install kubectl: https://kubernetes.io/docs/tasks/tools/",
}
#: Package data, so that an installed serve-chaos (the GitHub Action's) has it; the repository's root
#: ``kind-config.yaml`` is a link to it.
DEFAULT_KIND_CONFIG = Path(__file__).resolve().parent / "kind-config.yaml"


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


def create(name: str, config: Path = DEFAULT_KIND_CONFIG, image: str | None = KIND_NODE_IMAGE) -> None:
    cmd = ["kind", "create", "cluster", "--name", name, "--config", str(config), "--wait", "180s"]
    if image:
        cmd += ["--image", image]
    run(cmd, timeout_s=900)


def config_for_workers(base: Path, workers: int) -> str:
    """``base`` (a kind config) with enough worker-role nodes for ``workers`` Ray workers, one
    per node, plus a spare for a lost one's replacement (the workers' anti-affinity)."""
    import yaml

    from serve_chaos.runtime.kuberay.manifests import ROLE_LABEL

    config = yaml.safe_load(base.read_text())
    nodes = config["nodes"]
    have = [n for n in nodes if (n.get("labels") or {}).get(ROLE_LABEL) == "worker"]
    for _ in range(workers + 1 - len(have)):
        nodes.append({"role": "worker", "labels": {ROLE_LABEL: "worker"}})
    return yaml.safe_dump(config, sort_keys=False)


def spare_problem(worker_nodes: int, workers: int) -> str | None:
    """Why a cluster with ``worker_nodes`` worker-role nodes cannot place ``workers`` Ray workers one
    per node with a spare, or None."""
    if worker_nodes >= workers + 1:
        return None
    return (f"{worker_nodes} worker node(s) for {workers} Ray workers: node scenarios need one more, a spare for "
            "the lost worker's replacement")


def delete(name: str) -> None:
    run(["kind", "delete", "cluster", "--name", name], timeout_s=300)


def host_platform() -> str:
    """``os/arch`` of the Docker daemon, e.g. ``linux/amd64``."""
    return run(["docker", "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"], timeout_s=30).stdout.strip()


def image_present(image: str) -> bool:
    """Whether the Docker daemon holds ``image`` already (built here, or pulled before)."""
    return run(["docker", "image", "inspect", "--format", "{{.Id}}", image], timeout_s=60, check=False).returncode == 0


def load_images(name: str, images: dict[str, list[str]]) -> None:
    """Load each image onto the kind nodes listed for it (not onto nodes that never run it).

    ``kind load docker-image`` fails for multi-platform images under Docker's
    containerd image store (kubernetes-sigs/kind#3795): it saves the whole index
    while only the host's platform was pulled.  So: pull (unless the image is here
    already), save the host platform only, and load that archive.
    """
    platform = host_platform()
    for image, nodes in images.items():
        if not nodes:
            continue
        if not image_present(image):  # a user's image may exist only here: never pull what is present
            run(["docker", "pull", "--platform", platform, image], timeout_s=1800)
        with tempfile.TemporaryDirectory(prefix="serve-chaos-image-") as tmp:
            archive = Path(tmp) / "image.tar"
            run(["docker", "save", "--platform", platform, "-o", str(archive), image], timeout_s=1800)
            run(["kind", "load", "image-archive", str(archive), "--name", name, "--nodes", ",".join(nodes)],
                timeout_s=1800)


def install_operator(context: str, node_selector: dict[str, str] | None = None) -> None:
    """The KubeRay operator from its helm chart, placed by ``node_selector`` (chart value ``nodeSelector``)."""
    run(["helm", "repo", "add", "kuberay", KUBERAY_REPO, "--force-update"], timeout_s=120)
    cmd = ["helm", "upgrade", "--install", "kuberay-operator", KUBERAY_CHART, "--version", KUBERAY_CHART_VERSION,
           "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--kube-context", context,
           "--wait", "--timeout", "300s"]
    for key, value in (node_selector or {}).items():
        cmd += ["--set-string", f"nodeSelector.{key}={value}"]
    run(cmd, timeout_s=420)


def install_chaos_mesh(context: str, node_selector: dict[str, str] | None = None) -> None:
    """Chaos Mesh 2.8.3 from its helm chart: the daemon on every schedulable node (it injects
    there), the controller next to the operator (``node_selector``), one controller replica (no
    leader election needed on kind), no dashboard or DNS server (nothing here uses them)."""
    run(["helm", "repo", "add", "chaos-mesh", CHAOS_MESH_REPO, "--force-update"], timeout_s=120)
    cmd = ["helm", "upgrade", "--install", "chaos-mesh", CHAOS_MESH_CHART, "--version", CHAOS_MESH_CHART_VERSION,
           "--namespace", CHAOS_MESH_NAMESPACE, "--create-namespace", "--kube-context", context,
           "--set", "chaosDaemon.runtime=containerd",
           "--set", "chaosDaemon.socketPath=/run/containerd/containerd.sock",
           "--set", "controllerManager.replicaCount=1", "--set", "dashboard.create=false",
           "--set", "dnsServer.create=false", "--wait", "--timeout", "600s"]
    for key, value in (node_selector or {}).items():
        escaped = key.replace(".", "\\.")  # helm --set paths split on dots
        cmd += ["--set-string", f"controllerManager.nodeSelector.{escaped}={value}"]
    run(cmd, timeout_s=720)


#: Helm releases serve-chaos may install: name -> namespace.
RELEASES = {"kuberay-operator": OPERATOR_NAMESPACE, "chaos-mesh": CHAOS_MESH_NAMESPACE}


def uninstall(context: str, release: str) -> None:
    run(["helm", "uninstall", release, "--namespace", RELEASES[release], "--kube-context", context, "--wait",
         "--timeout", "300s"], timeout_s=420, check=False)


# ---------------------------------------------------------------------- markers and checks over the API
def mark_created(core: Any) -> None:
    """Leave the proof that serve-chaos created this cluster (``kind down`` requires it)."""
    from serve_chaos.runtime.kuberay.manifests import MANAGED_BY

    core.create_namespaced_config_map("kube-system", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CREATED_MARKER, "labels": dict(MANAGED_BY)},
        "data": {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}})


def created_by_us(core: Any) -> bool:
    from serve_chaos.runtime.kuberay import safety

    try:
        marker = core.read_namespaced_config_map(CREATED_MARKER, "kube-system")
    except Exception:  # noqa: BLE001 - absent (404) or unreachable: not provably ours
        return False
    return safety.is_ours(marker)


def installed_releases(core: Any) -> list[str]:
    """The helm releases serve-chaos installed on this cluster (its marker in kube-system)."""
    from serve_chaos.runtime.kuberay import safety

    try:
        marker = core.read_namespaced_config_map(INSTALLED_MARKER, "kube-system")
    except Exception:  # noqa: BLE001 - absent: nothing of ours
        return []
    if not safety.is_ours(marker):
        return []
    return [r for r in ((marker.data or {}).get("releases") or "").split(",") if r in RELEASES]


def record_installed(core: Any, release: str) -> None:
    """Add ``release`` to the marker of what serve-chaos installed (created on first use)."""
    from serve_chaos.runtime.kuberay.manifests import MANAGED_BY

    releases = sorted(set(installed_releases(core)) | {release})
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": INSTALLED_MARKER, "labels": dict(MANAGED_BY)}, "data": {"releases": ",".join(releases)}}
    try:
        core.read_namespaced_config_map(INSTALLED_MARKER, "kube-system")
    except Exception:  # noqa: BLE001 - absent: create it
        core.create_namespaced_config_map("kube-system", body)
        return
    core.replace_namespaced_config_map(INSTALLED_MARKER, "kube-system", body)


def forget_installed(core: Any) -> None:
    try:
        core.delete_namespaced_config_map(INSTALLED_MARKER, "kube-system")
    except Exception:  # noqa: BLE001 - gone already
        pass


def _available(deployment: Any) -> bool:
    status = deployment.status
    return bool(status and (status.available_replicas or 0) >= 1)


def chaos_mesh_installed(api_client: Any) -> bool:
    """Chaos Mesh runs: its controller Deployment is available and its daemon runs on every
    schedulable node.  Not judged by its CRDs: Helm never deletes CRDs on uninstall
    (helm.sh "Helm does not ... delete CRDs"), so they outlive the release."""
    from kubernetes import client

    apps = client.AppsV1Api(api_client)
    try:
        controllers = apps.list_namespaced_deployment(CHAOS_MESH_NAMESPACE,
                                                      label_selector="app.kubernetes.io/component=controller-manager")
        daemons = apps.list_namespaced_daemon_set(CHAOS_MESH_NAMESPACE,
                                                  label_selector="app.kubernetes.io/component=chaos-daemon")
    except Exception:  # noqa: BLE001 - no namespace, no access: not installed as far as we can tell
        return False
    daemon_ready = any((d.status.number_ready or 0) >= 1 and (d.status.number_ready or 0) >=
                       (d.status.desired_number_scheduled or 0) for d in daemons.items if d.status)
    return any(_available(d) for d in controllers.items) and daemon_ready


def kuberay_installed(api_client: Any) -> bool:
    """The KubeRay operator runs: a Deployment the chart labels ``app.kubernetes.io/name=kuberay-operator``
    is available in some namespace.  Not judged by the CRDs, which outlive ``helm uninstall``."""
    from kubernetes import client

    try:
        found = client.AppsV1Api(api_client).list_deployment_for_all_namespaces(
            label_selector="app.kubernetes.io/name=kuberay-operator")
    except Exception:  # noqa: BLE001 - unreachable or not allowed: not provably installed
        return False
    return any(_available(d) for d in found.items)


def nodes_with_roles(core: Any, roles: tuple[str, ...]) -> list[str]:
    """Names of the nodes labelled ``serve-chaos/role`` with one of ``roles``."""
    from serve_chaos.runtime.kuberay.manifests import ROLE_LABEL

    return sorted(n.metadata.name for n in core.list_node().items
                  if (n.metadata.labels or {}).get(ROLE_LABEL) in roles)


# ---------------------------------------------------------------------- node faults (kind nodes are containers)
def node_network(node: str, connect: bool, network: str = "kind") -> None:
    """Cut or restore a kind node's network: peers then see silence, not refusals."""
    action = "connect" if connect else "disconnect"
    run(["docker", "network", action, network, node], timeout_s=60, check=connect is False)


def node_kill(node: str) -> None:
    run(["docker", "kill", node], timeout_s=60)


def node_start(node: str) -> None:
    run(["docker", "start", node], timeout_s=120)
