"""Who served a request, from Serve's own logs; the app's measured replica start; routes that
never answer as expected.  Log lines are verbatim from Ray 2.60 on the local cluster."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from serve_chaos.harness.checks import route_problem
from serve_chaos.harness.observe.history import History
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.harness.load.servedby import (FIRST_LINES, MAX_LINES, ServedByReader, agreement, next_lines, replicas_by_pid,
                              request_ids, served, served_by_map)
from serve_chaos.harness.observe.startup import start_times
from serve_chaos.runtime.app.spec import RequestSpec

REPLICA_LOG = """\
INFO 2026-11-26 14:12:43,456 sleepy_SleepyPid xcmimmuq -- Started initializing replica.
INFO 2026-11-26 14:12:53,457 sleepy_SleepyPid xcmimmuq -- Finished initializing replica.
INFO 2026-11-26 14:12:59,686 sleepy_SleepyPid xcmimmuq sctest1-1 -- GET / 200 2.2ms
INFO 2026-11-26 14:13:00,101 composed_Downstream abcd1234 sc9f3a2b-17.1 -- CALL __call__ OK 1.0ms
"""
CONTROLLER_LOG = """\
INFO 2026-11-26 14:12:51,502 controller 21206 -- Replica(id='hdu2px5r', deployment='SleepyPid', app='sleepy') \
started successfully on node '9d83f11361185ca8235a4825873062cc4e30ee70af73bb0329dab315' after 12.2s (PID: 21534). \
Replica constructor, reconfigure method, and initial health check took 10.0s.
INFO 2026-11-26 14:12:53,650 controller 21206 -- Replica(id='xcmimmuq', deployment='SleepyPid', app='sleepy') \
started successfully on node '03bd4a5f0a3c1577e4aaccfdca16d310870128d11684ca80f672e6a3' after 14.4s (PID: 21535). \
Replica constructor, reconfigure method, and initial health check took 10.0s.
INFO 2026-11-26 14:12:54,000 controller 21206 -- Deploying new version of Deployment(name='SleepyPid', app='sleepy').
"""


def test_request_ids_come_from_access_lines_only():
    assert request_ids(REPLICA_LOG) == ["sctest1-1", "sc9f3a2b-17.1"]


def test_the_slowest_start_the_controller_logged():
    assert start_times(CONTROLLER_LOG) == {"sleepy/SleepyPid": 14.4}


def test_the_log_window_grows_when_everything_was_new_and_shrinks_when_known():
    assert next_lines(FIRST_LINES, FIRST_LINES, 0) == 2 * FIRST_LINES
    assert next_lines(MAX_LINES, MAX_LINES, 0) == MAX_LINES
    assert next_lines(FIRST_LINES, 300, 290) == FIRST_LINES


def records() -> list[dict]:
    ingress = {"replica_id": "i1", "pid": 11, "ingress": True}
    down = {"replica_id": "d1", "pid": 21, "ingress": False}
    return [{"request_id": "sc1-0", **down}, {"request_id": "sc1-0", **ingress}, {"request_id": "sc1-1", **ingress},
            {"request_id": "sc1-2", **down}]


def test_the_ingress_replica_is_who_served_and_downstream_ones_are_kept():
    by_id = served_by_map(records())
    assert by_id["sc1-0"]["replica_id"] == "i1"  # the ingress line wins over the downstream one
    assert by_id["sc1-2"]["replica_id"] == "d1"  # no ingress line seen: the downstream one


def snaps() -> list[Snapshot]:
    actors = [{"role": "replica", "pid": 11, "replica_id": "i1"}, {"role": "replica", "pid": 12, "replica_id": "i2"},
              {"role": "replica", "pid": 12, "replica_id": "other-pod"}]
    return [Snapshot(t=0.0, serve_ok=True, actors_ok=True, actors=actors)]


def test_logs_and_body_pids_agree_or_are_told_apart():
    assert replicas_by_pid(snaps()) == {11: "i1", 12: None}  # PID 12 is two replicas' (two PID namespaces)
    reqs = [{"seq": i, "t": float(i), "endpoint": "front", "ok": True, "request_id": f"sc1-{i}", "pid": pid}
            for i, pid in enumerate([11, 11, 12, 999])]
    hist = History.build(reqs, snapshots=snaps(), served_by=records())
    df = hist.requests
    named = lambda col: [x if isinstance(x, str) else None for x in col]  # noqa: E731
    assert named(df["replica"]) == ["i1", "i1", "d1", None]
    assert named(df["replica_by_body"]) == ["i1", "i1", None, "pid:999"]
    assert df.loc[0, "downstream"] == "d1"
    assert named(served(df)) == ["i1", "i1", "d1", "pid:999"]
    assert agreement(df) == {"both": 2, "agree": 2, "log_only": 1, "unattributed": 1, "pid_ambiguous": 1}


def test_a_route_that_never_answers_as_expected_is_named_once_it_answered_enough():
    spec = RequestSpec(name="score", method="POST", path="/score")
    wrong = [{"seq": i, "t": float(i), "endpoint": "front", "route": "score", "ok": False, "status": 404,
              "error": "4xx"} for i in range(25)]
    assert "route 'score' answered HTTP 404 to all 25 requests, expected 200" in route_problem(History.build(wrong),
                                                                                               [spec])
    assert route_problem(History.build(wrong[:10]), [spec]) == ""  # too early to say
    mixed = wrong + [{**wrong[0], "seq": 25, "t": 25.0, "ok": True, "status": 200, "error": None}]
    assert route_problem(History.build(mixed), [spec]) == ""
    refused = [{**r, "status": None, "error": "refused"} for r in wrong]
    assert route_problem(History.build(refused), [spec]) == ""  # the cluster's problem, not the route's


def test_the_reader_fetches_each_replicas_log_and_keeps_this_runs_ids(tmp_path):
    """Against an HTTP server answering like the dashboard's ``/api/v0/logs/file``."""
    asked = []
    logs = {("n1", "serve/replica_a_D_r1.log"): "x sc1-0 -- GET / 200 1ms\nx scold-9 -- GET / 200 1ms\n",
            ("n2", "serve/replica_a_D_r2.log"): "x sc1-1 -- GET / 200 1ms\n"}

    class Dashboard(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            asked.append(query)
            body = logs.get((query.get("node_id"), query.get("filename")))
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write((body or "not found").encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Dashboard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    replicas = [{"replica_id": "r1", "node_id": "n1", "log_file": "/serve/replica_a_D_r1.log", "ingress": True},
                {"replica_id": "r2", "node_id": "n2", "log_file": "/serve/replica_a_D_r2.log", "ingress": True},
                {"replica_id": "gone", "node_id": "n3", "log_file": "/serve/replica_a_D_gone.log"}]
    out = tmp_path / "served_by.jsonl"
    reader = ServedByReader(f"http://127.0.0.1:{server.server_address[1]}", lambda: replicas, out, prefix="sc1")
    try:
        assert reader.poll() == 2 and reader.poll() == 0  # the second round finds nothing new
    finally:
        server.shutdown()
    assert sorted((r["request_id"], r["replica_id"]) for r in reader.copy()) == [("sc1-0", "r1"), ("sc1-1", "r2")]
    assert len(out.read_text().splitlines()) == 2 and "HTTP 404" in reader.errors["last"]
    assert {q["lines"] for q in asked} == {str(FIRST_LINES)}
