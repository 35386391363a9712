"""Building the Cluster for a target (``local`` or ``kind``), for the CLI and the pytest plugin alike."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from serve_chaos.runtime.app.serve_config import SCENARIO_APP
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.cluster import GCS_BACKENDS, INGRESSES, Cluster, RayOptions
from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.ray_compat import cluster_ray_version, unsupported_config_keys
from serve_chaos.runtime.ray_versions import check_ray_version

TARGETS = ("local", "kind", "k8s")


@dataclass(frozen=True)
class TargetOptions:
    """Where scenarios run.

    ``config_file``: local cluster settings (JSON).  Kube target: ``kube_context``
    (default: the current one), ``allowed_contexts`` beyond ``kind-*``,
    ``namespace`` of our objects, ``node_loss_hook`` (a command that removes
    ``{node}`` on a non-kind cluster).  ``workers`` / ``gcs_ft``: cluster shape
    when this run creates it (None: the target's default).  ``app``: the app under
    test (None: the bundled SleepyPid); its code goes onto the pods.  ``ray_version``:
    the Ray a cluster this run creates runs, and a running one must run (None: a new
    cluster runs the pinned default, or a local config file's; a running one is used as it is).
    """

    target: str = "local"
    config_file: str | None = None
    kube_context: str | None = None
    allowed_contexts: tuple[str, ...] = ()
    namespace: str = "serve-chaos"
    node_loss_hook: str | None = None
    #: Kube target off kind: where the Serve Service and the dashboard are reached from here.
    serve_url: str | None = None
    dashboard_url: str | None = None
    workers: int | None = None
    gcs_ft: bool | None = None
    #: ``--gcs-backend`` (redis | rocksdb) and ``--ingress`` (proxy | haproxy); None: the target's default.
    gcs_backend: str | None = None
    ingress: str | None = None
    local_changes: dict[str, Any] = field(default_factory=dict)
    app: AppSpec | None = None
    ray_version: str | None = None
    #: k8s target: give the nodes kind-config.yaml's role labels (False: nodes as on any cluster).
    node_labels: bool = True

    @property
    def app_spec(self) -> AppSpec:
        return self.app or SCENARIO_APP

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"--target {self.target!r} is not a target", hint=f"use one of: {', '.join(TARGETS)}")
        try:
            RayOptions(True, self.gcs_backend, self.ingress)
        except ValueError as err:
            flag = "--gcs-backend" if "gcs_backend" in str(err) else "--ingress"
            raise ConfigError(f"{flag}: {err}", hint=f"use one of: {', '.join(GCS_BACKENDS if flag == '--gcs-backend' else INGRESSES)}") from None
        if self.target != "local" and (self.gcs_backend == "rocksdb" or self.ingress == "haproxy"):
            raise ConfigError(f"--gcs-backend rocksdb and --ingress haproxy run on the local target only, not {self.target}",
                              hint="leave them out, or pass --target local")
        if self.ray_version is not None:
            object.__setattr__(self, "ray_version", check_ray_version(self.ray_version))
            unknown = unsupported_config_keys(self.app_spec.to_serve_config(), self.ray_version)
            if unknown:
                raise ConfigError(f"{self.app_spec.label()} sets {unknown[0]}, which Ray {self.ray_version}'s Serve "
                                  "config schema does not have" + (f" ({len(unknown) - 1} more)" if len(unknown) > 1
                                                                  else ""),
                                  hint="remove it, or pick a --ray-version that has it")


def build_cluster(options: TargetOptions, owner_pid: int | None = None,
                  progress: Callable[[str], None] | None = None) -> Cluster:
    """The cluster for ``options``.  Locally the scenarios' app is deployed from the start
    (no redeploy before the first scenario) unless a config file says otherwise."""
    if options.target == "local":
        from serve_chaos.runtime.local.cluster import LocalCluster, load_config_file

        cfg = load_config_file(options.config_file)
        app = options.app_spec
        changes = dict(options.local_changes)
        if options.config_file is None or options.app is not None:
            changes.update(serve_config=app.to_serve_config(), app_dir=app.app_dir, app_code=app.code_id())
        if options.workers is not None:
            changes["workers"] = options.workers
        if options.gcs_ft is not None:
            changes["gcs_ft"] = options.gcs_ft
        changes.update({k: v for k, v in (("gcs_backend", options.gcs_backend), ("ingress", options.ingress)) if v})
        if options.ray_version is not None:
            changes["ray_version"] = options.ray_version
        return LocalCluster(cfg.with_(**changes) if changes else cfg, owner_pid=owner_pid)
    from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
    from serve_chaos.runtime.kuberay.manifests import KubeRayConfig

    ray = KubeRayConfig(namespace=options.namespace, app=options.app_spec)
    if options.workers is not None:
        ray = replace(ray, workers=options.workers)
    if options.gcs_ft is False:
        ray = replace(ray, gcs_ft="off")
    if options.ray_version is not None:
        # Ray's own image of that release, and KubeRay's rayVersion.
        ray = replace(ray, ray_version=options.ray_version)
    # Only what was asked is held against a running cluster; the rest is adopted from it.
    asked = tuple(k for k, v in (("workers", options.workers), ("gcs_ft", options.gcs_ft is False),
                                 ("ray_version", options.ray_version)) if v)
    config = KubeTargetConfig(context=options.kube_context, allowed_contexts=options.allowed_contexts,
                              namespace=options.namespace, node_loss_hook=options.node_loss_hook,
                              serve_url=options.serve_url, dashboard_url=options.dashboard_url, ray=ray, asked=asked)
    if options.target == "k8s":
        from serve_chaos.runtime.k8s.cluster import K8sTarget

        if options.app_spec.image:
            raise ConfigError("--image cannot run on the k8s target: its nodes have no container runtime",
                              hint="ship your code with --app-dir (a ConfigMap, as on kind without --image)")
        return K8sTarget(config, labelled=options.node_labels, progress=progress or print, owner_pid=owner_pid)
    return KubeRayCluster(config)


def describe(cluster: Any) -> str:
    return f"{getattr(cluster, 'name', '?')} cluster {getattr(cluster, 'label', '') or ''}"


def check_app_fits(cluster: Cluster, app: AppSpec) -> None:
    """A running cluster must carry the app's code (import path, ConfigMap or image):
    else its replicas would import other code.  A ConfigError line saying what to do."""
    have = cluster.settings().get("app_code")
    if have and have != app.code_id():
        raise ConfigError(f"the running cluster ({cluster.label}) carries other app code ({have}) than "
                          f"{app.label()} needs ({app.code_id()})",
                          hint="`serve-chaos down`, then run again (or `serve-chaos up` with the same --app, "
                               "--app-dir and --image)")


def running_ray_version(cluster: Cluster) -> str | None:
    """The Ray a running cluster runs: as its target records it, else as its dashboard says."""
    recorded = cluster.settings().get("ray_version")
    return str(recorded) if recorded else cluster_ray_version(cluster.endpoints().dashboard)


def check_ray_version_fits(cluster: Cluster, wanted: str | None) -> None:
    """A running cluster must run the Ray ``--ray-version`` asked for (nothing asked: any)."""
    if wanted is None:
        return
    have = running_ray_version(cluster)
    if have is not None and have != wanted:
        raise ConfigError(f"the running cluster ({cluster.label}) runs Ray {have}, not {wanted}",
                          hint="`serve-chaos down`, then run again (a cluster runs one Ray version; "
                               f"`serve-chaos up --ray-version {wanted}` starts one)")


def check_ray_options_fit(cluster: Cluster, options: TargetOptions) -> None:
    """A running cluster must have been made with the ``--gcs-backend`` / ``--ingress`` asked for."""
    settings = cluster.settings()
    for flag, key, wanted in (("--gcs-backend", "base_gcs_backend", options.gcs_backend),
                              ("--ingress", "base_ingress", options.ingress)):
        have = settings.get(key)
        if wanted is not None and have is not None and have != wanted:
            raise ConfigError(f"the running cluster ({cluster.label}) was made with {flag} {have}, not {wanted}",
                              hint=f"`serve-chaos down`, then run again (`serve-chaos up {flag} {wanted}` starts one)")


def bring_up(cluster: Cluster, options: TargetOptions, progress: Callable[[str], None] | None = None) -> None:
    """Use the running cluster (it must run the Ray asked for) or bring one up.  On the local
    target a Ray version new to this machine gets its environment first, ``progress`` told each step."""
    if cluster.attach():
        check_ray_version_fits(cluster, options.ray_version)
        check_ray_options_fit(cluster, options)
    elif options.target == "local":
        from serve_chaos.runtime.local.rayenv import ray_runtime

        ray_runtime(cluster.config.ray_version, progress=progress)  # type: ignore[attr-defined]
    elif options.target == "k8s":
        from serve_chaos.runtime.local.rayenv import ray_runtime
        from serve_chaos.runtime.kuberay.manifests import KubeRayConfig

        if progress is not None:
            cluster.progress = progress  # type: ignore[attr-defined]  # the build and bring-up say each step
        # The node agents run rayproject/ray:X.Y.Z from that release's environment (the image's "pull").
        ray_runtime(options.ray_version or KubeRayConfig.ray_version, progress=progress)
    cluster.up()
