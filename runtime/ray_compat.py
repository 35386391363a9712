"""What differs between the supported Ray releases (2.40.0..2.60.0), handled here and nowhere else.

Read from the installed sources of Ray 2.40.0, 2.50.0 and 2.60.0 (``site-packages/ray``)
and checked against fixtures derived from them (``tests/fixtures/ray-<version>/``,
``tools/derive_ray_fixtures.py``; ``tools/record_ray_api.py`` records the same files from a
live cluster).  What is the same in all three is not repeated here: the Serve REST fields
the harness reads other than the topology (replicas' ``actor_id``/``replica_id``/``state``/
``pid``/``node_id``/``log_file_path``, ``proxies``, ``controller_info``), the State API's
actor and node fields and envelope, the replica actor names (``SERVE_REPLICA::app#dep#id``)
and classes (``ServeReplica:app:dep``, ``ProxyActor`` with ``max_restarts=0``,
``ServeController``), ``ray drain-node``'s options, Serve's and the GCS's health-check
defaults, and the env names KubeRay sets.

Where a difference shows in a response (a field present or not) it is judged from the
response, so a release between two tested ones is handled by what it sends.  Where it
cannot be seen (an env var a release reads or ignores, schema keys a release rejects), it
is keyed by version: a feature counts from the first tested release that has it, and a
release between two tested ones is treated like the older one until it is recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import requests

from serve_chaos.runtime.ray_versions import TESTED_RAY_VERSIONS, version_key

# ---------------------------------------------------------------------- features keyed by version
#: First tested release with each feature (None: every supported release has it).
#: ``worker_proxy_port_env``: ``RAY_SERVE_WORKER_PROXY_HTTP_PORT`` gives a worker's proxy its own
#: port (``serve/_private/constants.py``, ``proxy.apply_per_node_port_overrides``): in 2.60.0,
#: not in 2.50.0.  Without it, proxies on one host share port 8000 (SO_REUSEPORT) or collide.
FEATURE_SINCE: dict[str, str | None] = {
    "worker_proxy_port_env": "2.60.0",
    # ``deployment_topology`` in GET /api/serve/applications/ (serve/schema.py ApplicationDetails).
    "serve_topology": "2.60.0",
    # "(PID: n)" at the end of the controller's "started successfully" line (deployment_state.py).
    "replica_start_pid": "2.50.0",
    # ``ray drain-node`` (hidden CLI, scripts/scripts.py): 2.40.0 has it, with --node-id required
    # until 2.60.0 (we always pass it).
    "drain_node_cli": None,
    # ``RAY_gcs_storage=rocksdb`` (``_private/node.py`` ``_is_rocksdb_gcs``): in the 2.57.0 wheel, not
    # in 2.56.1 (read in the cached wheels; run here on 2.60.0 only).
    "gcs_rocksdb": "2.57.0",
    # ``RAY_SERVE_ENABLE_HA_PROXY`` (``serve/_private/constants.py``): in the 2.55.0 wheel, not in
    # 2.54.1 (read in the cached wheels; run here on 2.60.0 only).
    "serve_haproxy": "2.55.0",
}


@dataclass(frozen=True)
class RayFeatures:
    """What one Ray release offers of the features that differ (see ``FEATURE_SINCE``)."""

    version: str
    worker_proxy_port_env: str | None
    serve_topology: bool
    replica_start_pid: bool
    drain_node_cli: bool
    gcs_rocksdb: bool = False
    serve_haproxy: bool = False


def has_feature(version: str, feature: str) -> bool:
    since = FEATURE_SINCE[feature]
    return since is None or version_key(version) >= version_key(since)


def features(version: str) -> RayFeatures:
    return RayFeatures(
        version=version,
        worker_proxy_port_env="RAY_SERVE_WORKER_PROXY_HTTP_PORT" if has_feature(version, "worker_proxy_port_env")
        else None,
        serve_topology=has_feature(version, "serve_topology"),
        replica_start_pid=has_feature(version, "replica_start_pid"),
        drain_node_cli=has_feature(version, "drain_node_cli"),
        gcs_rocksdb=has_feature(version, "gcs_rocksdb"),
        serve_haproxy=has_feature(version, "serve_haproxy"),
    )


# ---------------------------------------------------------------------- Serve config schema
#: Serve config keys that not every supported release accepts, by where they sit and the
#: tested releases that have them (``ServeDeploySchema`` and friends in serve/schema.py, all
#: ``extra=forbid``: an unknown key is a 400 from the REST API or DEPLOY_FAILED).
_SINCE_250 = ("2.50.0", "2.60.0")
_SINCE_260 = ("2.60.0",)
SERVE_CONFIG_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("config", "controller_options"): _SINCE_260,
    ("config", "tracing_config"): _SINCE_260,
    ("application", "autoscaling_policy"): _SINCE_260,
    ("application", "external_scaler_enabled"): _SINCE_260,
    ("deployment", "request_router_config"): _SINCE_250,
    ("deployment", "backpressure_config"): _SINCE_260,
    ("deployment", "deployment_actors"): _SINCE_260,
    ("deployment", "gang_scheduling_config"): _SINCE_260,
    ("deployment", "max_surge_percent"): _SINCE_260,
    ("deployment", "placement_group_bundle_label_selector"): _SINCE_260,
    ("deployment", "rolling_update_percentage"): _SINCE_260,
    ("http_options", "ssl_ca_certs"): _SINCE_250,
    ("http_options", "ssl_certfile"): _SINCE_250,
    ("http_options", "ssl_keyfile"): _SINCE_250,
    ("http_options", "ssl_keyfile_password"): _SINCE_250,
    ("grpc_options", "request_timeout_s"): _SINCE_250,
    ("grpc_options", "enable_reflection"): _SINCE_260,
    ("logging_config", "additional_log_standard_attrs"): _SINCE_250,
    ("ray_actor_options", "fallback_strategy"): _SINCE_260,
    ("ray_actor_options", "label_selector"): _SINCE_260,
}


def lacks_key(version: str, where: str, key: str) -> bool:
    """Whether ``version`` is known to reject ``key`` at ``where``: it is at or below a tested
    release that lacks it.  Between a release that lacks it and one that has it we do not
    know, and Serve's own validation decides."""
    have = SERVE_CONFIG_KEYS.get((where, key))
    if have is None:
        return False
    lacking = [v for v in TESTED_RAY_VERSIONS if v not in have]
    return any(version_key(version) <= version_key(v) for v in lacking)


