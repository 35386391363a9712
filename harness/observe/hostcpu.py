"""How busy the harness's own host was: a run that starves its host for CPU can fail requests
that Ray would have served, and its verdict must say so rather than leave it to be guessed."""

from __future__ import annotations

from typing import Any

import psutil

#: A probe interval at least this busy (fraction of all CPUs) counts as saturated.
SATURATED = 0.95


class HostCpu:
    """The fraction of all the host's CPUs busy between two calls (``psutil.cpu_times``; steal
    counts as busy: a CPU the hypervisor took is one no process of the run had)."""

    def __init__(self) -> None:
        self._last = psutil.cpu_times()

    def busy(self) -> float | None:
        """Busy fraction (0..1) since the previous call; None when no time passed."""
        now = psutil.cpu_times()
        idle = (now.idle - self._last.idle) + (getattr(now, "iowait", 0.0) - getattr(self._last, "iowait", 0.0))
        total = sum(now) - sum(self._last)
        self._last = now
        if total <= 0:
            return None
        return round(max(0.0, min(1.0, 1.0 - idle / total)), 3)


def host_cpu(snapshots: list[Any], start: float, end: float) -> dict[str, Any]:
    """The host's CPU over ``[start, end)`` (epoch s) from the probes' samples: ``busy_mean``
    (fraction), ``saturated_s`` (s of probe intervals at least ``SATURATED`` busy); empty
    without samples (a history from before the probes took them)."""
    samples = [(s.t, s.host_cpu_busy) for s in snapshots
               if getattr(s, "host_cpu_busy", None) is not None and start <= s.t < end]
    if not samples:
        return {}
    # Each sample covers the interval since the probe before it: about one probe period.
    periods = sorted(b[0] - a[0] for a, b in zip(samples, samples[1:]))
    period = periods[len(periods) // 2] if periods else 1.0
    busy = [b for _, b in samples]
    return {"busy_mean": round(sum(busy) / len(busy), 3),
            "saturated_s": round(period * sum(1 for b in busy if b >= SATURATED), 1)}
