"""The truth table across Ray releases, rendered from synthetic run directories (no cluster)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from serve_chaos.harness.report import matrix as truth
from serve_chaos.harness.catalog import ORDER, select
from serve_chaos.runtime.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def verdict(scenario: str, version: str, status: str, *, availability: float = 1.0, recovery: float | None = 12.0,
            known: dict[str, str] | None = None, failing: tuple[str, ...] = (), error: str = "",
            started: float = 1.0) -> dict[str, Any]:
    checks = [{"name": name, "status": "fail", "value": None} for name in failing]
    checks.append({"name": "recovery_s", "status": "pass", "value": recovery})
    return {"run_id": f"{int(started)}-{scenario}-{version}", "scenario": scenario, "status": status,
            "started_at": started, "ray_version": version, "error": error, "settings": {"ray_version": version},
            "metrics": {"recovery_s": recovery, "endpoints": {"front": {"availability": availability}}},
            "scenario_spec": {"slo": {"primary_endpoint": "front"}}, "checks": checks,
            "violations": [f"{n}: failed [fail]" for n in failing], "known_broken": known or {}}


def write_runs(base: Path, verdicts: list[dict[str, Any]]) -> Path:
    for v in verdicts:
        run = base / f"ray-{v['ray_version']}" / v["run_id"]
        run.mkdir(parents=True)
        (run / "verdict.json").write_text(json.dumps(v))
    return base


STALE = "proxies keep the dead controller's subscription (ray#63784)"


def sample(base: Path) -> Path:
    return write_runs(base, [
        verdict("replica_failure", "2.40.0", "pass", recovery=13.1),
        verdict("replica_failure", "2.50.0", "pass", recovery=14.2),
        verdict("replica_failure", "2.60.0", "pass", recovery=15.0),
        # kept on 2.40, a known deviation from 2.50 on: regressed in 2.50.0
        verdict("controller_failure", "2.40.0", "pass"),
        verdict("controller_failure", "2.50.0", "fail", known={"replicas_after_recovery.recovery_s": STALE},
                failing=("replicas_after_recovery.recovery_s",), availability=0.61, recovery=None),
        verdict("controller_failure", "2.60.0", "fail", known={"replicas_after_recovery.recovery_s": STALE},
                failing=("replicas_after_recovery.recovery_s",), availability=0.58, recovery=None),
        # broken on 2.40, kept after: fixed in 2.50.0
        verdict("worker_pod_failure", "2.40.0", "fail", failing=("front.availability_during_fault",),
                availability=0.97),
        verdict("worker_pod_failure", "2.50.0", "pass"),
        verdict("worker_pod_failure", "2.60.0", "pass"),
        # skipped on 2.50 (no topology): compared across it, 2.40 -> 2.60
        verdict("downstream_replica_failure", "2.40.0", "pass"),
        verdict("downstream_replica_failure", "2.50.0", "skipped", error="no deployment_topology before Ray 2.60.0"),
        verdict("downstream_replica_failure", "2.60.0", "pass"),
    ])


def test_cells_carry_the_verdict_and_figures_and_changes_are_marked(tmp_path):
    table = truth.build(truth.find_runs([sample(tmp_path / "m")]), ORDER)
    assert table.versions == ["2.40.0", "2.50.0", "2.60.0"]
    assert table.scenarios == ["replica_failure", "controller_failure", "worker_pod_failure",
                               "downstream_replica_failure"]  # the catalogue's order
    cell = table.cell("replica_failure", "2.50.0")
    assert (cell.status, cell.availability, cell.recovery_s, cell.change) == (truth.KEPT, 1.0, 14.2, "")
    known = table.cell("controller_failure", "2.50.0")
    assert known.status == truth.KNOWN and known.change == "regressed" and STALE in known.detail
    assert table.cell("controller_failure", "2.60.0").change == ""  # the same as its left neighbour
    assert table.cell("worker_pod_failure", "2.50.0").change == "fixed"
    assert table.cell("worker_pod_failure", "2.40.0").status == truth.BROKEN
    skipped = table.cell("downstream_replica_failure", "2.50.0")
    assert skipped.status == truth.SKIPPED and "deployment_topology" in skipped.detail
    assert table.cell("downstream_replica_failure", "2.60.0").change == ""  # kept, as on 2.40
    assert [(c.scenario, c.version, c.change) for c in table.changes()] == [
        ("controller_failure", "2.50.0", "regressed"), ("worker_pod_failure", "2.50.0", "fixed")]
    assert truth.change_text(known, table) == "regressed in Ray 2.50.0 (kept in 2.40.0, known deviation now)"


def test_a_known_deviation_turning_into_an_unknown_failure_is_a_change(tmp_path):
    base = write_runs(tmp_path / "m", [
        verdict("proxy_failure", "2.40.0", "fail", known={"proxy.restarted_by_ray": "max_restarts=0"},
                failing=("proxy.restarted_by_ray",)),
        verdict("proxy_failure", "2.50.0", "fail", known={"proxy.restarted_by_ray": "max_restarts=0"},
                failing=("proxy.restarted_by_ray", "other_pods.availability_during_fault")),
    ])
    table = truth.build(truth.find_runs([base]))
    assert table.cell("proxy_failure", "2.50.0").status == truth.BROKEN
    assert table.cell("proxy_failure", "2.50.0").change == "changed"


def test_the_latest_of_several_runs_is_shown_and_counted(tmp_path):
    base = write_runs(tmp_path / "m", [verdict("replica_failure", "2.40.0", "fail", failing=("x",), started=1.0),
                                       verdict("replica_failure", "2.40.0", "pass", started=2.0)])
    cell = truth.build(truth.find_runs([base])).cell("replica_failure", "2.40.0")
    assert cell.status == truth.KEPT and cell.runs == 2


def test_html_and_markdown_show_every_cell_and_the_changes(tmp_path):
    table = truth.build(truth.find_runs([sample(tmp_path / "m")]), ORDER)
    page = truth.render_html(table)
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert page.count("<th>Ray ") == 3 and page.count("class='known change'") == 1
    assert "regressed in Ray 2.50.0 (kept in 2.40.0, known deviation now)" in page
    assert "fixed in Ray 2.50.0 (broken in 2.40.0, kept now)" in page
    assert "0.6100 · " not in page and "0.6100" in page and "13.1 s" in page
    md = truth.render_markdown(table)
    assert "| scenario | Ray 2.40.0 | Ray 2.50.0 | Ray 2.60.0 |" in md
    assert "| controller_failure | kept · 1.0000 · 12.0 s | **known deviation** (regressed) · 0.6100 |" in md
    assert "- `worker_pod_failure`: fixed in Ray 2.50.0 (broken in 2.40.0, kept now)" in md


def test_run_directories_are_found_below_a_matrix_and_nothing_is_one_line(tmp_path):
    base = sample(tmp_path / "m")
    assert len(truth.find_runs([base])) == 12
    assert len(truth.find_runs([base / "ray-2.40.0"])) == 4
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no run directory in or below"):
        truth.find_runs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="does not exist"):
        truth.find_runs([tmp_path / "nope"])


# ---------------------------------------------------------------------- the command
def cli(*args: str, home: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SERVE_CHAOS_HOME=home)
    return subprocess.run([sys.executable, "-m", "serve_chaos.harness.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


@pytest.fixture
def home():
    base = tempfile.mkdtemp(prefix="scm", dir="/tmp")
    yield os.path.join(base, "h")
    shutil.rmtree(base, ignore_errors=True)


def test_matrix_from_renders_without_running(tmp_path, home):
    base = sample(tmp_path / "m")
    out = tmp_path / "out" / "table.html"
    proc = cli("matrix", "--from", str(base), "--out", str(out), home=home)
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and out.with_suffix(".md").exists()
    assert "regressed in Ray 2.50.0" in proc.stdout and not os.path.exists(home)


@pytest.mark.parametrize("args,words", [
    (["--from", "X", "--ray-versions", "2.40.0"], "--from renders existing runs"),
    (["--ray-versions", "2.30.0,2.50.0"], "--ray-versions 2.30.0 is outside the supported Ray range 2.40.0..2.60.0"),
    (["--ray-versions", ","], "--ray-versions names no Ray version"),
    (["nosuch", "--ray-versions", "2.40.0"], "unknown scenario 'nosuch'"),
    (["--from", "/nonexistent/dir"], "/nonexistent/dir does not exist"),
])
def test_bad_matrix_invocations_are_one_line(home, args, words):
    proc = cli("matrix", *args, home=home)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert not os.path.exists(home)


def test_a_matrix_runs_each_release_on_its_own_cluster(monkeypatch, tmp_path):
    from serve_chaos.harness.cli import matrix as cmd
    from serve_chaos.harness.options import RunOptions
    from serve_chaos.harness.targets import TargetOptions

    ran: list[tuple[str, Path]] = []

    def fake_run(chosen: list, options: RunOptions, command: str) -> int:
        ran.append((options.target.ray_version, options.report_dir))
        return {"2.40.0": 0, "2.50.0": 1, "2.60.0": 0}[options.target.ray_version]

    monkeypatch.setattr("serve_chaos.harness.cli.execute.run_scenarios", fake_run)
    monkeypatch.setattr(cmd, "attached", lambda target: None)

    def options_for(version: str) -> RunOptions:
        return RunOptions.build(report_dir=tmp_path / f"ray-{version}", target=TargetOptions(ray_version=version))

    code = cmd.run_matrix(select(["replica_failure"]), ("2.40.0", "2.50.0", "2.60.0"), options_for, "t")
    assert code == 1  # 2.50.0 had a failure that is not a known deviation
    assert ran == [(v, tmp_path / f"ray-{v}") for v in ("2.40.0", "2.50.0", "2.60.0")]


def test_a_matrix_stops_when_interrupted_and_refuses_a_running_cluster(monkeypatch, tmp_path):
    from serve_chaos.harness.cli import matrix as cmd
    from serve_chaos.harness.options import RunOptions
    from serve_chaos.harness.targets import TargetOptions

    ran: list[str] = []

    def interrupted(chosen: list, options: RunOptions, command: str) -> int:
        ran.append(options.target.ray_version)
        return 130

    monkeypatch.setattr("serve_chaos.harness.cli.execute.run_scenarios", interrupted)
    monkeypatch.setattr(cmd, "attached", lambda target: None)
    options_for = lambda v: RunOptions.build(target=TargetOptions(ray_version=v))  # noqa: E731
    assert cmd.run_matrix(select(["replica_failure"]), ("2.40.0", "2.60.0"), options_for, "t") == 130
    assert ran == ["2.40.0"]
    monkeypatch.setattr(cmd, "attached", lambda target: type("C", (), {"label": "abc123"})())
    with pytest.raises(ConfigError, match=r"a cluster is already up \(abc123\)"):
        cmd.run_matrix(select(["replica_failure"]), ("2.40.0",), options_for, "t")


def test_trends_compare_a_release_only_with_itself():
    import pandas as pd

    from serve_chaos.harness.report.trends import flag_regressions

    rows = [{"scenario": "s", "target": "local", "gcs_ft": True, "ray_version": v, "started_at": float(i),
             "availability": 1.0, "recovery_s": r, "run_id": str(i)}
            for i, (v, r) in enumerate([("2.60.0", 10.0), ("2.60.0", 11.0), ("2.60.0", 10.5),
                                        ("2.40.0", 40.0),    # another release: no baseline yet, not a regression
                                        ("2.60.0", 40.0)])]  # the same release, 4x slower: a regression
    assert flag_regressions(pd.DataFrame(rows))["regression"].tolist() == [False, False, False, False, True]


def test_a_changed_verdict_is_bisected_to_the_release_where_it_changed():
    from serve_chaos.harness.report.bisect import bisect_change
    from serve_chaos.harness.report.matrix import BROKEN, KEPT, SKIPPED

    releases = ["2.55.0", "2.55.1", "2.56.0", "2.56.1", "2.57.0", "2.57.1", "2.58.0", "2.59.0", "2.60.0"]
    asked = []

    def verdict_of(v):
        asked.append(v)
        return BROKEN if releases.index(v) < releases.index("2.57.0") else KEPT

    change = bisect_change("head_failure_gcs_ft", releases, verdict_of)
    assert (change.first, change.last_before) == ("2.57.0", "2.56.1")
    assert change.text() == "head_failure_gcs_ft: first kept in 2.57.0 (kept; broken in 2.56.1)"
    assert len(asked) <= 2 + 4  # the two ends, then a binary search over 9 releases
    # Broken from a release on; equal ends are no change; an unjudged release stops the search.
    regressed = bisect_change("s", releases, lambda v: KEPT if v < "2.58.0" else BROKEN)
    assert regressed.text().startswith("s: first broken in 2.58.0")
    assert bisect_change("s", releases, lambda v: KEPT) is None
    stuck = bisect_change("s", releases, lambda v: SKIPPED if v == "2.57.1" else (KEPT if v >= "2.58.0" else BROKEN))
    assert stuck.unjudged == "2.57.1" and stuck.first == "2.58.0" and "could not be judged" in stuck.text()


def test_a_range_of_releases_is_checked_and_expanded_from_what_the_index_serves():
    import pytest

    from serve_chaos.runtime.errors import ConfigError
    from serve_chaos.runtime.ray_versions import parse_ray_range, releases_between

    assert parse_ray_range("2.40.0,2.50.0") is None
    assert parse_ray_range("2.55.0..2.60.0") == ("2.55.0", "2.60.0")
    for bad in ("2.60.0..2.55.0", "2.55..2.60.0", "2.30.0..2.60.0"):
        with pytest.raises(ConfigError):
            parse_ray_range(bad)
    published = ["2.60.0", "2.59.0", "2.58.1", "2.58.0", "2.57.0rc1", "2.56.1", "2.54.0"]
    assert releases_between("2.56.0", "2.59.0", published) == ("2.56.0", "2.56.1", "2.58.0", "2.58.1", "2.59.0")


def test_a_range_runs_both_ends_then_only_what_the_bisection_needs(monkeypatch, tmp_path):
    from serve_chaos.harness.cli import matrix as cmd
    from serve_chaos.harness.options import RunOptions
    from serve_chaos.harness.targets import TargetOptions

    releases = ["2.55.0", "2.56.0", "2.57.0", "2.58.0", "2.59.0", "2.60.0"]
    ran: list[str] = []

    def fake_run(chosen: list, options: RunOptions, command: str) -> int:
        version = options.target.ray_version
        ran.append(version)
        status = "pass" if version >= "2.58.0" else "fail"
        write_runs(tmp_path, [verdict(s.name, version, status, started=len(ran)) for s in chosen])
        return 0 if status == "pass" else 1

    monkeypatch.setattr("serve_chaos.harness.cli.execute.run_scenarios", fake_run)
    monkeypatch.setattr(cmd, "attached", lambda target: None)

    def options_for(version: str) -> RunOptions:
        return RunOptions.build(report_dir=tmp_path / f"ray-{version}", target=TargetOptions(ray_version=version))

    chosen = select(["replica_failure"])
    assert cmd.run_matrix(chosen, ("2.55.0", "2.60.0"), options_for, "t") == 1
    code = cmd.bisect_changes(chosen, lambda: releases, options_for, tmp_path, ("2.55.0", "2.60.0"))
    assert code == 1 and ran[:2] == ["2.55.0", "2.60.0"] and len(ran) <= 2 + 3
    assert (tmp_path / "bisect.md").read_text() == \
        "- replica_failure: first kept in 2.58.0 (kept; broken in 2.57.0)\n"
