"""Every mistake is one line: what, why, how to fix -- a non-zero exit and never a traceback.

Each case runs the real CLI in a subprocess (all cases at once, in a pool) in a
scratch directory with its own SERVE_CHAOS_HOME; a case may prepare files first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from tests.kube_server import dead_kubeconfig

ROOT = Path(__file__).resolve().parents[1]


def verdict_run(base: Path, name: str = "20261126T000000Z-replica_failure-ab12", verdict: str | None = None) -> Path:
    run = base / "reports" / name
    run.mkdir(parents=True)
    (run / "requests.jsonl").write_text(json.dumps({"seq": 0, "t": 1.0, "endpoint": "front", "ok": True}) + "\n")
    if verdict is not None:
        (run / "verdict.json").write_text(verdict)
    return run


def config_file(base: Path, data: object) -> str:
    path = base / "cluster.json"
    path.write_text(json.dumps(data))
    return str(path)


@dataclass
class Case:
    """``args`` may contain ``{base}``; ``prepare(base)`` returns args to append and env to set."""

    name: str
    args: tuple[str, ...]
    words: str
    code: int = 1
    prepare: Callable[[Path], tuple[list[str], dict[str, str]]] = field(default=lambda base: ([], {}))


CASES = [
    # ---------------------------------------------------------------- that used to end in a traceback
    Case("run --html DIR", ("run", "replica_failure", "--html", "{base}"), "is a directory"),
    Case("run --report-dir FILE", ("run", "replica_failure", "--report-dir", "{base}/file"), "is a file, not a directory",
         prepare=lambda b: ((b / "file").write_text("x") and [], {})),
    Case("report: corrupt verdict", ("report", "{base}/reports"), "is not valid JSON",
         prepare=lambda b: (verdict_run(b, verdict="{not json") and [], {})),
    Case("report: empty verdict", ("report", "{base}/reports"), "verdict.json is empty",
         prepare=lambda b: (verdict_run(b, verdict="") and [], {})),
    Case("report: a list as verdict", ("report", "{base}/reports"), "a JSON object is expected, found list",
         prepare=lambda b: (verdict_run(b, verdict="[1, 2]") and [], {})),
    Case("report: verdict lacking fields", ("report", "{base}/reports"), "is not a complete verdict: it lacks",
         prepare=lambda b: (verdict_run(b, verdict='{"run_id": "x"}') and [], {})),
    Case("report: damaged history line", ("report", "{base}/reports", "--history-dir", "{base}/hist",
                                          "--out", "{base}/o.html"), "line 1 is damaged",
         prepare=lambda b: ((b / "hist").mkdir() or (b / "hist" / "verdicts.jsonl").write_text('{"run_id": 1}\n'))
         and (verdict_run(b, verdict=None) and [], {})),
    Case("report --out DIR", ("report", "{base}/reports", "--out", "{base}"), "is a directory",
         prepare=lambda b: (verdict_run(b) and [], {})),
    Case("report --out unwritable", ("report", "{base}/reports", "--out", "/proc/1/report.html"), "cannot be written",
         prepare=lambda b: (verdict_run(b) and [], {})),
    Case("report --out under a file", ("report", "{base}/reports", "--out", "{base}/f/report.html"),
         "which is a file", prepare=lambda b: ((b / "f").write_text("x") and verdict_run(b) and [], {})),
    Case("report --markdown DIR", ("report", "{base}/reports", "--out", "{base}/o.html", "--markdown", "{base}"),
         "is a directory", prepare=lambda b: (verdict_run(b) and [], {})),
    Case("up --config nested unknown key", ("up",), "timing.grace: Extra inputs are not permitted",
         prepare=lambda b: (["--config", config_file(b, {"timing": {"grace": 1}})], {})),
    Case("soak --duration nan", ("soak", "--duration", "nan", "--dry-run"), "finite number"),
    Case("soak --duration inf", ("soak", "--duration", "inf", "--dry-run"), "finite number"),
    Case("SERVE_CHAOS_HOME is a file", ("up",), "is a file; it must be a directory",
         prepare=lambda b: ((b / "homefile").write_text("x") and [], {"SERVE_CHAOS_HOME": str(b / "homefile")})),
    Case("kind context with its API server down", ("status", "--target", "kind"), "does not answer",
         prepare=lambda b: ([], dead_kubeconfig(b))),
    Case("run --target kind, API server down", ("run", "replica_failure", "--target", "kind"), "does not answer",
         prepare=lambda b: ([], dead_kubeconfig(b))),
    # ---------------------------------------------------------------- output paths nothing can be created under
    # (root passes os.access there: the check must try, not read mode bits)
    Case("report --out under /proc", ("report", "{base}/reports", "--out", "/proc/nope/report.html"),
         "nothing can be created in /proc", prepare=lambda b: (verdict_run(b) and [], {})),
    Case("report --out in /proc", ("report", "{base}/reports", "--out", "/proc/report.html"),
         "nothing can be created in /proc", prepare=lambda b: (verdict_run(b) and [], {})),
    Case("report --markdown in /sys", ("report", "{base}/reports", "--out", "{base}/o.html", "--markdown",
                                       "/sys/report.md"), "nothing can be created in /sys",
         prepare=lambda b: (verdict_run(b) and [], {})),
    Case("report --junit under /proc/1", ("report", "{base}/reports", "--out", "{base}/o.html", "--junit",
                                          "/proc/1/x/j.xml"), "nothing can be created in /proc/1",
         prepare=lambda b: (verdict_run(b) and [], {})),
    Case("report --junit onto a /proc file", ("report", "{base}/reports", "--out", "{base}/o.html", "--junit",
                                              "/proc/1/status"), "/proc/1/status",
         prepare=lambda b: (verdict_run(b) and [], {})),
    Case("report --history-dir under /proc", ("report", "{base}/reports", "--out", "{base}/o.html",
                                              "--history-dir", "/proc/nope/history"), "nothing can be created in /proc",
         prepare=lambda b: (verdict_run(b) and [], {})),
    Case("run --report-dir under /proc", ("run", "replica_failure", "--dry-run", "--report-dir", "/proc/nope"),
         "the report directory /proc/nope cannot be written"),
    Case("run --html under /sys", ("run", "replica_failure", "--dry-run", "--html", "/sys/x/report.html"),
         "the HTML report /sys/x/report.html cannot be written"),
    Case("run --history-dir under /proc", ("run", "replica_failure", "--dry-run", "--history-dir", "/proc/h"),
         "the history directory /proc/h cannot be written"),
    Case("soak --report-dir under /proc", ("soak", "--dry-run", "--report-dir", "/proc/nope/r"),
         "the report directory /proc/nope/r cannot be written"),
    Case("--requests with a number as body", ("run", "replica_failure", "--dry-run"),
         "item 1: body: body 42 is neither text (sent as it is) nor a mapping or list (sent as JSON)",
         prepare=lambda b: ((b / "r.yaml").write_text("- {method: POST, body: 42}\n") and
                            ["--requests", str(b / "r.yaml")], {})),
    Case("--requests with body and form", ("run", "replica_failure", "--dry-run"),
         "item 1: request: body and form both give the body; keep one",
         prepare=lambda b: ((b / "r.yaml").write_text("- {method: POST, body: x, form: {a: 1}}\n") and
                            ["--requests", str(b / "r.yaml")], {})),
    Case("advise --example nope", ("advise", "--example", "nope"), "--example 'nope' is not a bundled example"),
    Case("advise --app and --example", ("advise", "--example", "composed", "--app", "{base}/x.yaml"),
         "--example and --app both name the app"),
    Case("advise --app missing", ("advise", "--app", "{base}/missing.yaml"), "is not a file"),
    Case("advise --config on kind", ("advise", "--target", "kind", "--config", "{base}/c.json"),
         "--config holds local cluster settings"),
    Case("advise --workers 0", ("advise", "--workers", "0"), "--workers 0 must be between 1 and 20"),
    Case("advise --runs of nothing", ("advise", "--runs", "/nonexistent/run"), "/nonexistent/run does not exist"),
    # ---------------------------------------------------------------- that used to be silently wrong
    Case("report --out RUN/verdict.json", ("report", "{base}/reports/r-x-1", "--out",
                                           "{base}/reports/r-x-1/verdict.json"), "would overwrite the input",
         prepare=lambda b: (verdict_run(b, name="r-x-1") and [], {})),
    Case('gcs_ft: "no"', ("up",), "gcs_ft: Input should be a valid boolean",
         prepare=lambda b: (["--config", config_file(b, {"gcs_ft": "no"})], {})),
    Case("workers: 2.5", ("up",), "workers: Input should be a valid integer",
         prepare=lambda b: (["--config", config_file(b, {"workers": 2.5})], {})),
    Case('head: "big"', ("up",), "head: Input should be a valid dictionary",
         prepare=lambda b: (["--config", config_file(b, {"head": "big"})], {})),
    Case("negative grace", ("up",), "timing.grace_period_s: Input should be greater than or equal to 0",
         prepare=lambda b: (["--config", config_file(b, {"timing": {"grace_period_s": -1}})], {})),
    Case("negative CPUs", ("up",), "worker.num_cpus: Input should be greater than or equal to 1",
         prepare=lambda b: (["--config", config_file(b, {"worker": {"num_cpus": -2}})], {})),
    Case("dashboard port = front port", ("up",), "dashboard_port 18000 is also the front_port",
         prepare=lambda b: (["--config", config_file(b, {"dashboard_port": 18000})], {})),
    Case("--dry-run validates --target", ("run", "replica_failure", "--dry-run", "--target", "mars"), "not a target"),
    Case("--dry-run validates the config", ("run", "replica_failure", "--dry-run"), "workers: Input should be",
         prepare=lambda b: (["--config", config_file(b, {"workers": 0})], {})),
    Case("--dry-run validates the kube context", ("run", "replica_failure", "--dry-run", "--target", "kind",
                                                  "--kube-context", "nope"), "kubeconfig has no context 'nope'",
         prepare=lambda b: ([], dead_kubeconfig(b))),
    Case("--abort-after nan", ("run", "replica_failure", "--abort-below", "0.5", "--abort-after", "nan"),
         "--abort-after nan must be a finite number"),
    Case("--abort-after inf", ("run", "replica_failure", "--abort-below", "0.5", "--abort-after", "inf"),
         "--abort-after inf must be a finite number"),
    Case("soak --faults controller_failure", ("soak", "--faults", "controller_failure", "--dry-run"),
         "controller_failure cannot join a soak"),
    # ---------------------------------------------------------------- and the rest
    Case("unknown scenario", ("run", "nope"), "unknown scenario 'nope'"),
    Case("--seed not a number", ("run", "all", "--seed", "x"), "--seed 'x' is not an integer"),
    Case("--load-rate negative", ("run", "all", "--load-rate", "-3"), "--load-rate -3.0 must be in (0, 2000]"),
    Case("--load-rate not a number", ("run", "all", "--load-rate", "abc"), "Invalid value for '--load-rate'", code=2),
    Case("--load-rate nan", ("run", "all", "--load-rate", "nan"), "--load-rate nan must be a finite number"),
    Case("unknown command", ("bogus",), "No such command 'bogus'", code=2),
    Case("unknown option", ("status", "--bad"), "No such option: --bad", code=2),
    Case("up --workers 99", ("up", "--workers", "99"), "workers: Input should be less than or equal to 8"),
    Case("up --isolation vm", ("up", "--isolation", "vm"), "isolation: Input should be 'auto', 'netns' or 'loopback'"),
    Case("up --front-port 0", ("up", "--front-port", "0"), "front_port: Input should be greater than or equal to 1"),
    Case("up --config missing", ("up", "--config", "/nonexistent.json"), "cannot read cluster config /nonexistent.json"),
    Case("up --config not JSON", ("up",), "is not valid JSON",
         prepare=lambda b: ((b / "bad.json").write_text("{no") and ["--config", str(b / "bad.json")], {})),
    Case("up --config a list", ("up",), "must hold a JSON object",
         prepare=lambda b: (["--config", config_file(b, [1])], {})),
    Case("--repeat 0", ("run", "all", "--repeat", "0"), "--repeat 0 must be at least 1"),
    Case("--load-workers 0", ("run", "all", "--load-workers", "0"), "--load-workers 0 must be in 1..16"),
    Case("--abort-below 2", ("run", "all", "--abort-below", "2"), "--abort-below 2.0 must be an availability ratio"),
    Case("--step with --repeat", ("run", "all", "--step", "--repeat", "2"), "cannot be combined with --repeat"),
    Case("report of nothing", ("report", "/nonexistent/run"), "/nonexistent/run does not exist"),
    Case("report of a non-run dir", ("report", "/tmp"), "/tmp is not a run directory"),
    Case("report outputs on one file", ("report", "{base}/reports", "--out", "{base}/a.html", "--markdown",
                                        "{base}/a.html"), "are the same file",
         prepare=lambda b: (verdict_run(b) and [], {})),
    Case("soak --duration -5", ("soak", "--duration", "-5"), "soak duration must be a finite number > 0"),
    Case("soak unknown fault", ("soak", "--faults", "replica_failure,nope", "--dry-run"), "unknown soak fault(s): nope"),
    Case("soak fault with other settings", ("soak", "--faults", "health_check_raise_fast", "--dry-run"),
         "need another app or other deployment settings"),
    Case("run --target mars", ("run", "all", "--target", "mars"), "--target 'mars' is not a target"),
    Case("kind manifests --gcs-ft maybe", ("kind", "manifests", "--gcs-ft", "maybe"), "gcs_ft must be one of"),
    Case("kind manifests --workers 0", ("kind", "manifests", "--workers", "0"), "workers must be a whole number"),
    Case("status without a cluster", ("status",), "no serve-chaos cluster is up"),
]


def run_case(case: Case) -> tuple[subprocess.CompletedProcess, str]:
    base = Path(tempfile.mkdtemp(prefix="scb", dir="/tmp"))
    try:
        extra, env_extra = case.prepare(base)
        args = [a.replace("{base}", str(base)) for a in case.args] + list(extra)
        # PYTHONPATH: this checkout's harness, not whichever one is installed (cwd is a scratch dir).
        env = {**os.environ, "SERVE_CHAOS_HOME": str(base / "h"), "COLUMNS": "200", "PYTHONPATH": str(ROOT),
               "KUBECONFIG": str(base / "no-kubeconfig"), **env_extra}
        proc = subprocess.run([sys.executable, "-m", "serve_chaos.harness.cli", *args], capture_output=True, text=True,
                              timeout=120, env=env, cwd=str(base))
        return proc, " ".join(args)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, tuple[subprocess.CompletedProcess, str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([c.name for c in CASES], pool.map(run_case, CASES)))


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_mistake_is_one_line(case, outcomes):
    proc, args = outcomes[case.name]
    where = f"serve-chaos {args}\nstdout: {proc.stdout[-800:]}\nstderr: {proc.stderr[-1500:]}"
    assert "Traceback" not in proc.stdout + proc.stderr, where
    assert proc.returncode == case.code, where
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, where
    assert case.words in lines[0], where


def test_a_killed_runs_directory_renders_as_partial(tmp_path):
    run = verdict_run(tmp_path, name="20261126T000000Z-network_partition-dead")
    (run / "probes.jsonl").write_text("")
    out = tmp_path / "missing" / "folder" / "report.html"
    junit = tmp_path / "other" / "j.xml"
    proc = subprocess.run([sys.executable, "-m", "serve_chaos.harness.cli", "report", str(run), "--out", str(out),
                           "--junit", str(junit)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "network_partition" in html and "partial" in html and junit.exists()
