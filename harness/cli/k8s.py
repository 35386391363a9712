"""``serve-chaos k8s up | down | env``: the k8s target -- a real Kubernetes control plane and the real
KubeRay operator on this machine (``runtime/k8s``).

``k8s up`` builds the binaries once (cached), starts etcd, the API server, the controller
manager, the scheduler, the nodes (a control plane, a node for the Ray head, one per Ray worker
and a spare, as ``kind up`` makes them) and the KubeRay operator, then applies the RayService and
waits until it serves -- what ``kind up`` does on kind.  It prints the kubeconfig and kubectl to
use.  ``k8s down`` stops all of it and leaves nothing running or mounted.
"""

from __future__ import annotations

from typing import Optional

import typer

from serve_chaos.harness.cli.common import AppDir, AppFile, app_options, console

k8s_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                      help="The k8s target: a real control plane and the KubeRay operator on this machine.")


def register(app: typer.Typer) -> None:
    app.add_typer(k8s_app, name="k8s")


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False)


def _print_access() -> None:
    from serve_chaos.runtime.k8s import target

    running = target.find()
    if running is None:
        return
    console.print(f"kubeconfig: {running.kubeconfig}", markup=False, highlight=False)
    console.print(f"kubectl:    {running.kubectl}", markup=False, highlight=False)
    console.print(f"  e.g. {running.kubectl} --kubeconfig {running.kubeconfig} get rayservice,raycluster,pods -A",
                  markup=False, highlight=False)
    console.print(f"Serve on http://{running.control_plane_ip}:30800, dashboard on "
                  f"http://{running.control_plane_ip}:30826", markup=False, highlight=False)


@k8s_app.command("up")
def k8s_up(
    workers: Optional[int] = typer.Option(None, help="Ray worker pods (default 2); the cluster gets a node per "
                                                     "worker plus a spare"),
    gcs_ft: Optional[bool] = typer.Option(None, "--gcs-ft/--no-gcs-ft", help="GCS fault tolerance (default on: "
                                                                            "gcsFaultToleranceOptions)"),
    node_labels: bool = typer.Option(True, "--node-labels/--no-node-labels",
                                     help="give the nodes kind-config.yaml's role labels (off: nodes as any cluster "
                                          "has them)"),
    namespace: str = typer.Option("serve-chaos", help="namespace for our objects"),
    ray_version: Optional[str] = typer.Option(None, "--ray-version", help="Ray the pods run (default 2.60.0)"),
    app: AppFile = None,
    app_dir: AppDir = None,
) -> None:
    """Build (once) and start the control plane, the nodes and the KubeRay operator, then the RayService."""
    from serve_chaos.harness.targets import TargetOptions, bring_up, build_cluster

    spec, _ = app_options(app, app_dir, None)
    options = TargetOptions(target="k8s", namespace=namespace, workers=workers, gcs_ft=gcs_ft, app=spec,
                            ray_version=ray_version, node_labels=node_labels)
    cluster = build_cluster(options, progress=_say)
    bring_up(cluster, options, _say)
    console.print(f"ready: RayService {namespace}/serve-chaos serves")
    _print_access()


@k8s_app.command("down")
def k8s_down() -> None:
    """Stop the control plane, the nodes and everything they run; remove what a killed run left."""
    from serve_chaos.runtime.k8s import target

    running = target.find()
    if running is None:
        cleaned = target.reap()
        for line in cleaned:
            console.print(f"removed leftovers of {line}", markup=False)
        console.print("no k8s-target cluster is running")
        return
    with console.status("stopping the k8s-target cluster ..."):
        target.stop(running)
    console.print(f"k8s-target cluster {running.layout.label} is down")


@k8s_app.command("env")
def k8s_env() -> None:
    """Print the kubeconfig and kubectl of the running cluster."""
    from serve_chaos.runtime.errors import ServeChaosError

    from serve_chaos.runtime.k8s import target

    if target.find() is None:
        raise ServeChaosError("no k8s-target cluster is running", hint="`serve-chaos k8s up`")
    _print_access()


@k8s_app.command("build")
def k8s_build(
    if_possible: bool = typer.Option(False, "--if-possible",
                                     help="where Go or the Go module proxy is missing, say so in one line and exit 0 "
                                          "(the k8s target's tests then skip with that reason)"),
) -> None:
    """Build (or find in the cache) Kubernetes, etcd, the nodeserver and the KubeRay operator from their Go
    modules, and say where they are."""
    import time

    from serve_chaos.runtime.errors import EnvironmentProblem
    from serve_chaos.runtime.k8s.build import ensure_binaries

    t0 = time.monotonic()
    try:
        binaries = ensure_binaries(_say)
    except EnvironmentProblem as err:
        if not if_possible:
            raise
        console.print(f"the k8s target cannot be built here: {err.one_line()}", markup=False, highlight=False)
        return
    console.print(f"ready in {time.monotonic() - t0:.0f} s: Kubernetes {binaries.kubernetes_version}, etcd "
                  f"{binaries.etcd_version}, KubeRay operator {binaries.kuberay_version} in {binaries.dir.parent}",
                  markup=False, highlight=False)
