"""Reports from run artifacts: HTML with embedded plots, Markdown, JUnit, trends and regressions."""

import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from serve_chaos.harness.report import artifacts as report
from serve_chaos.harness.report import render
from serve_chaos.harness.checks import SLO, evaluate
from serve_chaos.harness.faults import ReplicaKill
from serve_chaos.harness.scenario import Scenario
from serve_chaos.harness.report.trends import HistoryStore, flag_regressions
from serve_chaos.runtime.errors import ConfigError
from tests import test_checks as tc

SCENARIO = Scenario(name="replica_failure", title="t", promise="p", fault=ReplicaKill(),
                    slo=SLO(max_recovery_s=30.0), expected_churn={"replica": "victims"})


def write_run(root, run_id, started, history, scenario=SCENARIO, known=None):
    ev = evaluate(history, scenario.slo, scenario.expected_churn, 3.0)
    sc = scenario if known is None else Scenario(**{**scenario.__dict__, "known_broken": known})
    verdict = report.verdict(scenario=sc, run_id=run_id, status=ev.status, seed=1, settings={"gcs_ft": True},
                             started=started, finished=started + 60, evaluation=ev, history=history, plans=[],
                             t_gate=None, error="", cluster_healthy=True, t_recovered_live=[], target="local")
    run_dir = root / run_id
    report.write_run(run_dir, history, verdict)
    return run_dir


def test_html_markdown_junit_from_runs(tmp_path):
    good = write_run(tmp_path, "r1", 1000.0, tc.replica_kill_history())
    bad = write_run(tmp_path, "r2", 2000.0, tc.replica_kill_history(fail=tc.fail_between((25, 27), kind="5xx")),
                    scenario=Scenario(**{**SCENARIO.__dict__, "slo": SLO(max_outage_s=1.0)}))
    runs = report.collect_runs([tmp_path])
    assert runs == [good.resolve(), bad.resolve()]
    html = render.render_html(runs)
    assert html.count("<img") == 2 and "data:image/png;base64," in html
    assert "<td>kept</td>" in html and "<td>broken</td>" in html
    assert "front.longest_outage_s" in html
    md = render.render_markdown(runs)
    assert "| replica_failure | broken |" in md and "front.longest_outage_s = 2.00 s" in md
    suite = ET.fromstring(render.render_junit(runs))
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert suite.findall("testcase")[1].find("failure") is not None


def test_known_ray_deviation_is_labelled_not_failed(tmp_path):
    run = write_run(tmp_path, "r1", 1000.0, tc.replica_kill_history(fail=tc.fail_between((25, 27), kind="5xx")),
                    scenario=Scenario(**{**SCENARIO.__dict__, "slo": SLO(max_outage_s=1.0)}),
                    known={"front.longest_outage_s": "a known Ray bug"})
    row = render.verdict_row(report.load_verdict(run))
    assert row["status"] == "known deviation"
    suite = ET.fromstring(render.render_junit([run]))
    assert suite.get("failures") == "0" and suite.get("skipped") == "1"


def test_not_a_run_dir_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        report.collect_runs([tmp_path])
    assert "is not a run directory" in str(err.value)
    with pytest.raises(ConfigError):
        report.collect_runs([tmp_path / "missing"])


def test_regression_needs_a_baseline_and_beats_the_noise():
    rows = [{"scenario": "s", "target": "local", "gcs_ft": True, "started_at": float(i), "availability": a,
             "recovery_s": r, "run_id": str(i)}
            for i, (a, r) in enumerate([(1.0, 10.0), (1.0, 11.0), (1.0, 10.5), (1.0, 12.0), (0.95, 30.0)])]
    flagged = flag_regressions(pd.DataFrame(rows))
    assert flagged["regression"].tolist() == [False, False, False, False, True]
    assert "recovery 30.0 s > baseline" in flagged.iloc[-1]["why"]
    assert "availability 0.9500" in flagged.iloc[-1]["why"]
    # within the noise floor: +2.5 s on a 10 s baseline is not a regression
    rows[-1].update(availability=0.9995, recovery_s=12.5)
    assert not flag_regressions(pd.DataFrame(rows))["regression"].any()


def test_html_shows_trend_and_flags_tonight(tmp_path):
    store = HistoryStore(tmp_path / "hist")
    runs = []
    for i, extra in enumerate([(), (), ((25, 40),)]):
        fail = tc.fail_between(*extra, kind="5xx") if extra else (lambda t: None)
        run = write_run(tmp_path / "runs", f"r{i}", 1000.0 * (i + 1), tc.replica_kill_history(fail=fail))
        store.add(report.load_verdict(run))
        runs.append(run)
    assert not store.add(report.load_verdict(runs[0]))  # recorded once only
    html = render.render_html(runs, store)
    assert "Trends across runs" in html
    assert "Regressions tonight: replica_failure" in html
    assert html.count("<img") == 4  # three timelines and one trend


