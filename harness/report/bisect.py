"""Where a verdict changed between two Ray releases: a bisection over the releases between them.

``bisect_change`` asks ``verdict_of(release)`` (a run of the scenario on that release, cached by
the caller) as few times as a binary search needs, assuming one change between the two ends --
the release where a promise started or stopped holding.  A release it cannot judge (skipped, no
verdict) stops the search there and says so, rather than guess around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from serve_chaos.harness.report.matrix import JUDGED, KEPT, LABELS


@dataclass(frozen=True)
class Change:
    """``first``: the oldest release with the newer verdict; ``last_before``: the newest with the
    older one; ``unjudged``: a release in between the search could not judge (then ``first`` is
    only the oldest known to differ)."""

    scenario: str
    first: str
    last_before: str
    was: str
    now: str
    unjudged: str = ""

    def text(self) -> str:
        verb = "first kept" if self.now == KEPT else "first broken" if self.was == KEPT else "first changed"
        where = f"{verb} in {self.first} ({LABELS[self.now]}; {LABELS[self.was]} in {self.last_before})"
        return f"{self.scenario}: {where}" + (f"; {self.unjudged} could not be judged" if self.unjudged else "")


def bisect_change(scenario: str, releases: list[str], verdict_of: Callable[[str], str]) -> Change | None:
    """The release where ``scenario``'s verdict changed within ``releases`` (oldest first), or None
    when both ends agree or either end was not judged."""
    lo, hi = 0, len(releases) - 1
    was, now = verdict_of(releases[lo]), verdict_of(releases[hi])
    if was == now or was not in JUDGED or now not in JUDGED:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        got = verdict_of(releases[mid])
        if got not in JUDGED:
            return Change(scenario, releases[hi], releases[lo], was, now, unjudged=releases[mid])
        if got == was:
            lo = mid
        else:
            hi = mid
    return Change(scenario, releases[hi], releases[lo], was, verdict_of(releases[hi]))
