"""Fixtures of one Ray release's APIs, derived from its installed source -- no cluster is started.

Run with the Python of the release's environment (nothing of this project is imported)::

    ~/.cache/serve-chaos/ray-2.50.0/bin/python tools/derive_ray_fixtures.py tests/fixtures/ray-2.50.0

It builds what a three-node cluster (a head and two workers, the ``sleepy`` app and the
``composed`` app whose ``Ingress`` calls ``Downstream``) would answer, with that release's
own classes and functions, the way its dashboard and Serve build them:

- ``serve_applications.json``: ``GET /api/serve/applications/``: ``ServeInstanceDetails``
  dumped with ``_get_user_facing_json_serializable_dict(exclude_unset=True)`` (controller.py);
- ``actors.json`` / ``nodes.json``: the State API's list answers: the ``rest_response``
  envelope around ``ListApiResponse`` of ``ActorState`` / ``NodeState`` (util/state/common.py);
- ``version.json``: ``GET /api/version`` (``VersionResponse``, dashboard/modules/version.py);
- ``controller.log`` and ``replica_*.log``: lines formatted by that release's ``ServeFormatter``;
  access messages by its ``access_log_msg``, the controller's "started successfully" message
  by the f-string read out of its ``deployment_state.py``;
- ``facts.json``: Serve's and the GCS's defaults that bounds rest on, the env vars it reads,
  ``ray drain-node``'s options (from ``ray drain-node --help``), the Serve config schema's keys.

``source.json`` says all this was derived, not recorded; ``tools/record_ray_api.py`` writes
the same files from a live cluster (and says so), and the tests read either.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

warnings.simplefilter("ignore")

import ray  # noqa: E402
from ray.serve import schema  # noqa: E402
from ray.serve._private import common, constants, logging_utils  # noqa: E402
from ray.util.state import common as state_common  # noqa: E402

VERSION = ray.__version__
T0 = 1795950000.0

HEAD = SimpleNamespace(id="a1" * 28, ip="198.18.0.10", pod="head")
W1 = SimpleNamespace(id="b2" * 28, ip="198.18.0.20", pod="worker-1")
W2 = SimpleNamespace(id="c3" * 28, ip="198.18.0.21", pod="worker-2")
NODES = (HEAD, W1, W2)


def actor_id(n: int) -> str:
    return f"{n:08x}" * 4


def kw(cls: Any, **values: Any) -> Any:
    """``cls(**values)`` with only the fields this release's ``cls`` has."""
    fields = getattr(cls, "model_fields", None) or getattr(cls, "__fields__", None)
    if fields is None and dataclasses.is_dataclass(cls):
        fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in fields})


def has_field(cls: Any, name: str) -> bool:
    return name in (getattr(cls, "model_fields", None) or getattr(cls, "__fields__", {}))


# ---------------------------------------------------------------------- the cluster described
REPLICAS = [
    # app, deployment, unique id, node, pid, actor n
    ("sleepy", "SleepyPid", "k3x9q2ab", W1, 4101, 11),
    ("sleepy", "SleepyPid", "m7c4d1ef", W2, 4201, 12),
    ("composed", "Ingress", "p2v8n6gh", HEAD, 3301, 13),
    ("composed", "Downstream", "r5t1w3ij", W1, 4102, 14),
]
COMPOSED = {"Ingress": ["Downstream"], "Downstream": []}


def replica_log_path(app: str, dep: str, uid: str) -> str:
    from ray.serve._private.utils import get_component_file_name

    name = get_component_file_name(f"{app}_{dep}", uid, common.ServeComponentType.REPLICA, suffix=".log")
    return f"/serve/{name}"


def replica_details(app: str, dep: str, uid: str, node: Any, pid: int, n: int) -> Any:
    rid = common.ReplicaID(uid, common.DeploymentID(name=dep, app_name=app))
    return kw(schema.ReplicaDetails, node_id=node.id, node_ip=node.ip, node_instance_id=node.pod,
              actor_id=actor_id(n), actor_name=rid.to_full_id_str(), worker_id="e5" * 28,
              log_file_path=replica_log_path(app, dep, uid), replica_id=uid,
              state=common.ReplicaState.RUNNING, pid=pid, start_time_s=T0 + 30)


