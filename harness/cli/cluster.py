"""``serve-chaos up | down | status``: the cluster under test, on either target."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.table import Table

from serve_chaos.harness.cli.common import (AllowContext, AppDir, AppFile, ConfigFile, DashboardUrl, GcsBackend, Image, Ingress,
                                KubeContext, Namespace,
                                NodeLossHook, RayVersion, ServeUrl, Target, app_options, attached, console, ray_progress,
                                snapshot, target_options)
from serve_chaos.harness.targets import bring_up, build_cluster, check_ray_options_fit, check_ray_version_fits
from serve_chaos.runtime.cluster import Cluster
from serve_chaos.runtime.errors import ConfigError, ServeChaosError


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)


def up(
    config: ConfigFile = None,
    workers: Optional[int] = typer.Option(None, help="worker pods (default 2)"),
    gcs_ft: Optional[bool] = typer.Option(None, "--gcs-ft/--no-gcs-ft", help="GCS fault tolerance (default on)"),
    isolation: Optional[str] = typer.Option(None, help="local: auto | netns (root) | loopback"),
    front_port: Optional[int] = typer.Option(None, help="local: front door port on 127.0.0.1 (default 18000)"),
    target: Target = "local",
    kube_context: KubeContext = None,
    allow_context: AllowContext = [],
    namespace: Namespace = "serve-chaos",
    serve_url: ServeUrl = None,
    dashboard_url: DashboardUrl = None,
    app: AppFile = None,
    app_dir: AppDir = None,
    image: Image = None,
    ray_version: RayVersion = None,
    gcs_backend: GcsBackend = None,
    ingress: Ingress = None,
) -> None:
    """Start the cluster under test in the background (it keeps running until `down`).

    On kind, this applies the RayService to an existing cluster with KubeRay
    (`serve-chaos kind up` creates one).  `--app`/`--app-dir`/`--image` deploy your app."""
    from serve_chaos.harness.targets import check_app_fits

    local = {k: v for k, v in {"isolation": isolation, "front_port": front_port}.items() if v is not None}
    spec, _ = app_options(app, app_dir, image)
    options = target_options(target, config, kube_context, allow_context, namespace,
                             workers=workers, gcs_ft=gcs_ft, local_changes=local, app=spec, ray_version=ray_version,
                             serve_url=serve_url, dashboard_url=dashboard_url, gcs_backend=gcs_backend,
                             ingress=ingress)
    cluster = build_cluster(options)
    if cluster.attach():
        check_app_fits(cluster, options.app_spec)
        check_ray_version_fits(cluster, options.ray_version)
        check_ray_options_fit(cluster, options)
        asked = {k: v for k, v in {"workers": workers, "gcs_ft": gcs_ft, **local}.items() if v is not None}
        differs = _differs(cluster, asked)
        if differs:
            raise ConfigError(f"a cluster is already up ({cluster.label}) with {differs}; options of `up` apply only "
                              "to a new cluster", hint="`serve-chaos down` first, or leave those options out")
        console.print(f"a cluster is already up ({cluster.label}); `serve-chaos down` stops it")
        print_status(cluster)
        return
    with console.status("bringing the cluster up ...") as spinner:
        bring_up(cluster, options, ray_progress(spinner))
    console.print(f"cluster {cluster.label} is up")
    print_status(cluster)


def _differs(cluster: Cluster, asked: dict[str, Any]) -> str:
    """How the running cluster differs from what ``up`` was asked for ("" when it does not)."""
    settings = cluster.settings()
    have = {"workers": settings.get("workers"), "gcs_ft": bool(settings.get("gcs_ft")),
            "isolation": settings.get("isolation")}
    have["front_port"] = int(cluster.status().front_door.rsplit(":", 1)[1])
    wrong = [f"{key}={have[key]!r} (asked {value!r})" for key, value in asked.items()
             if key in have and value != have[key] and not (key == "isolation" and value == "auto")]
    return ", ".join(wrong)


def down(
    force: bool = typer.Option(False, "--force", help="take the cluster down even while a run holds it "
                                                     "(that run ends as interrupted)"),
    target: Target = "local",
    kube_context: KubeContext = None,
    allow_context: AllowContext = [],
    namespace: Namespace = "serve-chaos",
) -> None:
    """Remove the cluster under test and everything it left (on kind: our namespace's objects)."""
    options = target_options(target, None, kube_context, allow_context, namespace)
    cluster = attached(options)
    if cluster is not None:
        label = cluster.label
        with console.status("tearing down ..."):
            cluster.down(force=force)
        console.print(f"cluster {label} is down")
        return
    if target == "local":
        from serve_chaos.runtime.local import leftovers
        from serve_chaos.runtime.local.config import DEFAULT_HOME

        cleaned = leftovers.reap_all(DEFAULT_HOME)
        for line in cleaned:
            console.print(f"removed leftovers of {line}")
        if cleaned:
            return
    console.print("no cluster is up")


def status(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    target: Target = "local",
    kube_context: KubeContext = None,
    allow_context: AllowContext = [],
    namespace: Namespace = "serve-chaos",
    node_loss_hook: NodeLossHook = None,
    serve_url: ServeUrl = None,
    dashboard_url: DashboardUrl = None,
) -> None:
    """Pods, IPs, replicas per pod, proxies, controller and GCS FT of the running cluster."""
    cluster = attached(target_options(target, None, kube_context, allow_context, namespace, node_loss_hook,
                                           serve_url=serve_url, dashboard_url=dashboard_url))
    if cluster is None:
        raise ServeChaosError("no serve-chaos cluster is up", hint="start one with `serve-chaos up`")
    if as_json:
        console.print_json(json.dumps({"cluster": cluster.status().to_dict(), "serve": snapshot(cluster).to_dict()},
                                      default=str))
        return
    print_status(cluster)


IN_EFFECT = ("locked_by", "faults_in_effect", "load_generators")


def print_in_effect(extra: dict[str, Any]) -> None:
    """Who holds the cluster and what is broken on purpose right now, as a table."""
    rows = [("run lock", extra.get("locked_by") or "free")]
    rows += [("fault in effect", f) for f in extra.get("faults_in_effect") or []] or [("fault in effect", "none")]
    rows += [("load generator", x) for x in extra.get("load_generators") or []]
    table = Table(title="in effect")
    table.add_column("what")
    table.add_column("detail")
    for what, detail in rows:
        table.add_row(what, str(detail))
    console.print(table)


def print_status(cluster: Cluster) -> None:
    state = cluster.status()
    snap = snapshot(cluster)
    by_pod: dict[str, dict[str, list[Any]]] = {}
    for actor in snap.actors:
        entry = by_pod.setdefault(actor.get("pod") or "?", {"replica": [], "proxy": [], "controller": []})
        entry[actor["role"]].append(actor)
    table = Table(title=f"serve-chaos {state.target} cluster {state.label} ({state.mode}, "
                        f"GCS FT {'on' if state.gcs_ft else 'off'})")
    for col in ("pod", "role", "node", "ip", "phase", "ready", "restarts", "replicas (pid:state)", "proxy",
                "controller"):
        table.add_column(col)
    empty: dict[str, list[Any]] = {"replica": [], "proxy": [], "controller": []}
    for pod in state.pods:
        actors = by_pod.get(pod.name, empty)
        reps = " ".join(f"{a['pid']}:{a['state'][:4]}" for a in sorted(actors["replica"], key=lambda a: a["pid"] or 0))
        proxy = " ".join(f"{a['pid']}:{a['state']}" for a in actors["proxy"])
        ctrl = " ".join(str(a["pid"]) for a in actors["controller"])
        table.add_row(pod.name, pod.role, pod.node, pod.ip, pod.phase, "yes" if pod.ready else "no",
                      str(pod.restarts), reps or "-", proxy or "-", ctrl or "-")
    console.print(table)
    lost = [n.name for n in state.nodes if n.state != "Ready"]
    console.print(f"front door {state.front_door}   dashboard {state.dashboard}   "
                  f"app {snap.app_status or 'unknown'}   replicas RUNNING {snap.replicas_running}"
                  + (f"   lost nodes: {', '.join(lost)}" if lost else ""))
    print_in_effect(state.extra)
    extra = "   ".join(f"{k.replace('_', ' ')} {v}" for k, v in state.extra.items()
                       if v not in (None, "", []) and k not in IN_EFFECT)
    if extra:
        console.print(extra)
    if snap.errors:
        console.print(f"probe errors: {snap.errors}")
