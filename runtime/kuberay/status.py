"""Reading KubeRay's state: which RayCluster is active, whether an upgrade is under way,
and which pods belong to the cluster under test.  Pure functions of API objects.

Facts from KubeRay v1.7.0 (``ray-operator/controllers/ray/``):
- A RayService's clusters are named ``<rayservice>-<5 random chars>``
  (``utils/util.go`` GenerateRayClusterName) and listed in
  ``status.activeServiceStatus.rayClusterName`` / ``status.pendingServiceStatus.rayClusterName``.
- Changing ``rayClusterConfig`` creates a *pending* cluster; the active one serves
  until the pending one is ready and the Services switch to it; the old one is
  deleted ``rayClusterDeletionDelaySeconds`` (default 60 s) later
  (``rayservice_controller.go`` reconcilePromotionAndServingStatus, cleanUpRayClusterInstance).
- Condition ``UpgradeInProgress`` is True while both clusters exist, ``Ready`` once
  the Serve Service has endpoints (calculateConditions); ``status.observedGeneration``
  is the generation the controller last reconciled (calculateStatus).
- Pods carry ``ray.io/cluster`` and ``ray.io/node-type`` (``common/pod.go`` labelPod);
  the pod of a GCS-FT cluster's Redis cleanup Job is a copy of the head pod with
  ``ray.io/node-type=redis-cleanup`` (``raycluster_controller.go`` buildRedisCleanupJob).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serve_chaos.runtime.kuberay.manifests import (
    APP_CODE_ANNOTATION,
    CLUSTER_CHANGE_ANNOTATION,
    RAY_CLUSTER_LABEL,
    RAY_NODE_TYPE_LABEL,
)


def _get(obj: Any, *path: str) -> Any:
    """Walk a dict (custom objects come back as dicts)."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


@dataclass(frozen=True)
class RayServiceState:
    """What the RayService's status says about the clusters behind it."""

    generation: int | None
    observed_generation: int | None
    active: str | None
    pending: str | None
    conditions: dict[str, str]

    @classmethod
    def of(cls, rayservice: dict[str, Any]) -> "RayServiceState":
        conditions = {c.get("type"): c.get("status") for c in _get(rayservice, "status", "conditions") or []}
        return cls(
            generation=_get(rayservice, "metadata", "generation"),
            observed_generation=_get(rayservice, "status", "observedGeneration"),
            active=_get(rayservice, "status", "activeServiceStatus", "rayClusterName") or None,
            pending=_get(rayservice, "status", "pendingServiceStatus", "rayClusterName") or None,
            conditions=conditions,
        )

    @property
    def serving_cluster(self) -> str | None:
        """The cluster whose pods are under test: the active one, or the first pending one
        while a fresh RayService has none active yet."""
        return self.active or self.pending

    def problem(self) -> str | None:
        """Why the RayService is not settled, or None."""
        if self.generation is not None and self.observed_generation != self.generation:
            return (f"the operator has not reconciled the latest spec yet "
                    f"(generation {self.generation}, observed {self.observed_generation})")
        if self.pending:
            return f"an upgrade is under way: pending RayCluster {self.pending} (active {self.active or 'none'})"
        if self.conditions.get("UpgradeInProgress") == "True":
            return "an upgrade is under way (condition UpgradeInProgress)"
        if not self.active:
            return "the RayService has no active RayCluster yet"
        if self.conditions.get("Ready") != "True":
            return "the RayService is not Ready (its Serve Service has no endpoints)"
        return None


@dataclass(frozen=True)
class RunningShape:
    """The shape of a running RayService as its spec says: what a later command must not change
    by re-applying its own defaults (``workers``, GCS FT form, the Ray pods' image, the app code)."""

    workers: int
    gcs_ft: str  # options | legacy | off
    image: str
    ray_version: str
    app_code: str
    cluster_change: str = ""
    #: Whether the Ray pods are placed by the nodes' role labels (kind-config.yaml's), or not (any cluster).
    node_selectors: bool = True

    @classmethod
    def of(cls, rayservice: dict[str, Any]) -> "RunningShape":
        cluster = _get(rayservice, "spec", "rayClusterConfig") or {}
        annotations = _get(rayservice, "metadata", "annotations") or {}
        groups = cluster.get("workerGroupSpecs") or [{}]
        if cluster.get("gcsFaultToleranceOptions"):
            form = "options"
        elif str(annotations.get("ray.io/ft-enabled", "")).lower() == "true":
            form = "legacy"
        else:
            form = "off"
        head_spec = _get(cluster, "headGroupSpec", "template", "spec") or {}
        containers = head_spec.get("containers") or [{}]
        return cls(workers=int(groups[0].get("replicas", 0)), gcs_ft=form, image=containers[0].get("image", ""),
                   ray_version=str(cluster.get("rayVersion", "")),
                   app_code=str(annotations.get(APP_CODE_ANNOTATION, "")),
                   cluster_change=str(annotations.get(CLUSTER_CHANGE_ANNOTATION, "")),
                   node_selectors=bool(head_spec.get("nodeSelector")))


def memory_limit(pod: Any) -> int | None:
    """The memory limit (bytes) of the pod's first container -- KubeRay's Ray container, Redis's --
    or None when it has none (``resources.limits.memory``)."""
    from kubernetes.utils.quantity import parse_quantity

    containers = pod.spec.containers or []
    limits = (containers[0].resources.limits or {}) if containers and containers[0].resources else {}
    value = limits.get("memory")
    return int(parse_quantity(value)) if value else None


def pod_labels(pod: Any) -> dict[str, str]:
    return dict((pod.metadata.labels if hasattr(pod, "metadata") else pod["metadata"].get("labels")) or {})


def pod_role(labels: dict[str, str], serving_cluster: str | None) -> str | None:
    """``head`` / ``worker`` / ``redis`` for a pod of the cluster under test; None for pods that
    are not: another RayCluster's (one being upgraded away or deleted) and the Redis cleanup Job's."""
    node_type = labels.get(RAY_NODE_TYPE_LABEL)
    if node_type in ("head", "worker"):
        if serving_cluster is not None and labels.get(RAY_CLUSTER_LABEL) != serving_cluster:
            return None
        return node_type
    if labels.get("serve-chaos/component") == "redis" and node_type is None:
        return "redis"
    return None


def container_restarts(pod: Any) -> int:
    """Restarts of the pod's first container (the Ray container is first: ``utils.RayContainerIndex``).

    KubeRay leaves a Running pod whose Ray container exited to the kubelet, which
    restarts the container in place: same pod UID, restartCount + 1
    (``raycluster_controller.go`` shouldDeletePod).
    """
    spec_containers = pod.spec.containers or []
    if not spec_containers:
        return 0
    first = spec_containers[0].name
    for status in pod.status.container_statuses or []:
        if status.name == first:
            return int(status.restart_count or 0)
    return 0
