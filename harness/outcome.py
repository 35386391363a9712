"""The outcome of one scenario run, and how it turns into a test result.

A known Ray deviation (``Scenario.known_broken``) drives a strict xfail only
while *each* named check still fails: one that passes (or is not judged) means
Ray changed, and the scenario fails until the entry is removed.  A deviation
that names its Ray range (``harness/deviations.py``) is in play only for the
releases in it: outside, its check must pass, and a failure there is named a
regression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve_chaos.harness.checks import PASS, Evaluation
from serve_chaos.harness.deviations import fixed_line, in_play, out_of_range_lines
from serve_chaos.harness.observe.history import FaultRecord, History
from serve_chaos.harness.scenario import Scenario


class SLOViolation(AssertionError):
    """A promise the scenario states was not kept (one line per violated check)."""


class PromiseBroken(AssertionError):
    """A promise real Ray is known not to keep was broken again (drives a strict xfail)."""


@dataclass
class RunResult:
    scenario: Scenario
    run_id: str
    run_dir: Path
    status: str
    evaluation: Evaluation | None
    history: History
    fault: FaultRecord | None
    verdict: dict[str, Any]
    error: str = ""
    cluster_healthy: bool = True

    def violation_lines(self, names: set[str] | None = None, exclude: set[str] | None = None) -> list[str]:
        if self.evaluation is None:
            return [f"no evaluation: {self.error}"]
        lines = []
        for check in self.evaluation.violations():
            if names is not None and check.name not in names:
                continue
            if exclude is not None and check.name in exclude:
                continue
            lines.append(f"{check.line()} [{check.status}]")
        return lines

    @property
    def ray_version(self) -> str | None:
        """The Ray this run ran against (None when the verdict does not say)."""
        version = self.verdict.get("ray_version") or (self.verdict.get("settings") or {}).get("ray_version")
        return str(version) if version and version != "unknown" else None

    @property
    def target(self) -> str | None:
        """The target this run ran on (None when the verdict does not say)."""
        found = (self.verdict.get("settings") or {}).get("target") or self.verdict.get("target")
        return str(found) if found else None

    def known_in_play(self) -> dict[str, str]:
        """The known deviations this run could show: those whose Ray range holds this run's
        Ray, except in a soak's phases that never ran."""
        not_run = (self.evaluation.metrics.get("phases_not_run") or []) if self.evaluation else []
        return {name: why for name, why in in_play(self.scenario.known_broken, self.ray_version, self.target).items()
                if not any(name.startswith(f"{phase}.") for phase in not_run)}

    def intermittent_in_play(self) -> dict[str, str]:
        return in_play(self.scenario.known_intermittent, self.ray_version, self.target)

    def stale_known_broken(self) -> list[str]:
        """One line per known deviation that did not reproduce: its check passed or was not judged."""
        if self.evaluation is None:
            return []
        checks = {c.name: c for c in self.evaluation.checks}
        lines = []
        for name in self.known_in_play():
            check = checks.get(name)
            if check is None or check.status != "fail":
                seen = check.line() + f" [{check.status}]" if check is not None else "not evaluated"
                lines.append(fixed_line(name, self.ray_version, seen))
        return lines

    def deviation_notes(self) -> list[str]:
        """Failing checks whose known deviation's range does not hold this run's Ray:
        regressed after its fix, or broken before its range starts."""
        if self.evaluation is None:
            return []
        failing = {c.name for c in self.evaluation.violations()}
        declared = {**self.scenario.known_intermittent, **self.scenario.known_broken}
        return out_of_range_lines(declared, self.ray_version, failing, self.target)

    def explained(self) -> bool:
        """Passed, skipped (the scenario does not apply), or failed only where Ray is known to
        break its promise (each still reproducing)."""
        if self.status == "skipped":
            return True
        if self.status == PASS:
            return not self.stale_known_broken()
        if self.evaluation is None or self.status != "fail":
            return False
        known = set(self.known_in_play()) | set(self.intermittent_in_play())
        return {c.name for c in self.evaluation.violations()} <= known and not self.stale_known_broken()

    def intermittent_seen(self) -> list[str]:
        """The intermittent deviations this run reproduced (their checks failed)."""
        if self.evaluation is None:
            return []
        sometimes = self.intermittent_in_play()
        return [c.name for c in self.evaluation.violations() if c.name in sometimes]

    def assert_promises(self) -> None:
        """Fail on every violated SLO and every known deviation that stopped reproducing;
        then raise PromiseBroken for the known-broken ones (a strict xfail).  A known Ray
        bug can never hide an unexpected failure, nor outlive its fix unnoticed."""
        known = set(self.known_in_play())
        intermittent = set(self.intermittent_in_play())
        evidence = f"(evidence: {self.run_dir / 'verdict.json'})"
        other = self.violation_lines(exclude=known | intermittent) + self.stale_known_broken()
        if other:
            raise SLOViolation("\n".join(other + self.deviation_notes() + [evidence]))
        broken = self.violation_lines(names=known | intermittent)
        if broken:
            why = {**self.intermittent_in_play(), **self.known_in_play()}
            reasons = [f"{name}: {why[name]}" for name in sorted(known | set(self.intermittent_seen()))]
            raise PromiseBroken("\n".join(broken + reasons + [evidence]))
