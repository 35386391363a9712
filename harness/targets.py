"""Building the Cluster for a target (``local`` or ``kind``), for the CLI and the pytest plugin alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.app.serve_config import SCENARIO_APP
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
    when this run creates it (None: the target's default).
    """

    target: str = "local"
    config_file: str | None = None
    kube_context: str | None = None
    allowed_contexts: tuple[str, ...] = ()
    namespace: str = "serve-chaos"
    node_loss_hook: str | None = None
    workers: int | None = None
    gcs_ft: bool | None = None
    local_changes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"--target {self.target!r} is not a target", hint=f"use one of: {', '.join(TARGETS)}")


def build_cluster(options: TargetOptions, owner_pid: int | None = None) -> Cluster:
    """The cluster for ``options``.  Locally the scenarios' app is deployed from the start
    (no redeploy before the first scenario) unless a config file says otherwise."""
    if options.target == "local":
        from runtime.local.cluster import LocalCluster, load_config_file

        cfg = load_config_file(options.config_file)
        if options.config_file is None:
            cfg = cfg.with_(app=SCENARIO_APP)
        changes = dict(options.local_changes)
        if options.workers is not None:
            changes["workers"] = options.workers
        if options.gcs_ft is not None:
            changes["gcs_ft"] = options.gcs_ft
        return LocalCluster(cfg.with_(**changes) if changes else cfg, owner_pid=owner_pid)
    from runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
    from runtime.kuberay.manifests import KubeRayConfig

    ray = KubeRayConfig(namespace=options.namespace)
    if options.workers is not None:
        ray = KubeRayConfig(namespace=options.namespace, workers=options.workers)
    if options.gcs_ft is False:
        ray = KubeRayConfig(namespace=options.namespace, workers=ray.workers, gcs_ft="off")
    return KubeRayCluster(KubeTargetConfig(context=options.kube_context, allowed_contexts=options.allowed_contexts,
                                           namespace=options.namespace, node_loss_hook=options.node_loss_hook,
                                           ray=ray))


def describe(cluster: Any) -> str:
    return f"{getattr(cluster, 'name', '?')} cluster {getattr(cluster, 'label', '') or ''}"
