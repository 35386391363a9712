"""Whether the local cluster serves as desired, and waiting until it does."""

from __future__ import annotations

import requests

from serve_chaos.runtime.app.serve_config import PROXY_ROUTES_PATH, deploy_failure, deployed_config_problem, desired_replicas
from serve_chaos.runtime.local.cluster.base import LocalClusterBase
from serve_chaos.runtime.waiting import NotYet, wait_until


class LocalClusterReadiness(LocalClusterBase):
    """Whether the local cluster serves as desired, and waiting until it does."""

    def readiness_problem(self) -> str | None:
        """None when every pod runs, the app is RUNNING with all replicas, and the front door serves."""
        state = self.state()
        lost = {n["name"] for n in state["nodes"] if n["state"] != "Ready"}
        for pod in state["pods"]:
            if pod["node"] in lost:
                continue
            if pod["phase"] != "Running":
                return f"pod {pod['name']} is {pod['phase']}"
        try:
            details = self._session.get(f"{state['dashboard']}/api/serve/applications/", timeout=5).json()
        except (requests.RequestException, ValueError) as err:
            return f"dashboard not answering ({type(err).__name__})"
        failed = deploy_failure(details)
        if failed is not None:
            raise failed
        mismatch = deployed_config_problem(state["serve_config"], details)
        if mismatch:
            return mismatch
        want = desired_replicas(state["serve_config"])
        running = 0
        for app in (details.get("applications") or {}).values():
            if app.get("status") != "RUNNING":
                return f"app {app.get('name')} is {app.get('status')}"
            for dep in app.get("deployments", {}).values():
                running += sum(1 for r in dep.get("replicas", []) if r.get("state") == "RUNNING")
        if running != want:
            return f"{running}/{want} replicas RUNNING"
        try:
            resp = self._session.get(state["front_door"] + PROXY_ROUTES_PATH, timeout=5)
        except requests.RequestException as err:
            return f"front door not serving ({type(err).__name__})"
        if resp.status_code != 200:
            return f"front door answered {resp.status_code}"
        return None

    def wait_ready(self, timeout_s: float | None = None) -> None:
        timeout_s = 120.0 if timeout_s is None else timeout_s

        def check() -> None:
            self._raise_if_supervisor_died()
            problem = self.readiness_problem()
            if problem:
                raise NotYet(problem)

        # A dead supervisor raises InfrastructureError, which is not retried.
        wait_until(check, timeout_s, period_s=1.0, what="the local cluster to be ready",
                   evidence=str(self.home / (self.label or "") / "logs"),
                   hint="see the pod logs there; `serve-chaos status` shows pods and replicas")
