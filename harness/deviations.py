"""Known Ray deviations keyed by version: which releases break a promise, and what a run says about it.

A scenario's ``known_broken`` / ``known_intermittent`` map a check to why real Ray breaks
that promise.  The why alone (the old form) means every release; a ``KnownDeviation`` names
the releases: from ``since`` (the first that breaks it) up to ``fixed_in`` (the first that
keeps it again).  Judged on a run of Ray ``V`` (all strict, none hides a failure):

- ``V`` in the range, the check fails: the known deviation (a strict xfail), as before;
- ``V`` in the range, the check passes: **fixed in V** -- the scenario fails until the range
  ends there;
- ``V`` at or after ``fixed_in``, the check fails: **regressed in V** -- it was fixed and breaks
  again (a failure like any other, named as such);
- ``V`` before ``since``, the check fails: the promise breaks in an older release than the
  range says (a failure; the range should start earlier).

Across versions the matrix (``harness/report/matrix.py``) says the same of adjacent columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Union

from serve_chaos.runtime.errors import ConfigError
from serve_chaos.runtime.ray_versions import version_key

_RELEASE = re.compile(r"\d+\.\d+\.\d+")


@dataclass(frozen=True)
class KnownDeviation:
    """A promise Ray does not keep in releases ``since`` (None: every older one) up to, not
    including, ``fixed_in`` (None: not fixed yet).  ``why`` names the behaviour and the upstream issue."""

    why: str
    since: str | None = None
    fixed_in: str | None = None
    #: The targets it shows on (``k8s``, ``kind``, ``local``); empty: every target.  A behaviour
    #: that needs Kubernetes (a head recreated at a new address, found again through DNS) is
    #: declared for the targets that have it, so a local run that breaks the same promise still fails.
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("since", "fixed_in"):
            value = getattr(self, name)
            if value is not None and not _RELEASE.fullmatch(value):
                raise ConfigError(f"known deviation {name}={value!r} is not a Ray release X.Y.Z")
        if self.since and self.fixed_in and version_key(self.fixed_in) <= version_key(self.since):
            raise ConfigError(f"known deviation fixed_in={self.fixed_in} must come after since={self.since}")

    def applies_to(self, version: str | None, target: str | None = None) -> bool:
        """Whether ``version`` is in the range (an unknown version: every range applies) on ``target``
        (an unknown target: every target)."""
        if self.targets and target is not None and target not in self.targets:
            return False
        if version is None:
            return True
        v = version_key(version)
        return ((self.since is None or v >= version_key(self.since))
                and (self.fixed_in is None or v < version_key(self.fixed_in)))

    def range_text(self) -> str:
        where = f" on the {'/'.join(self.targets)} target" if self.targets else ""
        if self.since and self.fixed_in:
            return f"Ray {self.since} up to {self.fixed_in}{where}"
        if self.since:
            return f"Ray {self.since} and later{where}"
        if self.fixed_in:
            return f"Ray before {self.fixed_in}{where}"
        return f"every Ray{where}"

    def __str__(self) -> str:
        return self.why


Declared = Union[str, KnownDeviation]


def deviation(value: Declared) -> KnownDeviation:
    """The old form (a why) is a deviation of every release."""
    return value if isinstance(value, KnownDeviation) else KnownDeviation(str(value))


def in_play(known: Mapping[str, Declared], version: str | None, target: str | None = None) -> dict[str, str]:
    """``check -> why`` for the deviations whose range holds ``version`` on ``target``."""
    return {name: deviation(v).why for name, v in known.items() if deviation(v).applies_to(version, target)}


def ranges(known: Mapping[str, Declared]) -> dict[str, str]:
    """``check -> the releases it applies to``, for reports."""
    return {name: deviation(v).range_text() for name, v in known.items()}


def why_texts(known: Mapping[str, Declared]) -> dict[str, str]:
    return {name: deviation(v).why for name, v in known.items()}


def fixed_line(name: str, version: str | None, seen: str) -> str:
    """A known deviation in play whose check did not fail: Ray changed."""
    if version is None:
        return f"known deviation {name} no longer reproduces -- remove it from known_broken ({seen})"
    return (f"known deviation {name} no longer reproduces: fixed in Ray {version} -- end its range there "
            f"(fixed_in=\"{version}\") or remove it from known_broken ({seen})")


def out_of_range_lines(known: Mapping[str, Declared], version: str | None, failing: set[str],
                       target: str | None = None) -> list[str]:
    """What a failing check whose deviation does not cover ``version`` means: regressed after
    its fix, or broken earlier than its range says.  (The failure itself is reported as a
    violation; this line says what the declared range makes of it.)"""
    if version is None:
        return []
    lines = []
    v = version_key(version)
    for name in sorted(failing):
        if name not in known:
            continue
        dev = deviation(known[name])
        if dev.applies_to(version, target) or not dev.applies_to(None, target):
            continue
        if dev.fixed_in is not None and v >= version_key(dev.fixed_in):
            lines.append(f"{name} regressed in Ray {version}: known broken in {dev.range_text()}, fixed in "
                         f"{dev.fixed_in}, and it breaks again")
        elif dev.since is not None and v < version_key(dev.since):
            lines.append(f"{name} also breaks on Ray {version}, before its known range ({dev.range_text()}) -- "
                         f"start the range at {version} or earlier (since=\"{version}\")")
    return lines
