"""What a check returns, and how results combine into a verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from serve_chaos.harness.observe.history import FaultRecord, History

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"


@dataclass(frozen=True)
class CheckResult:
    """One judged quantity.  ``bound`` is human-readable (">= 0.999", "<= 30 s")."""

    name: str
    status: str
    value: Any = None
    bound: str | None = None
    unit: str = ""
    detail: str = ""

    def line(self) -> str:
        value = _fmt(self.value, self.unit)
        text = f"{self.name} = {value}"
        if self.bound:
            text += f" (bound {self.bound})"
        if self.detail:
            text += f": {self.detail}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if unit == "ratio":
            return f"{value:.4f}"
        return f"{value:.2f}{' ' + unit if unit else ''}"
    return f"{value}{' ' + unit if unit and not isinstance(value, (list, dict)) else ''}"


def combine(statuses: Iterable[str]) -> str:
    """fail beats unknown beats pass."""
    statuses = list(statuses)
    if FAIL in statuses:
        return FAIL
    if UNKNOWN in statuses:
        return UNKNOWN
    return PASS



ExtraCheck = Callable[[History, FaultRecord], CheckResult]
ExtraMetric = Callable[[History, FaultRecord], dict[str, Any]]


@dataclass
class Evaluation:
    """Metrics (plain data for the verdict JSON) and the judged checks."""

    metrics: dict[str, Any]
    checks: list[CheckResult]
    t_recovered: float | None

    @property
    def status(self) -> str:
        return combine(c.status for c in self.checks)

    def violations(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status != PASS]
