"""Status and readiness: what the RayService runs, its events, and whether it serves as desired."""

from __future__ import annotations

import time
from typing import Any

import requests

from serve_chaos.runtime.app.serve_config import (
    AppDeployFailed,
    PROXY_ROUTES_PATH,
    deploy_failure,
    deployed_config_problem,
    desired_replicas,
)
from serve_chaos.runtime.cluster import ClusterStatus, Endpoints
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.kuberay.cluster.base import KubeRayBase
from serve_chaos.runtime.kuberay.serveconfig import event_time
from serve_chaos.runtime.kuberay.cluster.targetconfig import PlacementRefused, REJECTION_RECENT_S
from serve_chaos.runtime.waiting import NotYet, wait_until


class KubeRayReadiness(KubeRayBase):
    """Status and readiness: what the RayService runs, its events, and whether it serves as desired."""

    def status(self) -> ClusterStatus:
        state = self.state()
        endpoints = Endpoints(front_door=self.target.serve_url or f"http://{self.target.host}:{self.target.serve_host_port}",
                              dashboard=self.target.dashboard_url or "a port-forward to the head (port 8265)")
        return ClusterStatus(target=self.name, label=f"{self.ns}/{self.ray.name}", mode=self.context,
                             gcs_ft=bool(self.settings()["gcs_ft"]), front_door=endpoints.front_door,
                             dashboard=endpoints.dashboard, pods=tuple(self.pods()), nodes=tuple(self.nodes()),
                             extra={"active_ray_cluster": state.active, "pending_ray_cluster": state.pending,
                                    "settled": state.problem() or "yes",
                                    "locked_by": (holder.describe() if (holder := self.lease.holder()) else None),
                                    "faults_in_effect": [f"{f['kind']} {f['target']} (PID {f['pid']} on {f['host']})"
                                                         for f in self.lease.faults()]})

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        out = []
        for ev in self.core.list_namespaced_event(self.ns).items:
            t = event_time(ev)
            if t >= since:
                out.append({"t": t, "kind": ev.reason, "object": f"{ev.involved_object.kind}/{ev.involved_object.name}",
                            "message": (ev.message or "")[:300]})
        return sorted(out, key=lambda e: e["t"])

    def readiness_problem(self) -> str | None:
        state = self.state()
        problem = state.problem()
        if problem and state.generation != state.observed_generation:
            # KubeRay returns before writing its status when the dashboard refused the config
            # (rayservice_controller.go reconcileServe): say why it never catches up.
            refused = self._serve_rejection(time.time() - REJECTION_RECENT_S)
            return f"{problem}; KubeRay's last submission was refused: {refused}" if refused else problem
        if problem:
            return problem
        self._pin_dashboard(state.active or "")
        pods = self.pods()
        heads = [p for p in pods if p.role == "head"]
        workers = [p for p in pods if p.role == "worker"]
        if len(heads) != 1 or len(workers) != self.ray.workers:
            return f"{len(heads)} head and {len(workers)}/{self.ray.workers} worker pods in RayCluster {state.active}"
        for pod in pods:
            if pod.phase != "Running":
                return f"pod {pod.name} is {pod.phase}"
        placement = self.placement_problem()
        if placement:
            raise PlacementRefused(placement, hint="the worker pods' anti-affinity keeps one per node: "
                                                   "`serve-chaos down --target kind` and bring the cluster up again")
        return self._serve_problem()

    def _serve_problem(self) -> str | None:
        dashboard = self.dashboard_url()
        try:
            details = self._session.get(f"{dashboard}/api/serve/applications/", timeout=5).json()
        except (requests.RequestException, ValueError) as err:
            return f"dashboard not answering ({type(err).__name__})"
        failed = deploy_failure(details)
        if failed is not None:
            raise failed
        desired = self.serve_config()
        mismatch = deployed_config_problem(desired, details)
        if mismatch:
            return mismatch
        want = desired_replicas(desired)
        running = sum(1 for app in (details.get("applications") or {}).values()
                      for dep in app.get("deployments", {}).values()
                      for r in dep.get("replicas", []) if r.get("state") == "RUNNING")
        if running != want:
            return f"{running}/{want} replicas RUNNING"
        try:
            if self._session.get(f"{self.front_door_url()}{PROXY_ROUTES_PATH}",
                                 timeout=5).status_code != 200:
                return f"Serve endpoint not answering 200 on {PROXY_ROUTES_PATH}"
        except requests.RequestException as err:
            return f"Serve endpoint not reachable ({type(err).__name__})"
        return None

    def wait_ready(self, timeout_s: float | None = None) -> None:
        # A new RayCluster (a GCS FT switch) pulls, schedules and starts every pod.
        timeout_s = self.capabilities.ready_timeout_s if timeout_s is None else timeout_s

        failed: list[ServeChaosError] = []

        def check() -> None:
            try:
                problem = self.readiness_problem()
            except (AppDeployFailed, PlacementRefused) as err:
                failed.append(err)  # waiting cannot fix it: told at once, not retried
                return
            if problem:
                raise NotYet(problem)

        wait_until(check, timeout_s, period_s=3.0, what="the RayService to be ready",
                   hint=f"`kubectl -n {self.ns} describe rayservice {self.ray.name}`",
                   retry_on=(NotYet, ServeChaosError))
        if failed:
            raise failed[0]