def deployment_details(app: str, dep: str) -> Any:
    replicas = [replica_details(*r) for r in REPLICAS if r[0] == app and r[1] == dep]
    config = kw(schema.DeploymentSchema, name=dep, num_replicas=len(replicas),
                ray_actor_options={"num_cpus": 0})
    return kw(schema.DeploymentDetails, name=dep, status=common.DeploymentStatus.HEALTHY,
              status_trigger=common.DeploymentStatusTrigger.CONFIG_UPDATE_COMPLETED, message="",
              deployment_config=config, target_num_replicas=len(replicas), required_resources={"CPU": 0},
              replicas=replicas, recent_dead_replicas=[])


def topology(app: str, deployments: list[str]) -> Any:
    ingress = deployments[-1] if app == "sleepy" else "Ingress"
    nodes = {d: kw(schema.DeploymentNode, name=d, app_name=app, is_ingress=d == ingress,
                   outbound_deployments=[{"name": o, "app_name": app} for o in COMPOSED.get(d, [])]
                   if app == "composed" else [])
             for d in deployments}
    return kw(schema.DeploymentTopology, app_name=app, nodes=nodes, ingress_deployment=ingress)


def application(app: str, import_path: str, deployments: list[str]) -> Any:
    config = kw(schema.ServeApplicationSchema, name=app, route_prefix=f"/{app}" if app == "composed" else "/",
                import_path=import_path,
                deployments=[{"name": d, "num_replicas": sum(1 for r in REPLICAS if r[:2] == (app, d))}
                             for d in deployments])
    values = dict(name=app, route_prefix=config.route_prefix, docs_path=None, status=schema.ApplicationStatus.RUNNING,
                  message="", last_deployed_time_s=T0 + 20, deployed_app_config=config,
                  source=schema.APIType.DECLARATIVE, deployments={d: deployment_details(app, d) for d in deployments},
                  external_scaler_enabled=False)
    if has_field(schema.ApplicationDetails, "deployment_topology"):
        values["deployment_topology"] = topology(app, deployments)
    return kw(schema.ApplicationDetails, **values)


def serve_details() -> dict[str, Any]:
    controller = kw(schema.ServeActorDetails, node_id=HEAD.id, node_ip=HEAD.ip, actor_id=actor_id(1),
                    actor_name=constants.SERVE_CONTROLLER_NAME, worker_id="f6" * 28,
                    log_file_path="/serve/controller_2901.log")
    proxies = {node.id: kw(schema.ProxyDetails, node_id=node.id, node_ip=node.ip, node_instance_id=node.pod,
                           actor_id=actor_id(2 + i), actor_name=f"{constants.SERVE_PROXY_NAME}-{node.id}",
                           worker_id="d4" * 28, log_file_path=f"/serve/proxy_{node.ip}.log",
                           status=schema.ProxyStatus.HEALTHY)
               for i, node in enumerate(NODES)}
    values = dict(target_capacity=None, controller_info=controller, proxy_location=schema.ProxyLocation.EveryNode,
                  http_options=schema.HTTPOptionsSchema(host="0.0.0.0", port=8000),
                  grpc_options=schema.gRPCOptionsSchema(), proxies=proxies,
                  applications={"sleepy": application("sleepy", "serve_chaos.runtime.app.sleepy_pid:app", ["SleepyPid"]),
                                "composed": application("composed", "serve_chaos.runtime.app.composed:app",
                                                        ["Downstream", "Ingress"])},
                  target_groups=[], restores_unset_config_options=True)
    if has_field(schema.ServeInstanceDetails, "deploy_mode"):
        values["deploy_mode"] = schema.ServeDeployMode.MULTI_APP
    details = kw(schema.ServeInstanceDetails, **values)
    return details._get_user_facing_json_serializable_dict(exclude_unset=True)


# ---------------------------------------------------------------------- State API
def envelope(items: list[Any]) -> dict[str, Any]:
    """The dashboard's ``rest_response(success=True, message="", result=asdict(ListApiResponse))``."""
    listed = kw(state_common.ListApiResponse, total=len(items), num_after_truncation=len(items),
                num_filtered=len(items), result=items, partial_failure_warning="", warnings=None)
    return {"result": True, "msg": "", "data": {"result": dataclasses.asdict(listed)}}