def test_an_existing_output_file_may_be_written_again(tmp_path):
    from serve_chaos.harness.outputs import check_dir, check_file

    out = tmp_path / "report.html"
    out.write_text("old")
    check_file(out, "the out file", "--out")  # rewriting last night's report is fine
    check_dir(tmp_path, "the report directory", "--report-dir")
    with pytest.raises(ConfigError, match="lies under"):
        check_file(out / "nested.html", "the out file", "--out")


# ---------------------------------------------------------------------- top-down, one vocabulary
def test_every_report_opens_with_the_summary_and_the_shared_settings(tmp_path):
    from tests import synthetic_runs as sr

    runs = [sr.write(tmp_path, "r1", 1000.0, sr.shaped("replica_failure"), sr.replica_kill_history()),
            sr.write(tmp_path, "r2", 1001.0, sr.shaped("head_failure_no_gcs_ft"), sr.replica_kill_history(),
                     settings={"gcs_ft": False}),
            sr.controller_failure_run(tmp_path, "r3", 1002.0),
            sr.skipped(tmp_path, "r4", 1003.0, SCENARIO, "it does not apply")]
    line = ("4 runs: 2 kept, 1 known deviation, 0 broken, 1 skipped; worst availability 1.0000 (replica_failure); "
            "slowest recovery 13.5 s (replica_failure)")
    html = render.render_html(runs)
    body = html.split("<body>", 1)[1]
    assert body.index(line) < body.index("Settings of every run") < body.index("<h2>Verdicts</h2>")
    # gcs_ft=True is said once; only the run without GCS FT says otherwise.
    assert "gcs_ft=True" in body.split("<h2>Verdicts</h2>")[0]
    assert body.count("gcs_ft=False") == 2 and body.count("gcs_ft=True") == 1  # table row and its section
    md = render.render_markdown(runs)
    assert md.splitlines()[2] == f"**{line}**" and md.splitlines()[4].startswith("Settings of every run")
    suite = ET.fromstring(render.render_junit(runs))
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["summary"] == line and "gcs_ft=True" in props["settings"]
    assert suite.find("system-out").text.startswith(line)
    assert (suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("0", "2", "0")


def test_a_broken_row_says_what_would_help_with_evidence(tmp_path):
    from tests import synthetic_runs as sr

    from serve_chaos.runtime.app.serve_config import SleepyPidConfig

    soft = SleepyPidConfig().spec()  # Serve's soft spreading
    lost = sr.write(tmp_path, "r1", 1000.0, sr.shaped("worker_node_failure"),
                    sr.replica_kill_history(fail=lambda t: "timeout" if 20 <= t < 23.5 else None), app=soft)
    md = render.render_markdown([lost])
    help_text = md.split("### What would help")[1]
    assert "set `max_replicas_per_node`" in help_text  # the guide's remedy
    assert "Yours: sleepy/SleepyPid num_replicas=6 max_replicas_per_node unset (Serve's default: soft spreading)" \
        in help_text  # the user's setting
    assert "front.longest_outage_s = 3.50 s (bound <= 1.0 s)" in help_text  # the figure measured
    assert "35 of 135 requests through front timed out" in help_text
    html = render.render_html([lost])
    assert html.index("<h2>What would help</h2>") < html.index("<code>max_replicas_per_node</code>")
    junit = ET.fromstring(render.render_junit([lost]))
    assert "what would help: set `max_replicas_per_node`" in junit.find("testcase/failure").text


def test_a_kept_run_needs_no_advice(tmp_path):
    from serve_chaos.harness.report.remedies import advice
    from tests import synthetic_runs as sr

    kept = sr.write(tmp_path, "r1", 1000.0, sr.shaped("worker_node_failure"), sr.replica_kill_history())
    assert advice(report.load_verdict(kept)) == []
    assert "What would help" not in render.render_markdown([kept])


def test_the_timeline_shows_latency_bands_and_the_section_a_latency_table(tmp_path):
    from tests import synthetic_runs as sr

    slow = sr.write(tmp_path, "r1", 1000.0, sr.shaped("replica_hang"),
                    sr.replica_kill_history(latency=lambda t: 600.0 if 20 <= t < 26 else 5.0))
    html = render.render_html([slow])
    table = html.split("<th>phase</th><th>window</th>")[1].split("</table>")[0]
    assert "<td>main</td><td>before the fault</td><td>200</td><td>0</td><td>5.0 ms</td>" in table
    assert "<td>main</td><td>during the fault</td><td>135</td><td>0</td><td>5.0 ms</td>" in table
    assert "<td>600.0 ms</td>" in table  # the during-fault p95/p99/max
