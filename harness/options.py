"""The options of a run, validated once, built alike by the CLI and the pytest plugin.

A pydantic model: types, ranges and finiteness are declared, not checked by
hand, and every violation becomes one ``ConfigError`` line that names the option.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from serve_chaos.harness.app.selection import AppUnderTest
from serve_chaos.harness.outputs import check_dir, check_file
from serve_chaos.harness.targets import TargetOptions
from serve_chaos.runtime.errors import ConfigError

MAX_LOAD_RATE = 2000.0
#: The most Locust worker processes one run's load may use (``--load-workers``).
MAX_LOAD_WORKERS = 16


def parse_seed(seed: Any) -> int | None:
    """A seed from a CLI or pytest option: an integer, or None for a random (recorded) one."""
    if seed is None or isinstance(seed, int) and not isinstance(seed, bool):
        return seed
    try:
        return int(str(seed).strip())
    except ValueError:
        raise ConfigError(f"--seed {seed!r} is not an integer", hint="pass e.g. --seed 42") from None


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} {value} must be a finite number")


class RunOptions(BaseModel):
    """How scenarios run.  Times in seconds, rates in requests/s per endpoint.

    ``abort_below``/``abort_after``: halt (and heal) when front-door availability
    stays below that ratio for that long; ``step``: ask before each fault;
    ``repeat``: runs per scenario; ``keep_cluster``: reuse a running cluster and
    leave it up.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    seed: int | None = None
    report_dir: Path = Path("reports")
    load_rate: float | None = None
    load_workers: int = 1
    repeat: int = 1
    abort_below: float | None = None
    abort_after: float = 30.0
    keep_cluster: bool = False
    step: bool = False
    history_dir: Path | None = None
    html: Path | None = None
    target: TargetOptions = TargetOptions()
    app: AppUnderTest = AppUnderTest()

    @field_validator("load_rate")
    @classmethod
    def _rate(cls, value: float | None) -> float | None:
        _finite("--load-rate", value)
        if value is not None and not 0 < value <= MAX_LOAD_RATE:
            raise ValueError(f"--load-rate {value} must be in (0, {MAX_LOAD_RATE:g}] requests/s")
        return value

    @field_validator("load_workers")
    @classmethod
    def _workers(cls, value: int) -> int:
        if not 1 <= value <= MAX_LOAD_WORKERS:
            raise ValueError(f"--load-workers {value} must be in 1..{MAX_LOAD_WORKERS} Locust worker processes")
        return value

    @field_validator("repeat")
    @classmethod
    def _repeat(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"--repeat {value} must be at least 1")
        return value

    @field_validator("abort_below")
    @classmethod
    def _abort_below(cls, value: float | None) -> float | None:
        _finite("--abort-below", value)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"--abort-below {value} must be an availability ratio in [0, 1] "
                             "(e.g. --abort-below 0.5 halts when fewer than half the requests succeed)")
        return value

    @field_validator("abort_after")
    @classmethod
    def _abort_after(cls, value: float) -> float:
        _finite("--abort-after", value)
        if value <= 0:
            raise ValueError(f"--abort-after {value} must be > 0 seconds")
        return value

    @model_validator(mode="after")
    def _combinations(self) -> "RunOptions":
        if self.step and self.repeat > 1:
            raise ValueError("--step asks before every fault and cannot be combined with --repeat")
        return self

    def check_outputs(self) -> None:
        """Every place the run will write, checked before it starts (a ConfigError line if one is bad)."""
        check_dir(self.report_dir, "the report directory", "--report-dir")
        check_dir(self.history_dir, "the history directory", "--history-dir")
        if self.html is not None:
            check_file(self.html, "the HTML report", "--html")
            check_file(self.html.with_suffix(".md"), "the Markdown report", "--html")
            check_file(self.html.with_suffix(".junit.xml"), "the JUnit report", "--html")

    @classmethod
    def build(cls, **values: Any) -> "RunOptions":
        """Validate; the first violation becomes a one-line ConfigError."""
        values = {k: v for k, v in values.items() if v is not None or k in ("seed",)}
        try:
            options = cls(**values)
        except ValidationError as err:
            first = err.errors()[0]
            message = str(first.get("msg", "")).removeprefix("Value error, ")
            if first.get("type") != "value_error":
                where = ".".join(str(p) for p in first.get("loc", ()))
                message = f"--{where.replace('_', '-')}: {message}"
            raise ConfigError(message) from None
        options.check_outputs()
        return options
