"""The CLI: bad input ends in one line on stderr and a non-zero exit, never a traceback."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest


def cli(*args: str, home: str) -> subprocess.CompletedProcess:
    # A fixed width: rich wraps at the terminal's (80 without one), and a wrapped line matches nothing.
    env = dict(os.environ, SERVE_CHAOS_HOME=home, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "serve_chaos.harness.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def home():
    # Short on purpose: the home path's length is limited (Ray socket paths).
    base = tempfile.mkdtemp(prefix="sct", dir="/tmp")
    yield os.path.join(base, "h")
    shutil.rmtree(base, ignore_errors=True)


def test_status_without_a_cluster(home):
    proc = cli("status", home=home)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: no serve-chaos cluster is up. Hint: start one with `serve-chaos up`"


def test_malformed_config_file(tmp_path, home):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = cli("up", "--config", str(bad), home=home)
    assert proc.returncode == 1 and "is not valid JSON" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_dry_run_prints_the_plan_and_touches_nothing(home):
    proc = cli("run", "replica_failure", "--dry-run", "--seed", "7", home=home)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dry run: nothing is touched" in out and "ray.kill one RUNNING replica" in out
    assert "seed 7" in out and "SLOs:" in out
    assert not os.path.exists(home)


def test_list_shows_promises():
    proc = subprocess.run([sys.executable, "-m", "serve_chaos.harness.cli", "list"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, COLUMNS="200"))
    assert proc.returncode == 0
    assert "replica_failure" in proc.stdout and "controller_failure" in proc.stdout


def test_soak_dry_run_prints_a_seeded_sequence(home):
    first = cli("soak", "--duration", "120", "--seed", "5", "--dry-run", home=home)
    again = cli("soak", "--duration", "120", "--seed", "5", "--dry-run", home=home)
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    assert "stops injecting after 120 s" in first.stdout and "s after the previous recovery" in first.stdout


def test_dry_run_of_a_users_app_says_what_applies_and_where_faults_aim(home):
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "two-apps")
    proc = cli("run", "all", "--dry-run", "--app", os.path.join(example, "serve_config.yaml"),
               "--app-dir", os.path.join(example, "src"), "--deployment", "pipeline/Scorer", home=home)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "fault:   ray.kill one RUNNING replica with no_restart=True (aimed at pipeline/Scorer)" in lines
    assert "fault:   ray.kill every RUNNING replica with no_restart=True (aimed at downstream)" in lines
    skipped = [ln for ln in lines if ln.startswith("skipped: ")]
    assert any(ln.startswith("skipped: strict_spreading does not apply") for ln in skipped)
    assert sum("does not opt into it" in ln for ln in skipped) == 3
    assert not os.path.exists(home)
