"""Building the Cluster for a target name (``local`` or ``kind``), for the CLI and the pytest plugin."""

from __future__ import annotations

from typing import Any

from runtime.app.serve_config import SCENARIO_APP
from runtime.cluster import Cluster
from runtime.errors import ConfigError

TARGETS = ("local", "kind")


def build_cluster(target: str, *, config_file: str | None = None, owner_pid: int | None = None,
                  kube_context: str | None = None, allowed_contexts: tuple[str, ...] = (),
                  namespace: str = "serve-chaos", node_loss_hook: str | None = None) -> Cluster:
    """The cluster for ``target``.  Locally the scenarios' app is deployed from the start
    (no redeploy before the first scenario) unless a config file says otherwise."""
    if target == "local":
        from runtime.local.cluster import LocalCluster, load_config_file

        cfg = load_config_file(config_file)
        if config_file is None:
            cfg = cfg.with_(app=SCENARIO_APP)
        return LocalCluster(cfg, owner_pid=owner_pid)
    if target == "kind":
        from runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig

        return KubeRayCluster(KubeTargetConfig(context=kube_context, allowed_contexts=allowed_contexts,
                                               namespace=namespace, node_loss_hook=node_loss_hook))
    raise ConfigError(f"--target {target!r} is not a target", hint=f"use one of: {', '.join(TARGETS)}")


def describe(cluster: Any) -> str:
    return f"{getattr(cluster, 'name', '?')} cluster {getattr(cluster, 'label', '') or getattr(cluster, 'context', '')}"
