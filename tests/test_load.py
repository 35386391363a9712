"""The Locust load generator against a real local HTTP server: open-model timing and error classes."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serve_chaos.harness.observe.history import read_jsonl, requests_frame
from serve_chaos.harness.load.generator import LoadGenerator
from serve_chaos.harness.load.spec import LoadSpec, Traffic

SEEN_IDS: list[str] = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        SEEN_IDS.append(self.headers.get("X-Request-Id", ""))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        code = 201 if body == b"ping" else 400
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self):
        SEEN_IDS.append(self.headers.get("X-Request-Id", ""))
        if self.path.startswith("/slow"):
            time.sleep(3.0)
        code = 503 if self.path.startswith("/fail") else 200
        body = b"4242" if code == 200 else b"nope"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Serve-Chaos-Pod", "pod-a")
        self.end_headers()
        self.wfile.write(body)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients that time out close early: expected here


@pytest.fixture
def server():
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_records_every_request_with_its_class(server, tmp_path):
    targets = [
        {"name": "ok", "url": server + "/"},
        {"name": "fail", "url": server + "/fail"},
        {"name": "refused", "url": f"http://127.0.0.1:{closed_port()}/"},
        {"name": "slow", "url": server + "/slow"},
    ]
    out = tmp_path / "requests.jsonl"
    gen = LoadGenerator(LoadSpec(rate=10, timeout_s=1.0), targets, out, max_duration_s=60)
    gen.start()
    time.sleep(4)
    gen.stop()
    df = requests_frame(read_jsonl(out))
    by = {name: grp for name, grp in df.groupby("endpoint")}
    assert set(by) == {"ok", "fail", "refused", "slow"}
    ok = by["ok"]
    assert ok["ok"].all() and (ok["pid"] == 4242).all() and (ok["pod"] == "pod-a").all()
    assert set(by["fail"]["error"]) == {"5xx"} and set(by["fail"]["status"]) == {503}
    assert set(by["refused"]["error"]) == {"refused"}
    assert set(by["slow"]["error"]) == {"timeout"}
    # Open model: sends keep their schedule even while the slow endpoint stalls.
    seqs = df.sort_values("seq")
    gaps = seqs["t"].diff().dropna()
    assert gaps.max() == pytest.approx(1 / 40, abs=1e-6)
    assert seqs["seq"].tolist() == list(range(len(seqs)))  # nothing in flight was lost at stop
    sent_lag = (df["t_sent"] - df["t"]).quantile(0.95)
    assert sent_lag < 0.05


def test_the_apps_requests_mixed_by_weight_each_with_its_own_request_id(server, tmp_path):
    """What a requests file asks: methods, bodies, expected statuses, weights; every request tagged."""
    SEEN_IDS.clear()
    requests = ({"name": "get", "method": "GET", "path": "/", "headers": {}, "body": None, "expect_status": 200,
                 "weight": 1},
                {"name": "post", "method": "POST", "path": "/p", "headers": {}, "body": "ping", "expect_status": 201,
                 "weight": 2},
                {"name": "wrong", "method": "POST", "path": "/p", "headers": {}, "body": "x", "expect_status": 201,
                 "weight": 1})
    out = tmp_path / "requests.jsonl"
    gen = LoadGenerator(LoadSpec(rate=40, timeout_s=1.0), [{"name": "front", "url": server}], out, 60,
                        traffic=Traffic(requests, "sctest9"))
    gen.start()
    time.sleep(3)
    gen.stop()
    df = requests_frame(read_jsonl(out))
    counts = df["route"].value_counts()
    assert abs(counts["post"] - 2 * counts["get"]) <= 2 and abs(counts["wrong"] - counts["get"]) <= 1
    by = {route: grp for route, grp in df.groupby("route")}
    assert by["get"]["ok"].all() and (by["get"]["pid"] == 4242).all()
    assert by["post"]["ok"].all() and (by["post"]["status"] == 201).all() and by["post"]["pid"].isna().all()
    assert not by["wrong"]["ok"].any() and set(by["wrong"]["error"]) == {"4xx"}
    assert df["request_id"].is_unique and set(df["request_id"]) <= set(SEEN_IDS)
    assert all(rid.startswith("sctest9-") for rid in df["request_id"])


def test_a_users_locustfile_drives_the_open_model_load(server, tmp_path):
    """Their tasks, our schedule: one record per request, named by the task's name=, tagged."""
    SEEN_IDS.clear()
    user_file = tmp_path / "their_locustfile.py"
    user_file.write_text(
        "from locust import HttpUser, task\n\n"
        "class Shopper(HttpUser):\n"
        "    @task(3)\n"
        "    def browse(self):\n"
        "        self.client.get('/', name='browse')\n\n"
        "    @task\n"
        "    def checkout(self):\n"
        "        with self.client.post('/p', data='ping', name='checkout', catch_response=True) as resp:\n"
        "            if resp.status_code != 201:\n"
        "                resp.failure('not created')\n"
        "        self.client.get('/fail', name='after-checkout')\n")
    out = tmp_path / "requests.jsonl"
    gen = LoadGenerator(LoadSpec(rate=30, timeout_s=1.0), [{"name": "front", "url": server}], out, 60,
                        traffic=Traffic((), "scuser", str(user_file)))
    gen.start()
    time.sleep(3)
    gen.stop()
    df = requests_frame(read_jsonl(out))
    counts = df["route"].value_counts()
    assert set(counts.index) == {"browse", "checkout", "after-checkout"}
    assert abs(counts["browse"] - 3 * counts["checkout"]) <= 3
    assert df[df["route"] == "checkout"]["ok"].all() and df[df["route"] == "browse"]["ok"].all()
    assert not df[df["route"] == "after-checkout"]["ok"].any()
    # The open-model schedule: a task call per send, sends on time.
    assert (df.groupby("seq")["t"].nunique() == 1).all()
    assert df["request_id"].is_unique and set(df["request_id"]) <= set(SEEN_IDS)


