"""What differs between Ray 2.40.0, 2.50.0 and 2.60.0, judged on each release's API answers.

The answers live in ``tests/fixtures/ray-<version>/``.  Until the lead records them from live
clusters (``tools/record_ray_api.py``), they are derived from each release's own classes and
formatters (``tools/derive_ray_fixtures.py``; ``source.json`` says which).  The tests hold for
either: they check what the harness reads out of the answers, not the values we made up.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from serve_chaos.harness.checks.steady import proxy_reach_problems
from serve_chaos.harness.faults.base import DOWNSTREAM, NoSuchDeployment, aimed
from serve_chaos.harness.observe.probe import build_snapshot, replica_name_parts
from serve_chaos.harness.load.servedby import access_entries, downstream_map, served_by_map
from serve_chaos.harness.observe.startup import start_times
from serve_chaos.runtime.ray_compat import (FEATURE_SINCE, SERVE_CONFIG_KEYS, LogUnavailable, cluster_ray_version,
                                drain_node_args, features, lacks_key, log_text, unsupported_config_keys)
from serve_chaos.runtime.ray_settings import (RAY_NODE_HEALTH_CHECK_DEFAULTS, SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S,
                                  SERVE_REPLICA_UNHEALTHY_THRESHOLD)
from serve_chaos.runtime.ray_versions import TESTED_RAY_VERSIONS

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCHEMA_OF = {"config": "ServeDeploySchema", "application": "ServeApplicationSchema", "deployment": "DeploymentSchema",
             "http_options": "HTTPOptionsSchema", "grpc_options": "gRPCOptionsSchema",
             "logging_config": "LoggingConfig", "ray_actor_options": "RayActorOptionsSchema"}


class Answers:
    """One release's fixture directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = root.name.removeprefix("ray-")

    def json(self, name: str) -> Any:
        return json.loads((self.root / name).read_text())

    def listed(self, name: str) -> list[dict[str, Any]]:
        return self.json(name)["data"]["result"]["result"]

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted((self.root / "logs").iterdir())}

    def pods(self) -> list[dict[str, Any]]:
        nodes = self.listed("nodes.json")
        return [{"name": "head" if n["is_head_node"] else f"worker-{i}", "ip": n["node_ip"], "phase": "Running"}
                for i, n in enumerate(nodes)]

    def snapshot(self) -> Any:
        return build_snapshot(1.0, self.json("serve_applications.json"), self.listed("actors.json"),
                              self.listed("nodes.json"), self.pods(), {})


@pytest.fixture(params=TESTED_RAY_VERSIONS)
def answers(request: pytest.FixtureRequest) -> Answers:
    root = FIXTURES / f"ray-{request.param}"
    assert root.is_dir(), f"{root} is missing: run tools/derive_ray_fixtures.py (or record_ray_api.py)"
    return Answers(root)


def test_every_fixture_says_where_it_comes_from_and_is_that_release(answers):
    source = answers.json("source.json")
    assert source["kind"] in ("derived", "recorded") and source["how"]
    assert source["ray_version"] == answers.version
    assert answers.json("version.json")["ray_version"] == answers.version
    assert answers.json("facts.json")["ray_version"] == answers.version


def test_snapshot_joins_every_release_the_same_way(answers):
    serve = answers.json("serve_applications.json")
    snap = answers.snapshot()
    assert snap.ok and snap.nodes_ok
    rest = {r["actor_id"]: (app, dep, r) for app, a in serve["applications"].items()
            for dep, d in a["deployments"].items() for r in d["replicas"]}
    replicas = {a["actor_id"]: a for a in snap.actors if a["role"] == "replica"}
    assert set(replicas) == set(rest)
    for actor_id, (app, dep, rep) in rest.items():
        got = replicas[actor_id]
        assert (got["app"], got["deployment"], got["replica_id"]) == (app, dep, rep["replica_id"])
        assert got["state"] == rep["state"] and got["log_file"] == rep["log_file_path"] and got["pid"] == rep["pid"]
        assert got["pod"] is not None
    proxies = [a for a in snap.actors if a["role"] == "proxy"]
    assert {p["state"] for p in proxies} <= {"STARTING", "HEALTHY", "UNHEALTHY", "DRAINING", "DRAINED"}
    assert len(proxies) == len(serve["proxies"])
    (controller,) = [a for a in snap.actors if a["role"] == "controller"]
    assert controller["actor_id"] == serve["controller_info"]["actor_id"]
    assert snap.controller_log == serve["controller_info"]["log_file_path"]


