"""The Cluster protocol: the only way the engine (``harness/``) touches a cluster.

Both the embedded local cluster (``serve_chaos.runtime.local``) and the KubeRay target
(``serve_chaos.runtime.kuberay``) implement it.  All times are Unix epoch seconds (float)
taken from ``time.time()`` on the machine running the harness, so they line up
with request records and probe snapshots on one timeline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

POD_ROLES = ("head", "worker", "redis")
#: Gray faults a target may inject on a pod for a while; ``Cluster.lift`` ends one of them.
GRAY_FAULTS = ("starve_cpu", "press_memory", "lose_packets", "delay_packets", "slow_process")
#: Load endpoint prefix for "the current pod of this role" (follows a recreated head).
ROLE_ENDPOINT = "role:"
#: Where the GCS keeps its tables when fault tolerance is on: an external Redis, or RocksDB on
#: the head's persistent volume (KubeRay v1.7.0 ``gcsFaultToleranceOptions.backend``, alpha).
GCS_BACKENDS = ("redis", "rocksdb")
#: What accepts HTTP on each node: Serve's Python proxy actor, or the HAProxy Serve runs per node
#: (Ray 2.60 ``RAY_SERVE_ENABLE_HA_PROXY=1``; ``serve/_private/haproxy.py`` HAProxyManager).
INGRESSES = ("proxy", "haproxy")


@dataclass(frozen=True)
class RayOptions:
    """How the Ray pods run: GCS fault tolerance and its backend, and Serve's ingress.

    ``None``: as the cluster was created (the run's ``--gcs-backend`` / ``--ingress``)."""

    gcs_ft: bool = True
    gcs_backend: str | None = None
    ingress: str | None = None

    def __post_init__(self) -> None:
        if self.gcs_backend not in (None, *GCS_BACKENDS):
            raise ValueError(f"gcs_backend {self.gcs_backend!r} is not one of {', '.join(GCS_BACKENDS)}")
        if self.ingress not in (None, *INGRESSES):
            raise ValueError(f"ingress {self.ingress!r} is not one of {', '.join(INGRESSES)}")

    def resolved(self, settings: dict[str, Any]) -> "RayOptions":
        """Every None filled in from what the cluster was created with (``settings()``'s ``base_*``)."""
        return RayOptions(self.gcs_ft, self.gcs_backend or settings.get("base_gcs_backend") or "redis",
                          self.ingress or settings.get("base_ingress") or "proxy")

    def differs(self, settings: dict[str, Any]) -> bool:
        """Whether a cluster with these ``settings()`` must restart its Ray pods to run so."""
        want = self.resolved(settings)
        have = (bool(settings.get("gcs_ft")), settings.get("gcs_backend") or "redis",
                settings.get("ingress") or "proxy")
        # Without GCS FT the backend is moot.
        return (want.gcs_ft, want.gcs_backend if want.gcs_ft else have[1], want.ingress) != have


@dataclass(frozen=True)
class PodInfo:
    """One pod incarnation as the cluster sees it now.

    ``uid`` changes when the pod is recreated (a Kubernetes pod UID);
    ``restarts`` counts container restarts in place (same UID, as the kubelet
    restarts a crashed container).  ``incarnation`` tells them all apart.
    """

    name: str
    role: str
    node: str
    ip: str
    phase: str  # Pending | Running | Terminating | Failed | Lost
    ready: bool  # passes the front door's readiness check (/-/healthz)
    uid: str
    restarts: int
    pid: int | None = None
    started_at: float | None = None
    partitioned: bool = False
    #: The pod's memory limit (bytes; a container's ``resources.limits.memory``), None if unlimited.
    memory_limit: int | None = None

    @property
    def incarnation(self) -> str:
        return incarnation(self.uid, self.restarts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def incarnation(uid: str, restarts: int | None) -> str:
    """One life of a pod: a new UID (recreated) or a restart in place (same UID) starts a new one."""
    return f"{uid}#{restarts or 0}"


@dataclass(frozen=True)
class NodeInfo:
    """A failure domain: losing it loses every pod on it."""

    name: str
    state: str  # Ready | Lost
    pods: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Endpoints:
    """Where to reach the cluster from the harness.

    ``front_door`` is the stable, load-balanced Serve address (a Kubernetes
    Service analogue); ``pods`` maps a pod name to its own Serve proxy address
    (like ``kubectl port-forward`` to that pod); ``roles`` maps a role to an
    address that always reaches the *current* pod of that role (the head on
    KubeRay gets a new name when it is recreated).  ``forwarded``: ``pods`` and ``roles``
    are reached through a port-forward, where every new connection is a websocket setup
    through the API server -- the load keeps its connections to them alive.
    """

    front_door: str
    dashboard: str
    pods: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    forwarded: bool = False


@dataclass(frozen=True)
class Capabilities:
    """Which faults a target can perform; scenarios skip with a reason otherwise."""

    kill_pod: bool = True
    kill_node: bool = False
    partition_pod: bool = False
    kill_actor: bool = True
    #: SIGSTOP / SIGCONT one process of a pod (a hung replica).
    signal_process: bool = True
    #: SIGKILL a pod's processes of one name (a Ray process crashing: ``gcs_server``).
    kill_process: bool = True
    kill_redis: bool = False
    switch_gcs_ft: bool = False
    #: GCS fault tolerance on RocksDB in the head's own volume instead of Redis.
    gcs_rocksdb: bool = False
    #: Serve's HAProxy ingress on every node instead of its Python proxies.
    serve_haproxy: bool = False
    direct_pod_endpoints: bool = True
    #: An operator's change of the Serve config under load (in-place update, rolling update, scale-down).
    update_serve_config: bool = True
    #: Ray's drain API on a node (``ray drain-node``, what the autoscaler uses before a preemption).
    drain_node: bool = False
    #: Gray faults of one pod: CPU starved, memory pressed, packets lost or delayed.
    starve_cpu: bool = False
    press_memory: bool = False
    lose_packets: bool = False
    delay_packets: bool = False
    #: One process stopped and continued on a duty cycle (a slow replica).
    slow_process: bool = False
    #: A change of the Ray cluster's spec that makes the operator roll a new cluster
    #: under the same Serve Service (a RayService zero-downtime upgrade).
    upgrade_cluster: bool = False
    #: How long (s) the target may need to settle after a restart of its Ray cluster.
    ready_timeout_s: float = 120.0
    reasons: dict[str, str] = field(default_factory=dict)

    def why_not(self, capability: str) -> str:
        return self.reasons.get(capability, f"this target cannot {capability.replace('_', ' ')}")


@dataclass(frozen=True)
class ActionRecord:
    """What an operation on the cluster did, with its start and end (epoch s)."""

    action: str
    target: str
    t_start: float
    t_end: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClusterStatus:
    """A point-in-time description of a cluster for people (``serve-chaos status``).

    ``mode`` is how pods are isolated (netns / loopback) or the kube context.
    """

    target: str
    label: str
    mode: str
    gcs_ft: bool
    front_door: str
    dashboard: str
    pods: tuple[PodInfo, ...]
    nodes: tuple[NodeInfo, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Cluster(Protocol):
    """Operations the engine may use.  Every method may raise ``ServeChaosError``.

    ``name`` is the target (``local``, ``kind``, ``kube``); ``label`` names this
    cluster instance (a run label locally, the context on Kubernetes) and marks
    the processes the harness starts for it; ``created`` says whether this
    object created the cluster (only then may ``down`` remove it).
    """

    name: str
    label: str | None
    created: bool

    @property
    def capabilities(self) -> Capabilities: ...

    def up(self) -> None:
        """Create the cluster (or attach to one this tool already runs)."""

    def attach(self) -> bool:
        """Find a running cluster of this tool; True when there is one (nothing is created)."""

    def down(self, force: bool = False) -> None:
        """Remove everything this tool created for the cluster.  Refused while another
        harness holds the run lock, unless ``force`` (that run then ends as interrupted)."""

    def lock(self, command: str) -> None:
        """Take the run lock for this harness (one run per cluster); refused, in one line naming
        the holder, while another live harness holds it."""

    def unlock(self) -> None:
        """Give the run lock back."""

    def interference(self) -> list[str]:
        """What keeps the cluster from being this harness's alone: faults in effect, partitioned
        or frozen pods, another harness's load or lock.  Empty when there is nothing."""

    def lost(self) -> str | None:
        """Why the cluster went away under this harness (taken down, its supervisor killed), or None."""

    def pods(self) -> list[PodInfo]: ...

    def nodes(self) -> list[NodeInfo]: ...

    def endpoints(self) -> Endpoints: ...

    def settings(self) -> dict[str, Any]:
        """Ray settings that shape recovery (GCS FT, reconnect timeouts, ...)."""

    def serve_config(self) -> dict[str, Any]:
        """The Serve config the operator keeps applied."""

    def apply_serve_config(self, config: dict[str, Any], replace: bool = False) -> ActionRecord:
        """Make ``config`` the desired Serve config and apply it now; ``replace`` deletes
        the apps first and deploys afresh (setup between scenarios, not a measured rollout)."""

    def status(self) -> ClusterStatus:
        """What ``serve-chaos status`` shows: pods, nodes, GCS FT and addresses."""

    def kill_pod(self, pod: str, graceful: bool = True, grace_period_s: float = 30.0,
                 down_for_s: float | None = None) -> ActionRecord:
        """Delete a pod like ``kubectl delete pod`` (graceful) or SIGKILL it (not graceful).

        ``down_for_s`` (Redis only): keep it away that long (s) before it may return."""

    def kill_node(self, node: str, replacement_delay_s: float = 10.0) -> ActionRecord:
        """Lose a node abruptly: cut its network, SIGKILL its pods, replace it after a delay."""

    def partition_pod(self, pod: str, reject: bool = False) -> ActionRecord:
        """Silently drop every packet to and from a pod (its processes keep running); with
        ``reject``, refuse them instead (TCP resets, ICMP unreachable): a connection error at
        once, not a timeout."""

    def unpartition_pod(self, pod: str) -> ActionRecord:
        """Lift a partition made by ``partition_pod``."""

    def kill_actor(self, actor_name: str | list[str], namespace: str, no_restart: bool,
                   ignore_missing: bool = False) -> ActionRecord:
        """``ray.kill`` named actors (one or several) from a driver inside the head pod, as the guide does."""

    def signal_process(self, pod: str, pid: int, signal: str) -> ActionRecord:
        """Send ``STOP`` or ``CONT`` to process ``pid`` (as the pod sees it) of ``pod``, like
        ``kubectl exec <pod> -- kill -STOP <pid>``: a stopped process is a hung one.  A
        ``STOP`` stays in effect (leased to this harness) until ``CONT`` or ``heal``."""

    def kill_process(self, pod: str, name: str) -> ActionRecord:
        """SIGKILL the processes of ``pod`` whose command name (``/proc/<pid>/comm``) is ``name``
        -- found among the pod's own processes, killed by PID -- like ``kubectl exec <pod> -- kill
        -9 <pid>``: a crash of that process (``details['pids']``).  No such process: ServeChaosError."""

    def update_serve_config(self, config: dict[str, Any], change: str) -> ActionRecord:
        """An operator's change under load (a planned disruption): make ``config`` the desired
        Serve config and let the operator apply it the way it always does (no delete first),
        so Serve rolls it out.  Leased to this harness; ``heal`` (or the next command, if this
        harness died) restores the config that was desired before the first such change.
        ``change`` says what changed, for the record.  A config Serve rejects is a one-line
        ServeChaosError and changes nothing."""

    def drain_node(self, pod: str, reason: str, deadline_s: float, message: str) -> ActionRecord:
        """Ask Ray to drain the Ray node of ``pod`` (``GcsClient.drain_node``, what the
        autoscaler calls; ``ray drain-node`` in the head pod), telling it the node is killed
        ``deadline_s`` seconds from now.  Nothing is killed here.  A drain Ray refuses is a
        ServeChaosError carrying Ray's reason.  A drain cannot be undone: ``heal`` replaces a
        drained pod that is still there."""

    def starve_cpu(self, pod: str, cpu_share: float, duration_s: float) -> ActionRecord:
        """Leave ``pod`` at most ``cpu_share`` of one core (0.05: 5 %) for ``duration_s``
        seconds or until ``lift``/``heal``.  Leased."""

    def press_memory(self, pod: str, size_bytes: int, rate_bytes_s: float, duration_s: float) -> ActionRecord:
        """Run a memory hog in ``pod`` that allocates (and touches) ``size_bytes`` at
        ``rate_bytes_s`` and holds it for ``duration_s`` seconds or until ``lift``/``heal``:
        the pod's own memory limit and Ray's memory monitor decide what dies.  Leased."""

    def lose_packets(self, pod: str, percent: float, duration_s: float) -> ActionRecord:
        """Drop ``percent`` % of ``pod``'s packets at random, in and out, silently, for
        ``duration_s`` seconds or until ``lift``/``heal``.  Leased."""

    def delay_packets(self, pod: str, delay_ms: float, jitter_ms: float, duration_s: float) -> ActionRecord:
        """Delay ``pod``'s packets by ``delay_ms`` +- ``jitter_ms`` milliseconds for
        ``duration_s`` seconds or until ``lift``/``heal``.  Leased."""

    def slow_process(self, pod: str, pid: int, stopped_ms: float, period_ms: float,
                     duration_s: float) -> ActionRecord:
        """Stop process ``pid`` of ``pod`` for ``stopped_ms`` of every ``period_ms``
        milliseconds (SIGSTOP / SIGCONT) for ``duration_s`` seconds or until ``lift``/``heal``,
        which leave it running.  Leased."""

    def lift(self, fault: str, pod: str) -> ActionRecord:
        """End one gray fault (``starve_cpu``, ``press_memory``, ``lose_packets``,
        ``delay_packets``, ``slow_process``) on ``pod`` now.  ``details`` say what it did
        while it lasted (throttled periods, packets dropped, what was OOM-killed, cycles),
        so the fault can verify it took effect."""

    def upgrade_cluster(self, change: dict[str, Any]) -> ActionRecord:
        """Change the Ray cluster's spec (``change``: pod template env, labels or image) so the
        operator brings up a new cluster beside the old one, switches the Serve Service to it
        once its Serve is ready, and deletes the old one after its delay (KubeRay's
        zero-downtime RayService upgrade).  Leased; the new spec stays (nothing to restore)."""

    def set_ray_options(self, options: RayOptions, serve_config: dict[str, Any] | None = None) -> ActionRecord:
        """Run the Ray pods with ``options`` (GCS FT on or off, its backend, Serve's ingress; restarts
        the cluster's Ray processes); the restarted cluster deploys ``serve_config`` if given."""

    def heal(self) -> list[ActionRecord]:
        """Undo every fault still in effect (partitions, lost nodes, stopped Redis, frozen or
        slowed processes, gray faults, a changed Serve config)."""

    def events(self, since: float = 0.0) -> list[dict[str, Any]]:
        """What the operator side did (pod starts, crashes, config re-applies) since ``since``."""

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until every pod is Running and Ready and the Serve app is RUNNING.

        ``timeout_s`` None: the target's own default (a new RayCluster on Kubernetes
        takes minutes where a local pod takes seconds)."""
