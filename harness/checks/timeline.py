"""What the requests say: availability, outages, brownouts, latency -- each over a window of time.

Definitions (times epoch seconds, durations seconds; a request belongs to the
instant it was meant to be sent, ``t``):

- **availability** over ``[start, end)`` = successful / judged requests; ``None`` when none.
- **outage window** (per endpoint) = from a failed request that follows a success
  (or opens the window) to the next success.  Without a later success it is *open*
  and ends at its last failure.  An outage only counts *consecutive* failures.
- **brownout**: requests are counted in 100 ms buckets; the error ratio over the
  trailing 1 s (the last 10 buckets) is the rolling error ratio; a bucket is
  *degraded* when that ratio is above the threshold (default 1 %).  ``degraded_s``
  is the time degraded, ``longest_degraded_s`` the longest degraded stretch.  One
  isolated failure degrades about 1 s (the time it stays in the rolling window);
  interleaved failures -- half the requests failing for 3 s -- degrade about 4 s
  where the longest outage may be a single request.
- **phase window** of a fault: from the fault to its recovery, or to its deadline
  when it never recovered; what comes after recovery is reported separately.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

BUCKET_S = 0.1
ROLLING_S = 1.0
DEFAULT_DEGRADED_THRESHOLD = 0.01


def between(df: pd.DataFrame, start: float | None = None, end: float | None = None) -> pd.DataFrame:
    """Requests whose intended time lies in ``[start, end)``."""
    if df.empty:
        return df
    mask = pd.Series(True, index=df.index)
    if start is not None:
        mask &= df["t"] >= start
    if end is not None:
        mask &= df["t"] < end
    return df.loc[mask]


def availability(df: pd.DataFrame, start: float | None = None, end: float | None = None) -> float | None:
    sel = between(df, start, end)
    if sel.empty:
        return None
    return float(sel["ok"].mean())


@dataclass(frozen=True)
class Window:
    endpoint: str
    start: float
    end: float
    failures: int
    closed: bool

    @property
    def duration(self) -> float:
        return self.end - self.start


def outage_windows(df: pd.DataFrame, endpoint: str | None = None) -> list[Window]:
    """Outage windows of each endpoint (or of ``endpoint`` only), ordered by start."""
    windows: list[Window] = []
    if df.empty:
        return windows
    groups = [(endpoint, df[df["endpoint"] == endpoint])] if endpoint else list(df.groupby("endpoint", sort=True))
    for name, group in groups:
        start: float | None = None
        last_fail = 0.0
        failures = 0
        for t, ok in zip(group["t"].to_numpy(), group["ok"].to_numpy()):
            if not ok:
                if start is None:
                    start = float(t)
                    failures = 0
                failures += 1
                last_fail = float(t)
            elif start is not None:
                windows.append(Window(str(name), start, float(t), failures, True))
                start = None
        if start is not None:
            windows.append(Window(str(name), start, last_fail, failures, False))
    return sorted(windows, key=lambda w: (w.start, w.endpoint))


def longest_outage(windows: list[Window]) -> Window | None:
    return max(windows, key=lambda w: w.duration, default=None)


def first_success_after(windows: list[Window], t_fault: float) -> float | None:
    """Seconds from the fault to the end of the first outage ending after it (0: none; None: never ended)."""
    after = [w for w in windows if w.end >= t_fault]
    if not after:
        return 0.0
    return after[0].end - t_fault if after[0].closed else None


def service_restored_after(windows: list[Window], t_fault: float) -> float | None:
    """Seconds from the fault to the end of the last outage ending after it."""
    after = [w for w in windows if w.end >= t_fault]
    if not after:
        return 0.0
    return after[-1].end - t_fault if after[-1].closed else None


def failure_span(df: pd.DataFrame, start: float | None = None, end: float | None = None) -> float:
    """Seconds from the first to the last failed request in ``[start, end)`` (0 if none)."""
    failed = between(df, start, end)
    failed = failed[~failed["ok"]]["t"] if not failed.empty else failed
    return float(failed.max() - failed.min()) if len(failed) else 0.0


def error_classes(df: pd.DataFrame) -> dict[str, int]:
    if df.empty:
        return {}
    failed = df[~df["ok"]]
    return {str(k): int(v) for k, v in failed["error"].fillna("unknown").value_counts().items()}


def latency_percentiles(df: pd.DataFrame, start: float | None = None, end: float | None = None) -> dict[str, float | None]:
    """p50/p90/p99 latency (ms) of successful requests in ``[start, end)``."""
    sel = between(df, start, end)
    sel = sel[sel["ok"]] if not sel.empty else sel
    if sel.empty:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
    q = sel["latency_ms"].astype(float).quantile([0.5, 0.9, 0.99])
    return {"p50_ms": float(q[0.5]), "p90_ms": float(q[0.9]), "p99_ms": float(q[0.99])}


# ---------------------------------------------------------------------- brownouts
def error_buckets(df: pd.DataFrame, start: float, end: float, bucket_s: float = BUCKET_S) -> pd.DataFrame:
    """Requests and failures per ``bucket_s`` bucket of ``[start, end)``, indexed by bucket start (epoch s)."""
    n = max(0, int(np.ceil((end - start) / bucket_s - 1e-9)))
    total, failed = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    sel = between(df, start, end)
    if n and not sel.empty:
        idx = np.minimum(((sel["t"].to_numpy(dtype=float) - start) / bucket_s + 1e-9).astype(int), n - 1)
        np.add.at(total, idx, 1)
        np.add.at(failed, idx, (~sel["ok"].to_numpy(dtype=bool)).astype(int))
    return pd.DataFrame({"total": total, "failed": failed}, index=start + np.arange(n) * bucket_s)


def rolling_error_ratio(buckets: pd.DataFrame, window_s: float = ROLLING_S, bucket_s: float = BUCKET_S) -> pd.Series:
    """Error ratio over the trailing ``window_s`` at each bucket (NaN where nothing was sent)."""
    width = max(1, int(round(window_s / bucket_s)))
    total = buckets["total"].rolling(width, min_periods=1).sum()
    failed = buckets["failed"].rolling(width, min_periods=1).sum()
    return (failed / total.where(total > 0)).astype(float)


def degraded_spans(df: pd.DataFrame, start: float, end: float, threshold: float = DEFAULT_DEGRADED_THRESHOLD,
                   lead_s: float = ROLLING_S) -> list[tuple[float, float]]:
    """``(from, to)`` spans in ``[start, end)`` where the rolling error ratio is above ``threshold``.

    Requests from ``lead_s`` before ``start`` fill the rolling window, so the
    ratio at ``start`` already counts what was just sent."""
    if end <= start:
        return []
    buckets = error_buckets(df, start - lead_s, end)
    ratio = rolling_error_ratio(buckets)
    degraded = (ratio > threshold).to_numpy() & (buckets.index.to_numpy() >= start - 1e-9)
    spans: list[tuple[float, float]] = []
    run_start = None
    for t, bad in zip(buckets.index.to_numpy(), degraded):
        if bad and run_start is None:
            run_start = float(t)
        elif not bad and run_start is not None:
            spans.append((run_start, float(t)))
            run_start = None
    if run_start is not None:
        spans.append((run_start, float(buckets.index[-1]) + BUCKET_S))
    return spans


def brownout(df: pd.DataFrame, start: float, end: float, threshold: float) -> dict[str, Any]:
    spans = degraded_spans(df, start, end, threshold)
    durations = [b - a for a, b in spans]
    return {"degraded_s": round(sum(durations), 3), "longest_degraded_s": round(max(durations, default=0.0), 3),
            "degraded_spans": [[round(a, 3), round(b, 3)] for a, b in spans]}


# ---------------------------------------------------------------------- one fault's window
@dataclass(frozen=True)
class PhaseWindow:
    """The times (epoch s) one fault is judged over.

    ``start``: where its slice begins (the load's start, or the previous fault's
    recovery); ``fault``: the injection; ``end``: the recovery, or -- when it never
    recovered -- its deadline, the next fault or the end of the load, whichever
    came first; ``after_end``: where what follows recovery stops counting (the
    next fault, less one request timeout, or the end of the load).
    """

    start: float
    fault: float
    end: float
    recovered: bool
    after_end: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def by_worker(reqs: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Which Locust worker sent what (``--load-workers``): requests and failures per worker
    index; empty for a load from one process."""
    if reqs.empty or "worker" not in reqs or reqs["worker"].dropna().nunique() < 2:
        return {}
    groups = reqs.dropna(subset=["worker"]).groupby(reqs["worker"].dropna().astype(int))
    return {str(k): {"requests": int(len(g)), "failed": int((~g["ok"]).sum())} for k, g in groups}


