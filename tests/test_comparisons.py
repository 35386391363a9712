"""Planned and unplanned losses side by side: pure functions of verdicts."""

from serve_chaos.harness.report.comparisons import PAIRS, comparisons
from serve_chaos.harness.report.text import explanation_lines
from serve_chaos.harness.report.view import view


def verdict(scenario: str, availability: float, failed: int, recovery_s: float, min_running: int) -> dict:
    front = {"availability": availability, "availability_during_fault": availability, "failed_during_fault": failed,
             "longest_outage_s": 0.0 if failed == 0 else 0.4, "latency_during_fault": {"p99_ms": 61.7}}
    return {"scenario": scenario, "run_id": scenario, "status": "pass", "started_at": 0.0,
            "metrics": {"recovery_s": recovery_s, "t_fault": 1.0, "endpoints": {"front": front},
                        "churn": {"replica": {"left": ["a"], "appeared": ["b"]}}},
            "checks": [{"name": "capacity.min_running_replicas", "status": "pass", "value": min_running}]}


def test_a_pair_is_shown_only_with_a_run_of_each_side():
    drain = verdict("node_drain", 1.0, 0, 45.2, 4)
    loss = verdict("worker_node_failure", 0.9983, 2, 77.0, 5)
    assert comparisons([drain]) == ()
    (comp,) = comparisons([drain, verdict("replica_failure", 1.0, 0, 13.0, 5), loss])
    assert comp.pair is PAIRS[0]
    rows = {m: (p, u) for m, p, u in comp.rows}
    assert rows["front availability during the fault"] == ("1.0000", "0.9983")
    assert rows["front requests failed during the fault"] == ("0", "2")
    assert rows["fault to recovery"] == ("45.2 s", "77.0 s")
    assert rows["fewest RUNNING replicas"] == ("4", "5")
    assert rows["front p99 during the fault"] == ("62 ms", "62 ms")
    assert rows["churn"] == ("replica -1+1", "replica -1+1")


def test_the_last_run_of_a_scenario_counts_and_missing_figures_read_as_dashes():
    older = verdict("node_drain", 0.5, 99, 90.0, 1)
    newer = verdict("node_drain", 1.0, 0, 45.0, 4)
    bare = {"scenario": "worker_node_failure", "metrics": {"recovery_s": None}, "checks": []}
    (comp,) = comparisons([older, newer, bare])
    rows = {m: (p, u) for m, p, u in comp.rows}
    assert rows["front requests failed during the fault"] == ("0", "-")
    assert rows["fault to recovery"] == ("45.0 s", "-")


def test_every_report_carries_the_pair():
    report = view([verdict("node_drain", 1.0, 0, 45.2, 4), verdict("worker_node_failure", 0.9983, 2, 77.0, 5)])
    lines = explanation_lines(report)
    assert lines[0].startswith("side by side: a worker node lost with notice")
    assert any(ln.startswith("fault to recovery") and "45.2 s" in ln and ln.endswith("77.0 s") for ln in lines)


def test_html_and_markdown_show_the_pair(tmp_path):
    import json

    from serve_chaos.harness.report.render import render_html, render_markdown

    dirs = []
    for v in (verdict("node_drain", 1.0, 0, 45.2, 4), verdict("worker_node_failure", 0.9983, 2, 77.0, 5)):
        d = tmp_path / v["scenario"]
        d.mkdir()
        (d / "verdict.json").write_text(json.dumps(v))
        dirs.append(d)
    html, md = render_html(dirs), render_markdown(dirs)
    assert "<h2>Side by side: a worker node lost with notice" in html and "<td>45.2 s</td><td>77.0 s</td>" in html
    assert "| fault to recovery | 45.2 s | 77.0 s |" in md
