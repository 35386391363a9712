"""Changing the Serve config of a running RayService, and reading how KubeRay took it.

The desired config lives in the RayService: ``spec.serveConfigV2`` (what KubeRay submits)
and our annotation (what any later command compares the deployed config with).  Both are
written by server-side apply under a field manager of their own, so the rest of the
RayService -- owned by ``serve-chaos`` -- is neither rewritten nor pruned (a RayCluster
change would start an upgrade).

KubeRay v1.7.0 then submits it (``rayservice_controller.go`` reconcileServe ->
checkIfNeedSubmitServeApplications -> updateServeDeployment: a PUT of the config as JSON to
the dashboard's ``/api/serve/applications/``, ``utils/dashboardclient/dashboard_httpclient.go``
UpdateDeployments).  A config Serve refuses comes back only as a Warning event
``FailedToUpdateServeApplications`` on the RayService whose note ends with
``err: UpdateDeployments fail: <status> <Serve's answer>``; the reconcile returns before the
status is written, and KubeRay tries again every 2 s.  One Serve accepts but cannot run
shows as ``DEPLOY_FAILED`` in the dashboard's applications.
"""

from __future__ import annotations

from typing import Any

from serve_chaos.runtime.kuberay.manifests import SERVE_CONFIG_ANNOTATION, KubeRayConfig, labels, serve_config_v2

#: Our field manager for serveConfigV2 and the desired-config annotation only.
SERVE_CONFIG_MANAGER = "serve-chaos-serve-config"
#: ``utils/constant.go`` FailedToUpdateServeApplications: the reason of KubeRay's event.
REJECTED_REASON = "FailedToUpdateServeApplications"
#: How long KubeRay may take to submit a changed config (s): its 2 s requeue, a slow dashboard.
SUBMIT_TIMEOUT_S = 60.0


def serve_config_patch(config: KubeRayConfig, serve_config: dict[str, Any]) -> dict[str, Any]:
    """The server-side apply body that sets only the desired Serve config of the RayService."""
    import json

    return {"apiVersion": "ray.io/v1", "kind": "RayService",
            "metadata": {"name": config.name, "namespace": config.namespace,
                         "labels": labels(config, "rayservice"),
                         "annotations": {SERVE_CONFIG_ANNOTATION: json.dumps(serve_config, sort_keys=True)}},
            "spec": {"serveConfigV2": serve_config_v2(serve_config)}}


def rejection(note: str) -> str:
    """Serve's answer, one line, from the note of KubeRay's ``FailedToUpdateServeApplications`` event."""
    marker = "UpdateDeployments fail:"
    text = note.split(marker, 1)[1] if marker in note else note.rsplit("err:", 1)[-1]
    return " ".join(text.split())[:300]


def event_time(event: Any) -> float:
    """When an event (core/v1 as the client gives it) last happened, epoch s: KubeRay's recorder
    (``k8s.io/client-go/tools/events``) sets ``eventTime`` and counts repeats in ``series``."""
    series = getattr(event, "series", None)
    stamps = [getattr(series, "last_observed_time", None) if series is not None else None,
              getattr(event, "last_timestamp", None), getattr(event, "event_time", None),
              getattr(event, "first_timestamp", None)]
    found = [s.timestamp() for s in stamps if s is not None]
    return max(found) if found else 0.0