def test_replica_names_and_classes_agree_in_every_release(answers):
    for actor in answers.listed("actors.json"):
        if actor["class_name"].startswith("ServeReplica:"):
            _, app, dep = actor["class_name"].split(":")
            parts = replica_name_parts(actor["name"])
            assert (parts["app"], parts["deployment"]) == (app, dep)
    assert answers.json("facts.json")["replica_actor_name_prefix"] == "SERVE_REPLICA::"


def test_the_topology_is_known_exactly_where_the_release_reports_it(answers):
    snap = answers.snapshot()
    known = features(answers.version).serve_topology
    serve = answers.json("serve_applications.json")
    assert known == all("deployment_topology" in a for a in serve["applications"].values())
    for name, app in snap.apps.items():
        assert (app["downstream"] is not None) == known
    replicas = [a for a in snap.actors if a["role"] == "replica"]
    if known:
        assert all(isinstance(r["ingress"], bool) for r in replicas)
        called = {(n, d) for n, a in snap.apps.items() for d in a["downstream"]}
        if called:
            assert {(r["app"], r["deployment"]) for r in aimed(snap, DOWNSTREAM)} <= called
    else:
        assert all(r["ingress"] is None for r in replicas)
        with pytest.raises(NoSuchDeployment, match=f"deployment_topology before Ray {FEATURE_SINCE['serve_topology']}"):
            aimed(snap, DOWNSTREAM)


def _entries(answers: Answers) -> dict[str, list[tuple[str, str, bool | None]]]:
    """request id -> [(log file, request id, came over HTTP)]"""
    out: dict[str, list[tuple[str, str, bool | None]]] = {}
    for name, text in answers.logs().items():
        for rid, via_http in access_entries(text):
            out.setdefault(rid, []).append((name, rid, via_http))
    return out


def test_access_lines_say_how_each_request_arrived_in_every_release(answers):
    entries = _entries(answers)
    assert entries, "no replica log names a request"
    for rid, seen in entries.items():
        assert all(via is not None for _, _, via in seen), seen
        # One replica got it from a proxy; any other one through a DeploymentHandle.
        assert sum(via for _, _, via in seen) == 1, seen


def test_served_by_and_proxy_reach_hold_without_a_topology(answers):
    """Records carry the line's own ingress flag, so the ingress replica is who served a
    composed request and the downstream one is never expected to be reached by a proxy."""
    snap = answers.snapshot()
    by_log = {Path(a["log_file"]).name: a for a in snap.actors if a["role"] == "replica" and a.get("log_file")}
    records = [{"request_id": rid, **by_log[name], "ingress": via}
               for seen in _entries(answers).values() for name, rid, via in seen]
    served = served_by_map(records)
    down = downstream_map(records)
    for rid, rec in served.items():
        assert rec["ingress"] is True
        assert rec["replica_id"] not in down.get(rid, [])
    # Requests through every pod's proxy: a proxy on the downstream replica's pod must not be
    # expected to reach it (it reaches the ingress replica elsewhere).
    pods = {a["pod"] for a in snap.actors if a["role"] == "proxy"}
    rows = [{"ok": True, "pod": pod, "replica": rec["replica_id"], "replica_by_body": None}
            for rec in served.values() for pod in pods for _ in range(30)]
    problems = proxy_reach_problems(snap, pd.DataFrame(rows))
    downstream_ids = {r for ids in down.values() for r in ids}
    assert not any(rid in p for p in problems for rid in downstream_ids), problems