def actor_state(n: int, class_name: str, name: str, node: Any, pid: int) -> dict[str, Any]:
    values = {f.name: None for f in dataclasses.fields(state_common.ActorState)}
    values.update(actor_id=actor_id(n), class_name=class_name, state="ALIVE", job_id="01000000", name=name,
                  node_id=node.id, pid=pid, ray_namespace="serve", is_detached=True, repr_name="",
                  num_restarts="0", num_restarts_due_to_lineage_reconstruction="0",
                  num_restarts_due_to_node_preemption="0", required_resources={}, death_cause=None)
    return dataclasses.asdict(state_common.ActorState(**values))


def actors() -> dict[str, Any]:
    items = [actor_state(1, "ServeController", constants.SERVE_CONTROLLER_NAME, HEAD, 2901)]
    items += [actor_state(2 + i, "ProxyActor", f"{constants.SERVE_PROXY_NAME}-{node.id}", node, 2902 + i)
              for i, node in enumerate(NODES)]
    for app, dep, uid, node, pid, n in REPLICAS:
        did = common.DeploymentID(name=dep, app_name=app)
        name = common.ReplicaID(uid, did).to_full_id_str()
        items.append(actor_state(n, did.to_replica_actor_class_name(), name, node, pid))
    return envelope(items)


def nodes() -> dict[str, Any]:
    items = []
    for node in NODES:
        values = {f.name: None for f in dataclasses.fields(state_common.NodeState)}
        values.update(node_id=node.id, node_ip=node.ip, is_head_node=node is HEAD, state="ALIVE", state_message=None,
                      node_name=node.ip, resources_total={"CPU": 1.0}, labels={}, start_time_ms=int(T0 * 1000),
                      end_time_ms=0)
        items.append(dataclasses.asdict(state_common.NodeState(**values)))
    return envelope(items)


def version() -> dict[str, Any]:
    from ray.dashboard.modules.version import CURRENT_VERSION, VersionResponse

    return dataclasses.asdict(VersionResponse(version=CURRENT_VERSION, ray_version=ray.__version__,
                                              ray_commit=ray.__commit__, session_name="session_fixture"))


# ---------------------------------------------------------------------- logs
def formatted(component: str, component_id: str, message: str, request_id: str | None = None,
              t: float = T0, filename: str = "replica.py", lineno: int = 400) -> str:
    record = logging.LogRecord("ray.serve", logging.INFO, filename, lineno, message, None, None)
    record.created = t
    record.msecs = 0
    if request_id is not None:
        record.request_id = request_id
    return logging_utils.ServeFormatter(component, component_id).format(record)


def started_message() -> str:
    """The controller's f-string for a replica that turned RUNNING, as this release writes it."""
    from ray.serve._private import deployment_state

    source = Path(deployment_state.__file__).read_text()
    block = re.search(r"replica_startup_message = \((.*?)\n\s*\)", source, re.S)
    assert block is not None, "the startup message moved; read deployment_state.py again"
    return "".join(re.findall(r'f"((?:[^"\\]|\\.)*)"', block.group(1)))


def controller_log() -> str:
    template = started_message()
    lines = []
    for i, (app, dep, uid, node, pid, n) in enumerate(REPLICAS):
        replica = SimpleNamespace(replica_id=common.ReplicaID(uid, common.DeploymentID(name=dep, app_name=app)),
                                  actor_node_id=node.id, actor_pid=pid)
        message = template.format(replica=replica, e2e_replica_start_latency=10.4 + i)
        lines.append(formatted("controller", "2901", message, t=T0 + 30 + i, filename="deployment_state.py"))
    return "\n".join(lines) + "\n"


def access(method: str, route: str, status: str, latency_ms: float) -> str:
    return logging_utils.access_log_msg(method=method, route=route, status=status, latency_ms=latency_ms)


