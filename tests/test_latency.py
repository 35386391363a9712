"""Latency bands and before/during latency tables on crafted timelines, with exact figures."""

from __future__ import annotations

import pytest

from serve_chaos.harness.observe.history import requests_frame
from serve_chaos.harness.report.latency import FAILED, LABELS, band_counts, band_labels, band_shares, latency_rows
from tests import synthetic as syn


def frame(latencies: list[float], fail_at: set[int] = frozenset(), t0: float = 0.0, rate: float = 10.0):
    records = syn.requests(t0, t0 + len(latencies) / rate, rate, fail=lambda t: None)
    for i, (record, latency) in enumerate(zip(records, latencies)):
        record["latency_ms"] = latency
        if i in fail_at:
            record.update(ok=False, error="timeout")
    return requests_frame(records)


def test_each_request_falls_in_one_band_and_failures_in_their_own():
    df = frame([0.0, 49.9, 50.0, 249.9, 250.0, 999.9, 1000.0, 30000.0, 3.0], fail_at={8})
    assert band_labels(df).tolist() == ["<50 ms", "<50 ms", "50-250 ms", "50-250 ms", "250 ms-1 s", "250 ms-1 s",
                                        ">1 s", ">1 s", FAILED]
    assert band_counts(df) == {"<50 ms": 2, "50-250 ms": 2, "250 ms-1 s": 2, ">1 s": 2, FAILED: 1}


def test_band_shares_per_bucket_sum_to_one():
    # 10 req/s: the first second fast, the second slow with 2 failures.
    df = frame([5.0] * 10 + [300.0] * 8 + [5000.0] * 2, fail_at={18, 19}, t0=100.0)
    shares = band_shares(df, t0=100.0, bucket_s=1.0)
    assert list(shares.columns) == list(LABELS)
    assert shares.index.tolist() == [0.0, 1.0]
    assert shares.loc[0.0, "<50 ms"] == 1.0
    assert shares.loc[1.0, "250 ms-1 s"] == pytest.approx(0.8) and shares.loc[1.0, FAILED] == pytest.approx(0.2)
    assert shares.sum(axis=1).tolist() == pytest.approx([1.0, 1.0])
    assert band_shares(df.iloc[0:0], t0=0.0).empty


def test_latency_before_and_during_each_fault():
    # 0-20 s at 10 ms; the fault at 20 s; 20-30 s at 200 ms with the last second failing; recovered at 30 s.
    latencies = [10.0] * 200 + [200.0] * 100
    df = frame(latencies, fail_at=set(range(290, 300)))
    metrics = {"window": {"start": 0.0, "fault": 20.0, "end": 30.0, "recovered": True, "after_end": 30.0},
               "followups": {"again": {"window": {"start": 25.0, "fault": 27.0, "end": 30.0}}}}
    rows = latency_rows(df, metrics)
    assert [(r.phase, r.when, r.requests, r.failed) for r in rows] == [
        ("main", "before", 200, 0), ("main", "during", 100, 10), ("again", "before", 20, 0),
        ("again", "during", 30, 10)]
    before, during = rows[0], rows[1]
    assert (before.p50_ms, before.p99_ms, before.max_ms) == (10.0, 10.0, 10.0)
    assert (during.p50_ms, during.p95_ms, during.max_ms) == (200.0, 200.0, 200.0)  # failures are not latencies
    assert latency_rows(df, {"window": {"start": 0.0}}) == []  # no fault window, no rows


def test_the_live_view_shows_latency_bands_not_only_errors():
    from serve_chaos.harness.observe.live import bands_text, latency_text, live_numbers

    # The last 10 s: 80 fast answers, 15 slow ones (a starved pod), 5 timeouts.
    latencies = [5.0] * 80 + [400.0] * 15 + [5000.0] * 5
    earlier = frame([5.0] * 90, t0=0.0).to_dict("records")
    recent = [{**r, "seq": r["seq"] + 100} for r in frame(latencies, fail_at=set(range(95, 100)), t0=10.0)
              .to_dict("records")]
    history = syn.history(earlier + recent, [])
    numbers = live_numbers(history, now=20.0, offered_rate=10.0)
    assert numbers["n"] == 100 and numbers["errors"] == {"timeout": 5}
    assert numbers["bands"] == pytest.approx({"<50 ms": 0.8, "50-250 ms": 0.0, "250 ms-1 s": 0.15, ">1 s": 0.0,
                                              "failed": 0.05})
    assert numbers["p50_ms"] == 5.0 and numbers["p99_ms"] == pytest.approx(400.0)
    assert bands_text(numbers["bands"]) == "<50 ms 80% | 50-250 ms 0% | 250 ms-1 s 15% | >1 s 0% | failed 5%"
    assert latency_text(numbers) == "p50 5 ms p95 400 ms p99 400 ms"
