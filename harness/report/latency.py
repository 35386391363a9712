"""Latency bands: how fast requests were answered, not only whether they failed.

A gray failure (a starved pod, a slow replica, a lossy network) is mostly latency.
Every request falls in one band: answered in under 50 ms, 50-250 ms, 250 ms-1 s,
over 1 s, or failed.  ``band_shares`` gives the share of each band per time
bucket (the report's timeline plots it); ``latency_rows`` compares p50/p95/p99/max
before a fault with during it, per phase.  Latencies are milliseconds, times
epoch seconds, bucket widths seconds.  Pure functions of request frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

FAILED = "failed"


@dataclass(frozen=True)
class Band:
    """Successful requests answered in ``[low_ms, high_ms)``."""

    label: str
    low_ms: float
    high_ms: float


BANDS: tuple[Band, ...] = (
    Band("<50 ms", 0.0, 50.0),
    Band("50-250 ms", 50.0, 250.0),
    Band("250 ms-1 s", 250.0, 1000.0),
    Band(">1 s", 1000.0, math.inf),
)
#: Every column ``band_shares`` and ``band_counts`` return, fastest first, failures last.
LABELS: tuple[str, ...] = tuple(b.label for b in BANDS) + (FAILED,)


def band_labels(requests: pd.DataFrame) -> pd.Series:
    """The band of each request (``failed`` for a failure, whatever its latency)."""
    if requests.empty:
        return pd.Series([], dtype=object)
    latency = pd.to_numeric(requests["latency_ms"], errors="coerce").fillna(math.inf).to_numpy(dtype=float)
    edges = [b.low_ms for b in BANDS[1:]]
    labels = np.array([b.label for b in BANDS], dtype=object)[np.searchsorted(edges, latency, side="right")]
    labels = np.where(requests["ok"].to_numpy(dtype=bool), labels, FAILED)
    return pd.Series(labels, index=requests.index, dtype=object)


def band_counts(requests: pd.DataFrame) -> dict[str, int]:
    """Requests per band, every band present (zero included)."""
    counts = band_labels(requests).value_counts()
    return {label: int(counts.get(label, 0)) for label in LABELS}


def band_shares(requests: pd.DataFrame, t0: float, bucket_s: float = 1.0) -> pd.DataFrame:
    """Share of each band per ``bucket_s`` bucket of intended send time.

    Indexed by bucket start in seconds from ``t0``; columns ``LABELS``; each row sums
    to 1 (buckets without requests are left out)."""
    if requests.empty:
        return pd.DataFrame(columns=list(LABELS), dtype=float)
    bucket = np.floor((requests["t"].to_numpy(dtype=float) - t0) / bucket_s) * bucket_s
    frame = pd.DataFrame({"bucket": bucket, "band": band_labels(requests).to_numpy()})
    counts = frame.groupby(["bucket", "band"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(LABELS), fill_value=0)
    return counts.div(counts.sum(axis=1), axis=0).astype(float)


@dataclass(frozen=True)
class LatencyRow:
    """One stretch of one phase: requests sent, failed, and latency of the successful ones (ms)."""

    phase: str
    when: str
    requests: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_figures(requests: pd.DataFrame) -> dict[str, float | None]:
    """p50/p95/p99/max latency (ms) of the successful requests; None when there are none."""
    ok = requests[requests["ok"]] if not requests.empty else requests
    if ok.empty:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    values = pd.to_numeric(ok["latency_ms"], errors="coerce").dropna().astype(float)
    if values.empty:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    q = values.quantile([0.5, 0.95, 0.99])
    return {"p50_ms": float(q[0.5]), "p95_ms": float(q[0.95]), "p99_ms": float(q[0.99]),
            "max_ms": float(values.max())}


def _row(requests: pd.DataFrame, phase: str, when: str, start: float, end: float) -> LatencyRow:
    sel = requests[(requests["t"] >= start) & (requests["t"] < end)] if not requests.empty else requests
    failed = int((~sel["ok"]).sum()) if not sel.empty else 0
    return LatencyRow(phase, when, int(len(sel)), failed, **latency_figures(sel))


def latency_rows(requests: pd.DataFrame, metrics: dict[str, Any], endpoint: str | None = None) -> list[LatencyRow]:
    """Before and during each fault of a verdict (``metrics``: the main phase and its
    ``followups``, each with its ``window``), over ``endpoint``'s requests (all when None).

    *Before* is the phase's slice up to its fault, *during* from the fault to its
    recovery (or its deadline), the same windows every other figure is judged over."""
    if endpoint is not None and not requests.empty:
        requests = requests[requests["endpoint"] == endpoint]
    rows: list[LatencyRow] = []
    phases = [("main", metrics), *((metrics.get("followups") or {}).items())]
    for name, phase in phases:
        window = phase.get("window") or {}
        if not {"start", "fault", "end"} <= set(window):
            continue
        rows.append(_row(requests, name, "before", window["start"], window["fault"]))
        rows.append(_row(requests, name, "during", window["fault"], max(window["end"], window["fault"])))
    return rows