def _keys_in(config: dict[str, Any]) -> Iterable[tuple[str, str, str]]:
    """``(where, key, path)`` for every key of a Serve config where keys differ by release."""
    for key in config:
        yield "config", key, key
    for section in ("http_options", "grpc_options", "logging_config"):
        for key in config.get(section) or {}:
            yield section, key, f"{section}.{key}"
    for app in config.get("applications") or []:
        name = app.get("name", "default")
        for key in app:
            yield "application", key, f"application {name}: {key}"
        for key in app.get("logging_config") or {}:
            yield "logging_config", key, f"application {name}: logging_config.{key}"
        for dep in app.get("deployments") or []:
            where = f"deployment {name}/{dep.get('name')}"
            for key in dep:
                yield "deployment", key, f"{where}: {key}"
            for key in dep.get("ray_actor_options") or {}:
                yield "ray_actor_options", key, f"{where}: ray_actor_options.{key}"
            for key in dep.get("logging_config") or {}:
                yield "logging_config", key, f"{where}: logging_config.{key}"


def unsupported_config_keys(config: dict[str, Any], version: str) -> list[str]:
    """Where ``config`` sets a key Ray ``version``'s Serve schema does not have, one entry each."""
    out = []
    for where, key, path in _keys_in(config):
        if lacks_key(version, where, key):
            first = SERVE_CONFIG_KEYS[(where, key)][0]
            out.append(f"{path} (first in Ray {first})")
    return out


# ---------------------------------------------------------------------- Serve REST API
@dataclass(frozen=True)
class Topology:
    """Which deployment of an application receives HTTP, and which ones others call.
    ``known`` False: the release's REST API does not say (no ``deployment_topology``)."""

    known: bool
    ingress: str | None = None
    downstream: tuple[str, ...] = ()


