"""``serve-chaos kind up | down | manifests``: what only a kind cluster needs.

``kind up`` creates the cluster (or reuses one), installs the KubeRay operator
next to the head, optionally preloads images, then does what ``up --target kind``
does; ``kind manifests`` prints exactly what it applies.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer

from serve_chaos.harness.cli.common import AppDir, AppFile, Image, app_options, console
from serve_chaos.runtime.errors import ServeChaosError

kind_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                       help="The Kubernetes target: a kind cluster with KubeRay.")


def register(app: typer.Typer) -> None:
    app.add_typer(kind_app, name="kind")


RayVersion = typer.Option(None, "--ray-version", help="Ray the pods run: rayproject/ray:<version> (default 2.60.0)")


def _ray_config(gcs_ft: Optional[str], workers: Optional[int], namespace: str, spec=None,
                ray_version: Optional[str] = None):
    from serve_chaos.runtime.app.serve_config import SCENARIO_APP
    from serve_chaos.runtime.kuberay.manifests import KubeRayConfig

    shape = {k: v for k, v in (("gcs_ft", gcs_ft), ("workers", workers), ("ray_version", ray_version))
             if v is not None}
    return KubeRayConfig(namespace=namespace, app=spec or SCENARIO_APP, **shape)


def _asked(**options: object) -> tuple[str, ...]:
    """The shape options given on the command line: a running RayService must match those."""
    return tuple(name for name, value in options.items() if value is not None)


@kind_app.command("manifests")
def kind_manifests(
    gcs_ft: str = typer.Option("options", help="options (gcsFaultToleranceOptions) | legacy | off"),
    workers: int = typer.Option(2, help="Ray worker pods"),
    namespace: str = typer.Option("serve-chaos", help="namespace for our objects"),
    faults: bool = typer.Option(False, "--faults", help="print the Chaos Mesh objects the gray faults apply instead"),
    ray_version: Optional[str] = RayVersion,
    app: AppFile = None,
    app_dir: AppDir = None,
    image: Image = None,
) -> None:
    """Print what `kind up` applies, as YAML (secret values redacted), to review or apply elsewhere.
    With `--app` (and `--app-dir` or `--image`): your app's config and code.  With `--faults`:
    every Chaos Mesh object the gray faults apply (pod names are placeholders)."""
    from serve_chaos.runtime.kuberay.manifests import render, to_yaml

    spec, _ = app_options(app, app_dir, image)
    config = _ray_config(gcs_ft, workers, namespace, spec, ray_version)
    if faults:
        _print_fault_objects(config)
        return
    print("# serve-chaos: the objects `serve-chaos kind up` applies (server-side apply, field manager serve-chaos).")
    print("# The dashboard Service is re-pinned to the active RayCluster (ray.io/cluster) after it exists.")
    print(to_yaml(render(config, password="")), end="")


def _print_fault_objects(config) -> None:
    import yaml

    from serve_chaos.runtime.kuberay import chaosmesh

    print(f"# serve-chaos: the Chaos Mesh {chaosmesh.CHART_VERSION} objects the gray faults apply, one fault at a "
          "time, each aimed at exactly one pod.")
    print("# Pod names starting with PLACEHOLDER stand for the pods KubeRay names at run time; the scenarios pass")
    print("# their own settings (these are the issue-17 defaults).  `lift` deletes them; a duration bounds each.")
    docs = []
    for comment, obj in chaosmesh.review_objects(config):
        docs.append(f"# {comment}\n" + yaml.safe_dump(obj, sort_keys=False))
    print("---\n".join(docs), end="")


@kind_app.command("up")
def kind_up(
    name: str = typer.Option("serve-chaos", help="kind cluster name (context kind-<name>)"),
    config: Path = typer.Option(None, help="kind config (default: the repository's kind-config.yaml)"),
    preload: bool = typer.Option(False, help="pull the Ray and Redis images and load them onto the nodes first"),
    gcs_ft: Optional[str] = typer.Option(None, help="options (gcsFaultToleranceOptions, the default) | legacy | off"),
    workers: Optional[int] = typer.Option(None, help="Ray worker pods (default 2)"),
    namespace: str = typer.Option("serve-chaos", help="namespace for our objects"),
    ray_version: Optional[str] = RayVersion,
    app: AppFile = None,
    app_dir: AppDir = None,
    image: Image = None,
) -> None:
    """Create (or reuse) the kind cluster, install KubeRay 1.7.0 and Chaos Mesh 2.8.3 unless present, apply the
    RayService.  With `--preload`, the Ray image (`rayproject/ray:<--ray-version>`, or your `--image`) is loaded
    onto the Ray nodes first."""
    from kubernetes import client
    from kubernetes import config as kconfig

    from serve_chaos.runtime.kuberay import kind
    from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
    from serve_chaos.runtime.kuberay.manifests import ROLE_LABEL

    spec, _ = app_options(app, app_dir, image)
    ray_cfg = _ray_config(gcs_ft, workers, namespace, spec, ray_version)
    kind.require("kind")
    kind.require("helm")
    kind.docker_daemon_up()
    context = f"kind-{name}"
    created = name not in kind.clusters()
    if created:
        with console.status(f"creating kind cluster {name} (a few minutes) ..."), \
                tempfile.TemporaryDirectory(prefix="serve-chaos-kind-") as tmp:
            chosen = config or kind.DEFAULT_KIND_CONFIG
            if config is None:  # our config: a worker node per Ray worker and a spare
                chosen = Path(tmp) / "kind-config.yaml"
                chosen.write_text(kind.config_for_workers(kind.DEFAULT_KIND_CONFIG, ray_cfg.workers))
            kind.create(name, chosen)
    else:
        console.print(f"reusing kind cluster {name}")
    api_client = kconfig.new_client_from_config(context=context)
    core = client.CoreV1Api(api_client)
    short = kind.spare_problem(len(kind.nodes_with_roles(core, ("worker",))), ray_cfg.workers)
    if short:
        console.print(f"note: {short}; they will find no node for it (--workers or the kind config)")
    if created:
        kind.mark_created(core)
    if preload:
        with console.status("loading images onto the kind nodes that run them ..."):
            kind.load_images(name, {ray_cfg.pod_image: kind.nodes_with_roles(core, ("head", "worker")),
                                    ray_cfg.redis_image: kind.nodes_with_roles(core, ("head",))})
    if not kind.kuberay_installed(api_client):
        with console.status("installing the KubeRay operator 1.7.0 with helm ..."):
            kind.install_operator(context, {ROLE_LABEL: "head"})
        kind.record_installed(core, "kuberay-operator")
    if not kind.chaos_mesh_installed(api_client):
        with console.status(f"installing Chaos Mesh {kind.CHAOS_MESH_CHART_VERSION} with helm ..."):
            kind.install_chaos_mesh(context, {ROLE_LABEL: "head"})
        kind.record_installed(core, "chaos-mesh")
    cluster = KubeRayCluster(KubeTargetConfig(context=context, namespace=namespace, ray=ray_cfg,
                                              asked=_asked(workers=workers, gcs_ft=gcs_ft, ray_version=ray_version)))
    with console.status("applying the RayService and waiting until it serves ..."):
        cluster.up()
    console.print(f"ready: context {context}, Serve on {cluster.endpoints().front_door}; "
                  f"run `pytest scenarios/ --target kind`")


def refuse_if_in_use(context: str, namespace: str, force: bool) -> None:
    """A run holding our RayService's lock (a live harness) keeps its cluster: `kind down` refuses,
    in one line naming it, unless ``force`` -- as `serve-chaos down` does."""
    from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig

    cluster = KubeRayCluster(KubeTargetConfig(context=context, namespace=namespace))
    if not cluster._exists():
        return
    holder = cluster.lease.holder()
    if holder is not None and not cluster.lease.mine(holder) and not force:
        raise ServeChaosError(f"the cluster is in use by {holder.describe()}",
                              hint="wait until that run ends, or pass --force (it then ends as interrupted)")


@kind_app.command("down")
def kind_down(name: str = typer.Option("serve-chaos", help="kind cluster name"),
              namespace: str = typer.Option("serve-chaos", help="namespace of our objects"),
              force: bool = typer.Option(False, "--force", help="even while a run holds the cluster (it then ends "
                                                               "as interrupted)")) -> None:
    """Delete the kind cluster if serve-chaos created it; on one it did not, remove only what
    serve-chaos installed there (our RayService, then the Chaos Mesh and KubeRay releases).
    Refused while a run holds the cluster, unless --force."""
    from kubernetes import client
    from kubernetes import config as kconfig

    from serve_chaos.runtime.kuberay import kind

    kind.require("kind")
    if name not in kind.clusters():
        raise ServeChaosError(f"there is no kind cluster named {name!r}", hint="see `kind get clusters`")
    context = f"kind-{name}"
    core = client.CoreV1Api(kconfig.new_client_from_config(context=context))
    refuse_if_in_use(context, namespace, force)
    if kind.created_by_us(core):
        with console.status(f"deleting kind cluster {name} ..."):
            kind.delete(name)
        console.print(f"kind cluster {name} deleted")
        return
    releases = kind.installed_releases(core)
    if not releases:
        raise ServeChaosError(f"kind cluster {name!r} was not created by serve-chaos and holds nothing it installed; "
                              "refusing to touch it", hint=f"delete it yourself with `kind delete cluster --name {name}`")
    _remove_installed(context, namespace, releases, core, force)


def _remove_installed(context: str, namespace: str, releases: list[str], core, force: bool = False) -> None:
    """Our RayService goes first: its finalizers need the operator that is removed after it."""
    from serve_chaos.runtime.kuberay import kind
    from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig

    cluster = KubeRayCluster(KubeTargetConfig(context=context, namespace=namespace))
    if cluster.attach():
        with console.status("deleting our RayService and namespace ..."):
            cluster.down(force=force)
    for release in ("chaos-mesh", "kuberay-operator"):
        if release in releases:
            with console.status(f"uninstalling {release} ..."):
                kind.uninstall(context, release)
    kind.forget_installed(core)
    console.print(f"removed what serve-chaos installed on {context}: {', '.join(releases)}; the cluster itself "
                  "was not created by serve-chaos and stays")
