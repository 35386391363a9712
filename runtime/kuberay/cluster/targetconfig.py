"""Where and how the kube target acts (``KubeTargetConfig``), the timings of Kubernetes and KubeRay
it is built on (each citing its upstream source), and its own errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from serve_chaos.runtime.errors import ConfigError, InfrastructureError
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig


#: kubernetes ``pkg/controller/podgc/gc_controller.go``: pods bound to a deleted Node are
#: collected only after ``quarantineTime`` (40 s), checked every ``gcCheckPeriod`` (20 s).
PODGC_QUARANTINE_S = 40.0
PODGC_PERIOD_S = 20.0
#: How long Serve may take to delete the apps once KubeRay submitted none (s): each replica's
#: graceful shutdown (SleepyPid's 20 s) plus the controller's loop.
APPS_DELETE_S = 40.0
#: KubeRay's Serve readiness probe on workers (``utils/constant.go``: period 5 s, timeout 2 s,
#: ServeReadinessProbeFailureThreshold 1); the head leaves the Serve Service when the RayService
#: controller, reconciling every 2 s (ServiceDefaultRequeueDuration), finds its proxy unhealthy
#: (a 2 s HTTP timeout: ``utils/httpproxy_httpclient.go``).
READINESS_PERIOD_S = 5.0
READINESS_TIMEOUT_S = 2.0
#: The longest a Service keeps routing to a pod that stopped serving (s): the slower of the two
#: paths above, plus a second for EndpointSlice propagation and kube-proxy.
FRONT_DOOR_LAG_S = max(READINESS_PERIOD_S + READINESS_TIMEOUT_S, 2.0 + 2.0) + 1.0
#: A refusal event this recent (s) explains a RayService whose status lags its spec.
REJECTION_RECENT_S = 30.0
#: The dashboard's port on the head (``utils/constant.go`` DefaultDashboardPort).
DASHBOARD_PORT = 8265
#: ``rayservice_controller.go`` RayClusterDeletionDelayDuration (ours does not override it).
RAYCLUSTER_DELETION_DELAY_S = 60.0
#: ``utils/constant.go`` RAYCLUSTER_GCS_FT_DELETION_TIMEOUT_DEFAULT: the longest a GCS-FT
#: RayCluster's Redis cleanup finalizer holds its deletion.
GCS_FT_DELETION_TIMEOUT_S = 300.0
#: How long a RayService upgrade may take to settle (s): a new cluster's pods and Serve (600 s),
#: the switch (60 s), KubeRay's deletion delay (its timer starts at the first reconcile that sees
#: the old cluster inactive; the delete comes at the 2 s requeue after it), then -- with GCS FT --
#: the old RayCluster's Redis-cleanup finalizer (``raycluster_controller.go``), up to its timeout.
UPGRADE_SETTLE_TIMEOUT_S = 600.0 + 60.0 + RAYCLUSTER_DELETION_DELAY_S + GCS_FT_DELETION_TIMEOUT_S


@dataclass(frozen=True)
class KubeTargetConfig:
    """Where and how the kube target acts.

    ``context``: kubeconfig context (default: the current one); it must be
    ``kind-*`` or listed in ``allowed_contexts``.  ``node_loss_hook``: on a
    non-kind cluster, a command (``{node}`` is replaced) that makes a node
    disappear; without it node loss is refused.

    Where the harness reaches the cluster: on kind, ``host`` and the host ports kind maps
    to the Serve and dashboard NodePorts (kind-config.yaml).  On any other cluster
    ``serve_url`` is required -- the address the Serve Service is reachable at from here
    (a NodePort on a node address, a LoadBalancer, an Ingress): the front door must be
    the Service, and a port-forward reaches one pod, never a Service -- and
    ``dashboard_url`` is optional: without it the dashboard is reached through a
    port-forward to the active head pod, the only pod that serves it.
    """

    context: str | None = None
    allowed_contexts: tuple[str, ...] = ()
    namespace: str = "serve-chaos"
    name: str = "serve-chaos"
    kubeconfig: str | None = None
    node_loss_hook: str | None = None
    serve_host_port: int = 8000
    dashboard_host_port: int = 8265
    host: str = "127.0.0.1"
    ray: KubeRayConfig | None = None
    serve_url: str | None = None
    dashboard_url: str | None = None
    #: Shape settings the user asked for explicitly (``workers``, ``gcs_ft``, ``ray_version``):
    #: a running cluster that differs in one of them is refused; the others are adopted.
    asked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for option, url in (("--serve-url", self.serve_url), ("--dashboard-url", self.dashboard_url)):
            if url is not None and not re.fullmatch(r"https?://[^/\s:]+:\d+/?", url):
                raise ConfigError(f"{option} {url!r} is not an address like http://10.0.0.5:30800",
                                  hint="give the scheme, host and port the Service is reachable at from here")

    def ray_config(self) -> KubeRayConfig:
        base = self.ray or KubeRayConfig()
        return replace(base, namespace=self.namespace, name=self.name)


class ServeRejected(ConfigError):
    """Serve refused a changed config (or could not deploy it): the change is undone."""


class PlacementRefused(InfrastructureError):
    """The Ray pods do not stand one per node: node faults would not mean what they say."""