def replica_logs() -> dict[str, str]:
    """Access lines of request ``scfx01-7`` (through the composed app) and ``scfx01-8`` (sleepy)."""
    out: dict[str, str] = {}
    for app, dep, uid, node, pid, n in REPLICAS:
        # A replica logs as "<app>_<deployment> <replica id>" (replica.py ``_component_name``).
        me = f"{app}_{dep}"
        lines = [formatted(me, uid, "Started initializing replica.", t=T0 + 20)]
        if (app, dep) == ("composed", "Ingress"):
            lines.append(formatted(me, uid, access("GET", "/composed", "200", 12.5), "scfx01-7", T0 + 60))
        if (app, dep) == ("composed", "Downstream"):
            lines.append(formatted(me, uid, access("CALL", "__call__", "OK", 3.1), "scfx01-7", T0 + 60))
        if (app, dep, uid) == ("sleepy", "SleepyPid", "k3x9q2ab"):
            lines.append(formatted(me, uid, access("GET", "/", "200", 1.2), "scfx01-8", T0 + 61))
        out[replica_log_path(app, dep, uid).rsplit("/", 1)[1]] = "\n".join(lines) + "\n"
    return out


# ---------------------------------------------------------------------- facts
def schema_keys() -> dict[str, list[str]]:
    out = {}
    for name in ("ServeDeploySchema", "ServeApplicationSchema", "DeploymentSchema", "HTTPOptionsSchema",
                 "gRPCOptionsSchema", "LoggingConfig", "RayActorOptionsSchema"):
        cls = getattr(schema, name)
        out[name] = sorted(getattr(cls, "model_fields", None) or getattr(cls, "__fields__"))
    return out


def drain_node_options() -> list[str]:
    ray_bin = str(Path(sys.executable).parent / "ray")
    proc = subprocess.run([ray_bin, "drain-node", "--help"], capture_output=True, text=True, timeout=120)
    return sorted(set(re.findall(r"(--[a-z][a-z-]+)", proc.stdout))) if proc.returncode == 0 else []


def facts() -> dict[str, Any]:
    from ray._raylet import Config

    node_checks = {k: getattr(Config, k)() for k in ("health_check_initial_delay_ms", "health_check_period_ms",
                                                       "health_check_timeout_ms", "health_check_failure_threshold")}
    source = Path(constants.__file__).read_text()
    proxy_source = Path(logging_utils.__file__).parent.joinpath("proxy.py").read_text()
    return {
        "ray_version": VERSION,
        "serve": {k: getattr(constants, k) for k in (
            "DEFAULT_HEALTH_CHECK_PERIOD_S", "DEFAULT_HEALTH_CHECK_TIMEOUT_S", "DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S",
            "DEFAULT_GRACEFUL_SHUTDOWN_WAIT_LOOP_S", "REPLICA_HEALTH_CHECK_UNHEALTHY_THRESHOLD",
            "PROXY_HEALTH_CHECK_PERIOD_S", "PROXY_HEALTH_CHECK_TIMEOUT_S", "PROXY_HEALTH_CHECK_UNHEALTHY_THRESHOLD",
            "SERVE_CONTROLLER_NAME", "SERVE_PROXY_NAME")},
        "gcs_node_health_check": node_checks,
        "env_read": {name: name in source or name in proxy_source for name in (
            "RAY_SERVE_WORKER_PROXY_HTTP_PORT", "SERVE_SOCKET_REUSE_PORT_ENABLED", "RAY_SERVE_KV_TIMEOUT_S")},
        "replica_actor_name_prefix": common.REPLICA_ID_FULL_ID_STR_PREFIX,
        "proxy_max_restarts_0": "max_restarts=0" in Path(logging_utils.__file__).parent.joinpath(
            "proxy_state.py").read_text(),
        "drain_node_options": drain_node_options(),
        "serve_schema_keys": schema_keys(),
    }


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"serve_applications.json": serve_details(), "actors.json": actors(),
                             "nodes.json": nodes(), "version.json": version(), "facts.json": facts()}
    for name, data in files.items():
        (out / name).write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    (out / "controller.log").write_text(controller_log())
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    for name, text in replica_logs().items():
        (logs / name).write_text(text)
    (out / "source.json").write_text(json.dumps({
        "ray_version": VERSION, "kind": "derived",
        "how": "built by tools/derive_ray_fixtures.py with this release's own classes and formatters from its "
               "installed package; no cluster ran. Replace with tools/record_ray_api.py from a live cluster.",
    }, indent=1) + "\n")
    print(f"wrote {len(files) + 2 + len(list(logs.iterdir()))} files for Ray {VERSION} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