def app_topology(app: dict[str, Any]) -> Topology:
    """The topology of one application of ``GET /api/serve/applications/``."""
    if "deployment_topology" not in app:
        return Topology(known=False)
    topology = app.get("deployment_topology") or {}
    nodes = topology.get("nodes") or {}
    called = sorted({d.get("name") for node in nodes.values() for d in node.get("outbound_deployments") or []
                     if d.get("name") and d.get("app_name", app.get("name")) == app.get("name")})
    return Topology(known=True, ingress=topology.get("ingress_deployment"), downstream=tuple(called))


# ---------------------------------------------------------------------- logs
#: The dashboard's log API (``dashboard/modules/state/state_head.py``, every supported release).
LOG_FILE_API = "/api/v0/logs/file"
#: 2.40.0 answers in its "leading_1" format unless told otherwise (every chunk prefixed with
#: "1", or "0" and an error, always HTTP 200); ``format=text`` gives the bare text there and
#: is ignored by 2.50.0+, which always send bare text and fail with HTTP 500.
_LOG_ERROR_MARK = "[get_logs] Fetch log error"


class LogUnavailable(RuntimeError):
    """The dashboard could not give a log file's text."""


def log_file_params(node_id: str, filename: str, lines: int) -> dict[str, Any]:
    """Query parameters for the last ``lines`` lines of ``filename`` on ``node_id``."""
    return {"node_id": node_id, "filename": filename.lstrip("/"), "lines": lines, "format": "text"}


def log_text(status_code: int, text: str) -> str:
    """A log API answer's text; LogUnavailable when it is an error in either release's form."""
    if status_code != 200:
        raise LogUnavailable(f"HTTP {status_code}")
    if text.startswith(_LOG_ERROR_MARK):
        raise LogUnavailable(text.splitlines()[0][:200])
    # 2.40.0 appends the error to what it streamed so far: keep the text before it.
    return text.split(_LOG_ERROR_MARK, 1)[0]


#: An access line's message (``logging_utils.access_log_msg``, every supported release):
#: ``METHOD ROUTE STATUS LATENCYms``; 2.60.0 may put the client address before it.  A call
#: through a DeploymentHandle logs ``CALL <method>``, a request from a proxy its HTTP method.
ACCESS_RE = re.compile(r"\b([A-Z]+) (\S+) (\S+) ([0-9]+(?:\.[0-9]+)?)ms\b")


def access_via_http(line: str) -> bool | None:
    """Whether a Serve access line is of a request that came over HTTP (True), through a
    DeploymentHandle (False), or not an access line (None)."""
    match = ACCESS_RE.search(line)
    if match is None:
        return None
    return match.group(1) != "CALL"


#: The controller's line when a replica turned RUNNING (``deployment_state.py``):
#: ``Replica(id='…', deployment='D', app='A') started successfully on node '…' after 12.3s``,
#: followed by `` (PID: 123).`` since 2.50.0 and by ``.`` in 2.40.0.
REPLICA_STARTED_RE = re.compile(
    r"Replica\(id='(?P<id>[^']+)', deployment='(?P<dep>[^']*)', app='(?P<app>[^']*)'\) "
    r"started successfully on node '[^']*' after (?P<s>[0-9.]+)s(?: \(PID: (?P<pid>\d+)\))?")


# ---------------------------------------------------------------------- the running cluster
#: The dashboard's version endpoint (``dashboard/modules/job/job_head.py``): ``{"version",
#: "ray_version", "ray_commit", "session_name"}`` in every supported release.
VERSION_API = "/api/version"


def cluster_ray_version(dashboard: str, timeout_s: float = 3.0) -> str | None:
    """The Ray release a cluster's head runs, from its dashboard; None if it does not answer."""
    try:
        resp = requests.get(dashboard.rstrip("/") + VERSION_API, timeout=timeout_s)
        return str(resp.json()["ray_version"]) if resp.status_code == 200 else None
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def drain_node_args(address: str, node_id: str, reason: str, message: str, deadline_s: int | None) -> list[str]:
    """``ray drain-node`` arguments (after the ``ray`` executable), the same in every supported
    release; ``reason`` is ``DRAIN_NODE_REASON_PREEMPTION`` or ``DRAIN_NODE_REASON_IDLE_TERMINATION``."""
    args = ["drain-node", f"--address={address}", f"--node-id={node_id}", f"--reason={reason}",
            f"--reason-message={message}"]
    if deadline_s is not None:
        args.append(f"--deadline-remaining-seconds={int(deadline_s)}")
    return args
