"""Building the Cluster for a target (``local`` or ``kind``), for the CLI and the pytest plugin alike."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from runtime.app.serve_config import SCENARIO_APP
from runtime.app.spec import AppSpec
from runtime.cluster import Cluster
from runtime.errors import ConfigError

TARGETS = ("local", "kind")


@dataclass(frozen=True)
class TargetOptions:
    """Where scenarios run.

    ``config_file``: local cluster settings (JSON).  Kube target: ``kube_context``
    (default: the current one), ``allowed_contexts`` beyond ``kind-*``,
    ``namespace`` of our objects, ``node_loss_hook`` (a command that removes
    ``{node}`` on a non-kind cluster).  ``workers`` / ``gcs_ft``: cluster shape
    when this run creates it (None: the target's default).  ``app``: the app under
    test (None: the bundled SleepyPid); its code goes onto the pods.
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
    local_changes: dict[str, Any] = field(default_factory=dict)
    app: AppSpec | None = None

    @property
    def app_spec(self) -> AppSpec:
        return self.app or SCENARIO_APP

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"--target {self.target!r} is not a target", hint=f"use one of: {', '.join(TARGETS)}")


def build_cluster(options: TargetOptions, owner_pid: int | None = None) -> Cluster:
    """The cluster for ``options``.  Locally the scenarios' app is deployed from the start
    (no redeploy before the first scenario) unless a config file says otherwise."""
    if options.target == "local":
        from runtime.local.cluster import LocalCluster, load_config_file

        cfg = load_config_file(options.config_file)
        app = options.app_spec
        changes = dict(options.local_changes)
        if options.config_file is None or options.app is not None:
            changes.update(serve_config=app.to_serve_config(), app_dir=app.app_dir, app_code=app.code_id())
        if options.workers is not None:
            changes["workers"] = options.workers
        if options.gcs_ft is not None:
            changes["gcs_ft"] = options.gcs_ft
        return LocalCluster(cfg.with_(**changes) if changes else cfg, owner_pid=owner_pid)
    from runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
    from runtime.kuberay.manifests import KubeRayConfig

    ray = KubeRayConfig(namespace=options.namespace, app=options.app_spec)
    if options.workers is not None:
        ray = replace(ray, workers=options.workers)
    if options.gcs_ft is False:
        ray = replace(ray, gcs_ft="off")
    # Only what was asked is held against a running cluster; the rest is adopted from it.
    asked = tuple(k for k, v in (("workers", options.workers), ("gcs_ft", options.gcs_ft is False)) if v)
    return KubeRayCluster(KubeTargetConfig(context=options.kube_context, allowed_contexts=options.allowed_contexts,
                                           namespace=options.namespace, node_loss_hook=options.node_loss_hook,
                                           serve_url=options.serve_url, dashboard_url=options.dashboard_url,
                                           ray=ray, asked=asked))


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
