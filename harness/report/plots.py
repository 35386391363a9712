"""Matplotlib figures for the report, returned as PNG bytes (embedded as data URIs).

Times on every x axis are seconds relative to the first fault.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from serve_chaos.harness.observe.history import History  # noqa: E402
from serve_chaos.harness.report.latency import FAILED, LABELS, band_shares  # noqa: E402

ERROR_COLORS = {
    "refused": "#d62728",
    "reset": "#ff7f0e",
    "timeout": "#9467bd",
    "unreachable": "#8c564b",
    "5xx": "#e377c2",
    "4xx": "#bcbd22",
    "client_overload": "#7f7f7f",
    "bad_body": "#17becf",
    "other": "#333333",
}
BIN_S = 0.1
#: Latency bands, fastest green to slowest red; failures dark.
BAND_COLORS = dict(zip(LABELS, ("#2ca02c", "#bcbd22", "#ff7f0e", "#d62728", "#333333")))
#: Width of one latency-band bucket (s): wide enough to hold several requests at our rates.
BAND_BUCKET_S = 1.0


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _phase_metrics(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return [metrics, *(metrics.get("followups") or {}).values()]


def _primary(metrics: dict[str, Any]) -> dict[str, Any]:
    endpoints = metrics.get("endpoints") or {}
    name = (metrics.get("slo") or {}).get("primary_endpoint", "front")
    return endpoints.get(name) or next(iter(endpoints.values()), {})


def _mark(ax: Any, history: History, metrics: dict[str, Any], t0: float) -> None:
    """Faults as red lines, outage windows red, degraded (brownout) spans orange,
    recovery spans yellow, heals green dashes."""
    for fault in history.faults:
        ax.axvline(fault.t_inject - t0, color="red", lw=1.5)
        if fault.t_heal:
            ax.axvline(fault.t_heal - t0, color="green", lw=1, ls="--")
    spans = [(metrics.get("t_fault"), metrics.get("t_recovered"))]
    for follow in (metrics.get("followups") or {}).values():
        spans.append((follow.get("t_fault"), follow.get("t_recovered")))
    for start, end in spans:
        if start and end:
            ax.axvspan(start - t0, end - t0, color="gold", alpha=0.18, lw=0)
    for phase in _phase_metrics(metrics):
        primary = _primary(phase)
        for a, b in primary.get("degraded_spans", []):
            ax.axvspan(a - t0, b - t0, color="darkorange", alpha=0.18, lw=0, hatch="//")
        for window in primary.get("outage_windows", []):
            if window["end"] - window["start"] >= 0.2:
                ax.axvspan(window["start"] - t0, window["end"] - t0, color="red", alpha=0.15, lw=0)


def timeline(history: History, metrics: dict[str, Any], title: str) -> bytes:
    """Requests per 100 ms by outcome, the share of requests per latency band per second,
    latency p50/p99, and live replica PIDs per pod."""
    t0 = history.faults[0].t_inject if history.faults else (history.t_load_start or 0.0)
    reqs = history.requests
    fig, axes = plt.subplots(4, 1, figsize=(11, 10.5), sharex=True, layout="constrained",
                             gridspec_kw={"height_ratios": [2.2, 1.3, 1.3, 2.0]})
    ax_req, ax_band, ax_lat, ax_pid = axes
    fig.suptitle(title, fontsize=11)
    if not reqs.empty:
        _requests_panel(ax_req, reqs, t0)
        _bands_panel(ax_band, reqs, t0)
        _latency_panel(ax_lat, reqs, t0)
    ax_req.set_ylabel("requests / 100 ms")
    ax_band.set_ylabel("share by latency")
    ax_lat.set_ylabel("latency ms")
    _replica_lanes(ax_pid, history, t0)
    for ax in axes:
        _mark(ax, history, metrics, t0)
        ax.grid(axis="x", alpha=0.3)
    ax_pid.set_xlabel("seconds from the fault (red line; green dashes: fault ended/healed; red shade: outage; "
                      "orange hatch: degraded -- rolling 1 s error ratio above the threshold; "
                      "yellow: fault until recovery)")
    return _png(fig)


def _requests_panel(ax: Any, reqs: pd.DataFrame, t0: float) -> None:
    """Stacked bars per 100 ms: successes, then failures by error class."""
    rel = reqs["t"] - t0
    lo, hi = float(rel.min()), float(rel.max())
    bins = np.arange(np.floor(lo / BIN_S) * BIN_S, hi + BIN_S, BIN_S)
    centers = bins[:-1]
    ok_counts, _ = np.histogram(rel[reqs["ok"]], bins=bins)
    ax.bar(centers, ok_counts, width=BIN_S, align="edge", color="#2ca02c", label="success", lw=0)
    bottom = ok_counts.astype(float)
    failed = reqs[~reqs["ok"]]
    for err, group in failed.groupby(failed["error"].fillna("other")):
        counts, _ = np.histogram(group["t"] - t0, bins=bins)
        ax.bar(centers, counts, width=BIN_S, align="edge", bottom=bottom,
               color=ERROR_COLORS.get(str(err), "#333333"), label=str(err), lw=0)
        bottom += counts
    ax.legend(loc="upper right", fontsize=7, ncol=4)


def _bands_panel(ax: Any, reqs: pd.DataFrame, t0: float) -> None:
    """Stacked shares per second: answered in < 50 ms, 50-250 ms, 250 ms-1 s, > 1 s, or failed."""
    shares = band_shares(reqs, t0, BAND_BUCKET_S)
    bottom = np.zeros(len(shares))
    for label in LABELS:
        values = shares[label].to_numpy(dtype=float)
        ax.bar(shares.index.to_numpy(dtype=float), values, width=BAND_BUCKET_S, align="edge", bottom=bottom,
               color=BAND_COLORS[label], label=label if label != FAILED else "failed", lw=0)
        bottom += values
    ax.set_ylim(0, 1.0)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper right", fontsize=7, ncol=5)


def _latency_panel(ax: Any, reqs: pd.DataFrame, t0: float) -> None:
    good = reqs[reqs["ok"]].copy()
    if good.empty:
        return
    good["sec"] = np.floor(good["t"] - t0)
    q = good.groupby("sec")["latency_ms"].quantile([0.5, 0.99]).unstack()
    ax.plot(q.index, q[0.5], color="#1f77b4", lw=1, label="p50")
    ax.plot(q.index, q[0.99], color="#d62728", lw=1, label="p99")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.legend(loc="upper right", fontsize=7)


def _replica_lanes(ax: Any, history: History, t0: float) -> None:
    """One lane per replica PID, grouped by pod: when each PID was alive."""
    rows = [(s.t - t0, a.get("pod") or "?", int(a["pid"]))
            for s in history.snapshots if s.actors_ok for a in s.actors if a["role"] == "replica" and a.get("pid")]
    if not rows:
        ax.text(0.5, 0.5, "no replica snapshots", ha="center", transform=ax.transAxes)
        return
    df = pd.DataFrame(rows, columns=["t", "pod", "pid"])
    lanes = df.groupby(["pod", "pid"])["t"].agg(["min", "max"]).reset_index().sort_values(["pod", "min"])
    palette = plt.get_cmap("tab10")
    pods = sorted(lanes["pod"].unique())
    labels = []
    for y, row in enumerate(lanes.itertuples()):
        color = palette(pods.index(row.pod) % 10)
        ax.broken_barh([(row.min, max(row.max - row.min, 0.5))], (y - 0.35, 0.7), color=color)
        labels.append(f"{row.pod} {row.pid}")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylabel("replica PIDs by pod")


def trend(points: pd.DataFrame, scenario: str) -> bytes:
    """Availability and recovery time of one scenario across runs (oldest left)."""
    fig, (ax_a, ax_r) = plt.subplots(1, 2, figsize=(11, 2.8))
    fig.suptitle(f"{scenario}: across runs", fontsize=10)
    x = np.arange(len(points))
    colors = ["#d62728" if r else "#1f77b4" for r in points.get("regression", [False] * len(points))]
    avail = points["availability"].astype(float)
    ax_a.plot(x, avail, color="#999999", lw=1)
    ax_a.scatter(x, avail, c=colors, zorder=3)
    ax_a.set_ylabel("availability")
    # Fixed scales, so run-to-run noise does not look like a trend.
    low = float(np.nanmin(avail)) if avail.notna().any() else 0.9
    ax_a.set_ylim(min(0.9, low - 0.01), 1.002)
    rec = points["recovery_s"].astype(float)
    ax_r.plot(x, rec, color="#999999", lw=1)
    ax_r.scatter(x, rec, c=colors, zorder=3)
    ax_r.set_ylabel("recovery s")
    ax_r.set_ylim(0, max(10.0, float(np.nanmax(rec)) * 1.2) if rec.notna().any() else 10.0)
    for ax in (ax_a, ax_r):
        ax.set_xticks(x)
        ax.set_xticklabels(points["label"], rotation=30, fontsize=7, ha="right")
        ax.grid(alpha=0.3)
    return _png(fig)