def test_the_controllers_replica_starts_parse_in_every_release(answers):
    text = (answers.root / "controller.log").read_text()
    starts = start_times(text)
    serve = answers.json("serve_applications.json")
    deployed = {f"{app}/{dep}" for app, a in serve["applications"].items() for dep in a["deployments"]}
    assert starts and set(starts) <= deployed
    assert all(s > 0 for s in starts.values())
    from serve_chaos.runtime.ray_compat import REPLICA_STARTED_RE

    with_pid = {m.group("pid") is not None for m in REPLICA_STARTED_RE.finditer(text)}
    assert with_pid == {features(answers.version).replica_start_pid}


def test_defaults_the_bounds_rest_on_are_the_same_in_every_release(answers):
    facts = answers.json("facts.json")
    assert facts["gcs_node_health_check"] == RAY_NODE_HEALTH_CHECK_DEFAULTS
    serve = facts["serve"]
    assert serve["REPLICA_HEALTH_CHECK_UNHEALTHY_THRESHOLD"] == SERVE_REPLICA_UNHEALTHY_THRESHOLD
    assert serve["DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S"] == SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S
    assert (serve["DEFAULT_HEALTH_CHECK_PERIOD_S"], serve["DEFAULT_HEALTH_CHECK_TIMEOUT_S"]) == (10, 30)
    assert (serve["PROXY_HEALTH_CHECK_PERIOD_S"], serve["PROXY_HEALTH_CHECK_UNHEALTHY_THRESHOLD"]) == (10, 3)
    # proxy_failure's known deviation: ProxyActor is created with max_restarts=0 in every release.
    assert facts["proxy_max_restarts_0"] is True


def test_features_keyed_by_version_match_what_each_release_reads(answers):
    facts = answers.json("facts.json")
    feats = features(answers.version)
    assert (feats.worker_proxy_port_env is not None) == facts["env_read"]["RAY_SERVE_WORKER_PROXY_HTTP_PORT"]
    assert facts["env_read"]["SERVE_SOCKET_REUSE_PORT_ENABLED"] and facts["env_read"]["RAY_SERVE_KV_TIMEOUT_S"]
    assert feats.drain_node_cli
    used = {a.split("=")[0] for a in drain_node_args("h:6379", "ab", "DRAIN_NODE_REASON_PREEMPTION", "m", 60)[1:]}
    assert used <= set(facts["drain_node_options"])


def test_the_config_key_table_matches_every_releases_schema(answers):
    keys = answers.json("facts.json")["serve_schema_keys"]
    for (where, key), _ in SERVE_CONFIG_KEYS.items():
        assert lacks_key(answers.version, where, key) == (key not in keys[SCHEMA_OF[where]]), (where, key)


def test_the_config_key_table_misses_no_difference():
    """Every key some tested release's schema has and another's lacks is in the table."""
    schemas = [json.loads((FIXTURES / f"ray-{v}" / "facts.json").read_text())["serve_schema_keys"]
               for v in TESTED_RAY_VERSIONS]
    for where, cls in SCHEMA_OF.items():
        every = set.union(*(set(s[cls]) for s in schemas))
        common = set.intersection(*(set(s[cls]) for s in schemas))
        assert {(where, k) for k in every - common} <= set(SERVE_CONFIG_KEYS), where


def test_unsupported_keys_are_named_with_where_they_sit():
    config = {"applications": [{"name": "a", "import_path": "m:app", "deployments": [
        {"name": "D", "request_router_config": {}, "ray_actor_options": {"label_selector": {}}}]}],
              "http_options": {"ssl_certfile": "x"}}
    assert unsupported_config_keys(config, "2.40.0") == [
        "http_options.ssl_certfile (first in Ray 2.50.0)",
        "deployment a/D: request_router_config (first in Ray 2.50.0)",
        "deployment a/D: ray_actor_options.label_selector (first in Ray 2.60.0)"]
    assert unsupported_config_keys(config, "2.50.0") == [
        "deployment a/D: ray_actor_options.label_selector (first in Ray 2.60.0)"]
    # Between a release that lacks it and one that has it Serve decides, not us.
    assert unsupported_config_keys(config, "2.55.0") == []
    assert unsupported_config_keys(config, "2.60.0") == []


