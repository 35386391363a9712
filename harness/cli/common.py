"""What every command shares: the consoles, the target options and how to reach a cluster."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from serve_chaos.harness.targets import TargetOptions, build_cluster
from serve_chaos.runtime.cluster import Cluster
from serve_chaos.runtime.ray_versions import DEFAULT_RAY_VERSION, SUPPORTED_RANGE

# Rich assumes 80 columns when output is not a terminal, which truncates the verdict
# table in CI logs and files; a log has no width, so give it room unless COLUMNS says.
_LOG_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
console = Console(width=_LOG_WIDTH)
err_console = Console(stderr=True, width=_LOG_WIDTH)

Target = Annotated[str, typer.Option("--target", help="local (embedded cluster, default), kind (KubeRay on kind) "
                                                     "or k8s (a real control plane and KubeRay on this machine)")]
KubeContext = Annotated[Optional[str], typer.Option("--kube-context", help="kind target: kubeconfig context")]
AllowContext = Annotated[list[str], typer.Option("--allow-context",
                                                 help="kind target: also allow this non-kind-* context")]
Namespace = Annotated[str, typer.Option("--namespace", help="kind target: namespace of our objects")]
NodeLossHook = Annotated[Optional[str], typer.Option("--node-loss-hook",
                                                     help="kube target: command that removes node {node}")]
ServeUrl = Annotated[Optional[str], typer.Option("--serve-url", help="kube target off kind: where the Serve "
                                                                  "Service is reachable (http://host:port)")]
DashboardUrl = Annotated[Optional[str], typer.Option("--dashboard-url", help="kube target off kind: the Ray dashboard "
                                                                          "(default: a port-forward to the head)")]
ConfigFile = Annotated[Optional[str], typer.Option("--config", help="JSON file with local cluster settings")]
AppFile = Annotated[Optional[str], typer.Option("--app", help="your Serve config (what `serve build` writes); "
                                                              "default: the bundled SleepyPid")]
AppDir = Annotated[Optional[str], typer.Option("--app-dir", help="directory with the code --app imports (on the "
                                                                 "pods' import path; a ConfigMap on kind)")]
Image = Annotated[Optional[str], typer.Option("--image", help="kind: an image with your code and the Ray of "
                                                              "--ray-version, for every Ray pod (instead of --app-dir)")]
RayVersion = Annotated[Optional[str], typer.Option(
    "--ray-version", help=f"Ray release the cluster runs ({SUPPORTED_RANGE}; default {DEFAULT_RAY_VERSION}, or "
                          "whatever runs already); local: made once in a cache, kind: rayproject/ray:X.Y.Z")]
GcsBackend = Annotated[Optional[str], typer.Option(
    "--gcs-backend", help="local: where GCS fault tolerance keeps its tables: redis (default) | rocksdb (the head's "
                          "own volume, KubeRay v1.7.0's embedded backend)")]
Ingress = Annotated[Optional[str], typer.Option(
    "--ingress", help="local: what takes HTTP on each node: proxy (Serve's Python proxy, default) | haproxy "
                      "(Serve's own HAProxy, RAY_SERVE_ENABLE_HA_PROXY=1; netns)")]
RequestsFile = Annotated[Optional[str], typer.Option("--requests", help="YAML list of requests (method, path, "
                                                                        "headers, body, expect_status, weight)")]
Locustfile = Annotated[Optional[str], typer.Option("--locustfile", help="your Locust HttpUser whose tasks make "
                                                                        "the requests (instead of --requests)")]
DeploymentRef = Annotated[Optional[str], typer.Option("--deployment", help="app/deployment that replica, proxy, "
                                                                           "pod and node faults aim at")]
HealthToggle = Annotated[bool, typer.Option("--health-toggle", help="your app answers POST <route_prefix>"
                                                                    "/-/chaos/health?mode=raise|hang|ok")]


def target_options(target: str, config: Optional[str] = None, kube_context: Optional[str] = None,
                   allow_context: Optional[list[str]] = None, namespace: str = "serve-chaos",
                   node_loss_hook: Optional[str] = None, **shape: Any) -> TargetOptions:
    return TargetOptions(target=target, config_file=config, kube_context=kube_context,
                         allowed_contexts=tuple(allow_context or ()), namespace=namespace,
                         node_loss_hook=node_loss_hook, **shape)


def ray_progress(status: Any) -> Any:
    """A progress callback for making a Ray environment under a rich ``status``: pip's steps
    turn the spinner, the others are printed so the log keeps them."""
    from serve_chaos.runtime.local.rayenv import pip_step

    def say(line: str) -> None:
        if pip_step(line):
            status.update(f"installing Ray: {line}")
        else:
            console.print(line, markup=False, highlight=False)

    return say


def app_options(app: Optional[str], app_dir: Optional[str], image: Optional[str], requests: Optional[str] = None,
                locustfile: Optional[str] = None, deployment: Optional[str] = None,
                health_toggle: bool = False) -> Any:
    """``(AppSpec | None, AppUnderTest)`` from the app options (one-line errors)."""
    from serve_chaos.harness.app.options import app_spec, app_under_test

    spec = app_spec(app, app_dir, image, requests, health_toggle)
    return spec, app_under_test(spec, deployment, requests, locustfile)


def attached(options: TargetOptions) -> Cluster | None:
    """The running cluster of this target, or None (nothing is created)."""
    cluster = build_cluster(options)
    return cluster if cluster.attach() else None


def snapshot(cluster: Cluster) -> Any:
    from serve_chaos.harness.observe.probe import Prober

    prober = Prober(cluster.endpoints().dashboard, lambda: [p.to_dict() for p in cluster.pods()])
    try:
        return prober.snapshot()
    finally:
        prober.stop()
