"""The game-day terminal view: what the load and the cluster do right now.

Fed by the engine's observer events.  On a terminal it redraws a rich panel
about once a second; elsewhere (CI, a pipe) it prints one line per phase and
a short status line every few seconds.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from serve_chaos.harness.report.latency import LABELS, band_counts, latency_figures

WINDOW_S = 10.0


def live_numbers(history: Any, now: float, offered_rate: float, window_s: float = WINDOW_S) -> dict[str, Any]:
    """Over the last ``window_s`` of judged requests: offered/achieved req/s, errors by class,
    latency p50/p95/p99 (ms) and the share of requests per latency band (a gray failure is
    mostly latency: a slow replica shows here long before anything fails)."""
    reqs = history.judged_requests()
    if reqs.empty:
        return empty_numbers(offered_rate)
    end = float(reqs["t"].max())
    recent = reqs[reqs["t"] > end - window_s]
    ok = recent[recent["ok"]]
    errors = recent[~recent["ok"]]["error"].fillna("other").value_counts().to_dict()
    endpoints = max(1, recent["endpoint"].nunique())
    counts = band_counts(recent)
    figures = latency_figures(recent)
    return {
        "offered": offered_rate * endpoints,
        "achieved": len(ok) / window_s,
        "errors": {str(k): int(v) for k, v in errors.items()},
        "p50_ms": figures["p50_ms"],
        "p95_ms": figures["p95_ms"],
        "p99_ms": figures["p99_ms"],
        "bands": {label: n / len(recent) for label, n in counts.items()},
        "n": len(recent),
    }


def empty_numbers(offered_rate: float) -> dict[str, Any]:
    return {"offered": offered_rate, "achieved": 0.0, "errors": {}, "p50_ms": None, "p95_ms": None, "p99_ms": None,
            "bands": {}, "n": 0}


def bands_text(bands: dict[str, float]) -> str:
    """``<50 ms 97% | 50-250 ms 2% | ... | failed 1%``; ``-`` before any request."""
    if not bands:
        return "-"
    return " | ".join(f"{label} {bands.get(label, 0.0):.0%}" for label in LABELS)


def latency_text(numbers: dict[str, Any]) -> str:
    parts = [f"{name} {numbers[key]:.0f} ms" for name, key in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))
             if numbers.get(key) is not None]
    return " ".join(parts) or "-"


class LiveView:
    """Observer for the engine: ``view(event, data)``."""

    def __init__(self, console: Console, offered_rate: float = 0.0) -> None:
        self.console = console
        self.offered_rate = offered_rate
        self.scenario = ""
        self.phase = ""
        self.fault = ""
        self.last_tick: dict[str, Any] = {}
        self.live: Live | None = None
        self.last_line = 0.0

    # -------------------------------------------------------------- lifecycle
    def start(self, scenario: str, offered_rate: float) -> None:
        self.scenario, self.offered_rate = scenario, offered_rate
        self.phase, self.fault, self.last_tick = "prepare", "", {}
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
            self.live.start()

    def stop(self) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.stop()
            self.live = None

    def pause(self) -> None:
        """Stop redrawing (a prompt needs the terminal)."""
        if self.live is not None:
            self.live.stop()

    def resume(self) -> None:
        if self.live is not None:
            self.live.start()

    # -------------------------------------------------------------- events
    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if event == "phase":
            self.phase = data.get("name", "")
            if data.get("fault"):
                self.fault = data["fault"]
            if self.live is None:
                extra = " ".join(f"{k}={v}" for k, v in data.items() if k != "name")
                self.console.print(f"[{time.strftime('%H:%M:%S')}] {self.scenario}: {self.phase} {extra}".rstrip(),
                                   markup=False, highlight=False)
        elif event == "plan" and self.live is None:
            self.console.print(f"  plan: {data['plan'].description}", markup=False, highlight=False)
        elif event == "tick":
            self.last_tick = data
            if self.live is None and time.time() - self.last_line >= 5.0:
                self.last_line = time.time()
                self.console.print("  " + self._status_line(), markup=False, highlight=False)
        if self.live is not None:
            self.live.update(self._render())

    # -------------------------------------------------------------- rendering
    def _numbers(self) -> dict[str, Any]:
        history = self.last_tick.get("history")
        if history is None:
            return empty_numbers(self.offered_rate)
        return live_numbers(history, time.time(), self.offered_rate)

    def _recovery_text(self) -> str:
        t_fault = self.last_tick.get("t_fault")
        if not t_fault:
            return "no fault yet"
        t_rec = self.last_tick.get("t_recovered")
        if t_rec:
            return f"recovered after {t_rec - t_fault:.1f} s"
        reason = self.last_tick.get("reason") or ""
        return f"recovering for {time.time() - t_fault:.0f} s ({reason})"

    def _status_line(self) -> str:
        n = self._numbers()
        errors = " ".join(f"{k}={v}" for k, v in n["errors"].items()) or "none"
        return (f"{self.phase}: achieved {n['achieved']:.1f}/{n['offered']:.0f} req/s, errors {errors}, "
                f"latency {latency_text(n)} ({bands_text(n['bands'])}); {self._recovery_text()}")

    def _render(self) -> Panel:
        n = self._numbers()
        head = Table.grid(padding=(0, 2))
        head.add_row("phase", self.phase, "fault", self.fault or "-")
        head.add_row("offered", f"{n['offered']:.0f} req/s", "achieved (10 s)", f"{n['achieved']:.1f} req/s")
        head.add_row("errors (10 s)", " ".join(f"{k}={v}" for k, v in n["errors"].items()) or "none",
                     "latency (10 s)", latency_text(n))
        head.add_row("latency bands (10 s)", bands_text(n["bands"]), "", "")
        head.add_row("recovery", self._recovery_text(), "", "")
        pods = Table(show_edge=False, pad_edge=False)
        for col in ("pod", "phase", "ready", "replica PIDs", "proxy"):
            pods.add_column(col)
        history = self.last_tick.get("history")
        snap = next((s for s in reversed(history.snapshots) if s.ok), None) if history is not None else None
        if snap is not None:
            for pod in snap.pods:
                if pod.get("role") == "redis":
                    pods.add_row(pod["name"], pod.get("phase", "?"), "yes" if pod.get("ready") else "no", "", "")
                    continue
                reps = sorted(a["pid"] for a in snap.actors if a["role"] == "replica" and a.get("pod") == pod["name"])
                proxy = [str(a["pid"]) for a in snap.actors if a["role"] == "proxy" and a.get("pod") == pod["name"]]
                pods.add_row(pod["name"], pod.get("phase", "?"), "yes" if pod.get("ready") else "no",
                             " ".join(map(str, reps)) or "-", " ".join(proxy) or "-")
        return Panel(Group(head, pods), title=f"serve-chaos game day: {self.scenario}", border_style="cyan")