def test_a_slot_follows_new_addresses_and_a_vacant_slot_sends_nothing(server, tmp_path):
    """The harness rewrites the targets file mid-run: the slot moves from a dead address to a live
    one, then goes vacant; Locust keeps the schedule and records which address each send used."""
    dead = f"http://127.0.0.1:{closed_port()}"
    slot = {"name": "pods:worker#1", "url": dead, "role": "worker", "pod": "worker-1", "incarnation": "u1#0"}
    front = {"name": "front", "url": server, "role": "", "pod": None, "incarnation": None}
    out = tmp_path / "requests.jsonl"
    gen = LoadGenerator(LoadSpec(rate=20, timeout_s=1.0), [front, slot], out, max_duration_s=60)
    gen.start()
    time.sleep(1.5)
    t_moved = time.time()
    gen.retarget([front, {**slot, "url": server, "incarnation": "u2#0"}])
    time.sleep(2.5)
    t_vacant = time.time()
    gen.retarget([front, {**slot, "url": None, "incarnation": None}])
    time.sleep(2.5)
    with pytest.raises(ValueError):
        gen.retarget([slot, front])  # endpoints and their order are fixed for the run
    gen.stop()
    records = read_jsonl(out)
    mine = requests_frame([r for r in records if r["endpoint"] == "pods:worker#1"])
    refused = mine[mine["t"] < t_moved]
    assert len(refused) and (refused["error"] == "refused").all() and (refused["address"] == dead).all()
    # Picked up within about a second of the rewrite (Locust re-reads the file every second).
    moved = mine[(mine["t"] > t_moved + 1.2) & (mine["t"] < t_vacant)]
    assert len(moved) and moved["ok"].all() and set(moved["incarnation"]) == {"u2#0"}
    vacant = mine[mine["t"] > t_vacant + 1.2]
    assert len(vacant) and (vacant["error"] == "slot_vacant").all() and vacant["t_sent"].isna().all()
    # Every sequence number is recorded, the vacant sends included; endpoints strictly in turn.
    seqs = sorted(r["seq"] for r in records)
    assert seqs == list(range(len(seqs)))
    assert all(r["endpoint"] == ("front", "pods:worker#1")[r["seq"] % 2] for r in records)


def test_locusts_own_workers_share_one_schedule_and_one_file(server, tmp_path):
    # --load-workers 2: Locust's master and two workers; each makes the sends whose sequence
    # number is its own, all appending whole lines to one file: merged, one process's schedule.
    targets = [{"name": "ok", "url": server + "/"}, {"name": "fail", "url": server + "/fail"}]
    out = tmp_path / "requests.jsonl"
    gen = LoadGenerator(LoadSpec(rate=20, timeout_s=1.0), targets, out, max_duration_s=60,
                        traffic=Traffic(id_prefix="w", workers=2))
    assert ["--master" in c for c in gen._commands()] == [True, False, False]
    gen.start(timeout_s=30)
    time.sleep(4)
    assert len(gen.procs) == 3 and all(p.poll() is None for p in gen.procs)
    gen.stop()
    assert all(p.poll() is not None for p in gen.procs)
    df = requests_frame(read_jsonl(out))
    seqs = df.sort_values("seq")
    assert seqs["seq"].tolist() == list(range(len(seqs))) and len(seqs) >= 60
    assert set(df["worker"]) == {0, 1}
    assert (df["seq"] % 2 == df["worker"]).all() or (df["seq"] % 2 != df["worker"]).all()
    assert df["request_id"].is_unique
    # Endpoints strictly in turn, at the one schedule's spacing, whichever worker sent them.
    assert (seqs["endpoint"] == seqs["seq"].map(lambda s: ("ok", "fail")[s % 2])).all()
    assert seqs["t"].diff().dropna().max() == pytest.approx(1 / 40, abs=1e-6)
    assert (df["t_sent"] - df["t"]).quantile(0.95) < 0.05
