"""The Locust load generator against a real local HTTP server: open-model timing and error classes."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.history import read_jsonl, requests_frame
from harness.load import LoadGenerator, LoadSpec


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
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
