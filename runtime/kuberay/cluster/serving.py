"""The Serve config through the RayService: applied, changed under load, refused, and the
settings a verdict records."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from serve_chaos.runtime.app.serve_config import deploy_failure, deployed_config_problem, wait_apps_deleted
from serve_chaos.runtime.cluster import ActionRecord
from serve_chaos.runtime.errors import InfrastructureError, ServeChaosError
from serve_chaos.runtime.kuberay.cluster.base import KubeRayBase
from serve_chaos.runtime.kuberay.manifests import SERVE_CONFIG_ANNOTATION
from serve_chaos.runtime.kuberay.serveconfig import (
    REJECTED_REASON,
    SERVE_CONFIG_MANAGER,
    SUBMIT_TIMEOUT_S,
    event_time,
    rejection,
    serve_config_patch,
)
from serve_chaos.runtime.kuberay.status import RayServiceState, RunningShape
from serve_chaos.runtime.kuberay.cluster.targetconfig import (
    APPS_DELETE_S,
    FRONT_DOOR_LAG_S,
    PODGC_PERIOD_S,
    PODGC_QUARANTINE_S,
    READINESS_PERIOD_S,
    READINESS_TIMEOUT_S,
    ServeRejected,
)
from serve_chaos.runtime.ray_settings import node_health_check
from serve_chaos.runtime.waiting import NotYet, wait_until


class KubeRayServing(KubeRayBase):
    """The Serve config through the RayService: applied, changed under load, refused, and the settings
    a verdict records."""

    def settings(self) -> dict[str, Any]:
        obj = self._rayservice()
        # What runs, from the RayService's spec (not this process's defaults).
        running = RunningShape.of(obj)
        gcs_ft = running.gcs_ft != "off"
        return {
            "target": self.name,
            "context": self.context,
            "gcs_ft": gcs_ft,
            "gcs_ft_form": running.gcs_ft,
            # The manifests write only these (KUBE_REASONS in pods.py says why).
            "gcs_backend": "redis", "base_gcs_backend": "redis", "ingress": "proxy", "base_ingress": "proxy",
            # KubeRay sets it on workers when GCS FT is on (common/pod.go configureGCSFaultTolerance).
            "gcs_rpc_server_reconnect_timeout_s_workers": 600 if gcs_ft else 60,
            "ray_image": running.image,
            "ray_version": running.ray_version,
            "app_code": running.app_code,
            "workers": running.workers,
            "ray_cluster": RayServiceState.of(obj).serving_cluster,
            "podgc_quarantine_s": PODGC_QUARANTINE_S,
            "podgc_period_s": PODGC_PERIOD_S,
            "readiness_period_s": READINESS_PERIOD_S,
            "readiness_timeout_s": READINESS_TIMEOUT_S,
            "front_door_lag_s": FRONT_DOOR_LAG_S,
            **node_health_check({}),
        }

    def serve_config(self) -> dict[str, Any]:
        annotations = self._rayservice().get("metadata", {}).get("annotations") or {}
        return json.loads(annotations.get(SERVE_CONFIG_ANNOTATION, "{}")) or self.ray.app.to_serve_config()

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        """Make ``config`` the RayService's serveConfigV2; the operator deploys it in place.
        ``replace`` deletes the apps first, as the local target does: an in-place change of
        placement options alone is never applied by Serve (``PLACEMENT_OPTIONS``), and every
        replica starts at once instead of in rolling batches.  The delete goes the operator's
        way too -- serveConfigV2 with no application, which KubeRay submits like any change
        (``rayservice_controller.go`` checkIfNeedSubmitServeApplications) -- and is leased, so
        a harness that dies in between leaves ``config`` to be restored by the next command."""
        t0 = time.time()
        if replace:
            self._delete_apps(config)
        self._set_serve_config(config)
        return ActionRecord("apply_serve_config", self.ray.name, t0, time.time(), {"replace": replace})

    def _delete_apps(self, config: dict[str, Any]) -> None:
        leased = self.lease.fault("serve_config", self.ray.name) is None
        if leased:
            self.lease.add_fault("serve_config", self.ray.name, original=config, change="delete the apps, then deploy")
        try:
            self._set_serve_config({**config, "applications": []})
            wait_apps_deleted(self._session, self.dashboard_url(), timeout_s=SUBMIT_TIMEOUT_S + APPS_DELETE_S)
        except InfrastructureError:
            pass  # deploying over what is left is an in-place update; the gate says if Serve ignores it
        finally:
            self._set_serve_config(config)
            if leased:
                self.lease.drop_faults("serve_config", self.ray.name)

    def _set_serve_config(self, config: dict[str, Any]) -> None:
        """serveConfigV2 and the desired-config annotation, and nothing else of the RayService."""
        self.api.apply(serve_config_patch(self.ray, config), manager=SERVE_CONFIG_MANAGER)

    def update_serve_config(self, config: dict[str, Any], change: str) -> ActionRecord:
        """An operator's change under load: the new desired config, submitted by KubeRay the way
        it always is.  Leased (kind ``serve_config``) with the config desired before the first
        change, which ``heal`` -- or the next command, if this harness died -- restores.  A
        config Serve refuses is restored at once and said in one line.  ``details``:
        ``change``, ``t_accepted`` (epoch s the dashboard first showed it deployed)."""
        t0 = time.time()
        previous = self.serve_config()
        first = self.lease.fault("serve_config", self.ray.name) is None
        if first:
            self.lease.add_fault("serve_config", self.ray.name, original=previous, change=change)
        self._set_serve_config(config)
        try:
            t_accepted = self._await_serve_config(config, since=t0, change=change)
        except ServeChaosError:
            self._set_serve_config(previous)
            if first:
                self.lease.drop_faults("serve_config", self.ray.name)
            raise
        return ActionRecord("update_serve_config", self.ray.name, t0, time.time(),
                            {"change": change, "t_accepted": t_accepted})

    def _await_serve_config(self, config: dict[str, Any], since: float, change: str,
                            timeout_s: float = SUBMIT_TIMEOUT_S) -> float:
        """When (epoch s) the dashboard shows ``config`` deployed; ServeRejected when Serve refused
        it (KubeRay's event) or could not deploy it (DEPLOY_FAILED)."""
        def check() -> float:
            refused = self._serve_rejection(since)
            if refused:
                raise ServeRejected(f"Serve refused the config change ({change}): {refused}; the previous config "
                                    "is restored", hint="`serve build` or `serve deploy` the config locally shows "
                                                         "Serve's full message")
            try:
                details = self._session.get(f"{self.dashboard_url()}/api/serve/applications/", timeout=5).json()
            except (requests.RequestException, ValueError) as err:
                raise NotYet(f"dashboard not answering ({type(err).__name__})") from None
            failed = deploy_failure(details)
            if failed is not None:
                raise ServeRejected(f"Serve could not deploy the config change ({change}): "
                                    f"{failed.what.split(': ', 1)[-1]}; the previous config is restored",
                                    hint=failed.hint)
            problem = deployed_config_problem(config, details)
            if problem:
                raise NotYet(problem)
            return time.time()

        failures: list[ServeRejected] = []

        def guarded() -> float:
            try:
                return check()
            except ServeRejected as err:
                failures.append(err)
                return 0.0

        t_accepted = wait_until(guarded, timeout_s, period_s=1.0, what="KubeRay to submit the changed Serve config",
                                hint=f"`kubectl -n {self.ns} describe rayservice {self.ray.name}` shows its events")
        if failures:
            raise failures[0]
        return t_accepted

    def _serve_rejection(self, since: float) -> str | None:
        """Serve's answer to a config KubeRay submitted after ``since`` and Serve refused, or None."""
        events = self.core.list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name={self.ray.name},reason={REJECTED_REASON}").items
        fresh = [e for e in events if event_time(e) >= since - 1.0]
        if not fresh:
            return None
        return rejection(max(fresh, key=event_time).message or "")