#: The width of the buckets ``failure_detail`` counts failures in (s).
FAILURE_BUCKET_S = 10.0


def failure_detail(during: pd.DataFrame, t_fault: float) -> dict[str, Any]:
    """When a fault window's failed requests were meant to be sent (``from_s``/``to_s``, s after
    the fault; ``per_10s``: how many in each 10 s from the fault, when they span 10 s or more) and, of those a replica served by Serve's logs, how many each replica's pod
    served (``served_by_pods``): which path lost the answers.  Empty when none failed."""
    failed = during.loc[~during["ok"]] if not during.empty else during
    if failed.empty:
        return {}
    out: dict[str, Any] = {"from_s": round(float(failed["t"].min()) - t_fault, 1),
                           "to_s": round(float(failed["t"].max()) - t_fault, 1)}
    if out["to_s"] >= FAILURE_BUCKET_S:
        # The shape over time tells a burst at the fault (requests in flight) from a path that
        # stays broken (a router still choosing a lost replica, a stuck proxy).
        buckets = ((failed["t"] - t_fault) // FAILURE_BUCKET_S).clip(lower=0).astype(int)
        out["per_10s"] = [int(n) for n in buckets.value_counts().reindex(range(int(buckets.max()) + 1),
                                                                            fill_value=0)]
    if "replica_pod" in failed:
        counts = failed["replica_pod"].dropna().value_counts()
        out["served_by_pods"] = {str(pod): int(n) for pod, n in counts.items()}
    return out


def endpoint_metrics(df: pd.DataFrame, window: PhaseWindow, threshold: float) -> dict[str, Any]:
    """Every figure of one endpoint for one fault: before, during (fault to recovery) and after."""
    during = between(df, window.fault, window.end)
    # Outages that start during the fault count whole, even when they end after it.
    outages = [w for w in outage_windows(between(df, window.fault, window.after_end)) if w.start < window.end]
    longest = longest_outage(outages)
    after = between(df, window.end, window.after_end) if window.recovered else df.iloc[0:0]
    return {
        "requests": int(len(between(df, window.start, window.after_end))),
        "failed": int((~between(df, window.start, window.after_end)["ok"]).sum()) if not df.empty else 0,
        "availability": availability(df, window.start, window.after_end),
        "availability_before_fault": availability(df, window.start, window.fault),
        "availability_during_fault": availability(during),
        "failed_during_fault": int((~during["ok"]).sum()) if not during.empty else 0,
        # A failed request Serve's own logs say a replica served: its answer was lost after the
        # replica -- in the proxy or on the way back to the client (a port-forward, the network).
        "failed_but_served_during_fault": int((~during["ok"] & during["replica"].notna()).sum())
        if not during.empty and "replica" in during else 0,
        "failures": failure_detail(during, window.fault),
        "longest_outage_s": longest.duration if longest else 0.0,
        "longest_outage_closed": longest.closed if longest else True,
        "outage_windows": [asdict(w) for w in outages],
        "first_success_s": first_success_after(outages, window.fault),
        "service_restored_s": service_restored_after(outages, window.fault),
        "failure_span_s": failure_span(during),
        **brownout(df, window.fault, window.end, threshold),
        "errors": error_classes(during),
        "latency": latency_percentiles(df, window.start, window.after_end),
        "latency_during_fault": latency_percentiles(during),
        "p99_ms": latency_percentiles(during)["p99_ms"],
        "after_recovery": {
            "availability": availability(after) if window.recovered else None,
            "failed": int((~after["ok"]).sum()) if not after.empty else 0,
            "errors": error_classes(after),
            **(brownout(df, window.end, window.after_end, threshold) if window.recovered else {}),
        },
        "availability_after_recovery": availability(after) if window.recovered else None,
    }