def test_log_api_errors_in_either_releases_form():
    assert log_text(200, "line 1\nline 2\n") == "line 1\nline 2\n"
    with pytest.raises(LogUnavailable, match="HTTP 500"):
        log_text(500, "boom")  # 2.50.0+
    with pytest.raises(LogUnavailable, match="Fetch log error"):
        log_text(200, "[get_logs] Fetch log error: no such file")  # 2.40.0 with format=text
    assert log_text(200, "a\nb\n[get_logs] Fetch log error: gone") == "a\nb\n"


# ---------------------------------------------------------------------- a dashboard answering from the fixtures
@pytest.fixture
def dashboard(answers: Answers) -> Iterator[str]:
    """An HTTP server answering the dashboard routes the harness uses, from the fixture files."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlparse(self.path)
            query = parse_qs(url.query)
            files = {"/api/version": "version.json", "/api/serve/applications/": "serve_applications.json",
                     "/api/v0/actors": "actors.json", "/api/v0/nodes": "nodes.json"}
            if url.path in files:
                body = (answers.root / files[url.path]).read_text()
            elif url.path == "/api/v0/logs/file":
                name = Path(query["filename"][0]).name
                path = answers.root / ("controller.log" if name.startswith("controller") else f"logs/{name}")
                body = path.read_text() if path.exists() else ""
            else:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_running_release_is_read_from_the_dashboard(answers, dashboard):
    assert cluster_ray_version(dashboard) == answers.version
    assert cluster_ray_version("http://127.0.0.1:1", timeout_s=0.5) is None


def test_the_recorder_writes_what_the_tests_read(answers, dashboard, tmp_path):
    import sys

    sys.path.insert(0, str(FIXTURES.parents[1] / "tools"))
    try:
        import record_ray_api
    finally:
        sys.path.pop(0)
    out = record_ray_api.record(dashboard, tmp_path)
    assert out == tmp_path / f"ray-{answers.version}"
    assert json.loads((out / "source.json").read_text())["kind"] == "recorded"
    for name in ("serve_applications.json", "actors.json", "nodes.json", "version.json"):
        assert json.loads((out / name).read_text()) == answers.json(name)
    assert start_times((out / "controller.log").read_text()) == start_times((answers.root / "controller.log").read_text())
    recorded_logs = {p.name for p in (out / "logs").iterdir()}
    assert recorded_logs == {n for n, t in answers.logs().items() if access_entries(t)}


def test_the_served_by_reader_reads_every_releases_logs_through_the_dashboard(answers, dashboard):
    from serve_chaos.harness.load.servedby import ServedByReader

    snap = answers.snapshot()
    replicas = [a for a in snap.actors if a["role"] == "replica"]
    # The load's id prefix (one per run): recorded logs carry the recording run's own.
    prefixes = {rid.rsplit("-", 1)[0] for rid in _entries(answers)}
    assert len(prefixes) == 1, prefixes
    reader = ServedByReader(dashboard, lambda: replicas, prefix=prefixes.pop())
    try:
        assert reader.poll() == sum(len(seen) for seen in _entries(answers).values())
    finally:
        reader.stop()
    served = served_by_map(reader.copy())
    by_id = {a["replica_id"]: a for a in replicas}
    for rid, rec in served.items():
        # The ingress replica, even where the snapshot cannot tell (ingress None before 2.60).
        assert rec["ingress"] is True
        assert by_id[rec["replica_id"]]["ingress"] in (True, None)
    assert not reader.errors
