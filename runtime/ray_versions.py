"""Which Ray releases serve-chaos runs, and the one check every ``--ray-version`` goes through.

The supported range is what the harness has been read against (the Serve REST and
State API fields, log lines and CLI that ``runtime/ray_compat.py`` handles); the
tested versions are the ones a matrix runs by default.
"""

from __future__ import annotations

import re

from packaging.version import Version

from serve_chaos.runtime.errors import ConfigError

#: The Ray the project pins (pyproject.toml) and every target runs unless told otherwise.
DEFAULT_RAY_VERSION = "2.60.0"
OLDEST_SUPPORTED = "2.40.0"
NEWEST_SUPPORTED = "2.60.0"
SUPPORTED_RANGE = f"{OLDEST_SUPPORTED}..{NEWEST_SUPPORTED}"
#: What a matrix runs when no versions are named, oldest first.
TESTED_RAY_VERSIONS = ("2.40.0", "2.50.0", "2.60.0")

# A release as PyPI and Docker Hub name it: no "v", no pre-release, no local part.
_RELEASE = re.compile(r"\d+\.\d+\.\d+")


def check_ray_version(text: object, option: str = "--ray-version") -> str:
    """``text`` as a supported Ray release ``X.Y.Z``; anything else is one ConfigError line."""
    value = str(text).strip() if text is not None else ""
    if not _RELEASE.fullmatch(value):
        raise ConfigError(f"{option} {text!r} is not a Ray release: write it as X.Y.Z",
                          hint=f"e.g. {option} 2.50.0 (supported: {SUPPORTED_RANGE})")
    if not Version(OLDEST_SUPPORTED) <= Version(value) <= Version(NEWEST_SUPPORTED):
        raise ConfigError(f"{option} {value} is outside the supported Ray range {SUPPORTED_RANGE}",
                          hint=f"pick a release in {SUPPORTED_RANGE}, e.g. {', '.join(TESTED_RAY_VERSIONS)}")
    return value


def parse_ray_versions(text: str, option: str = "--ray-versions") -> tuple[str, ...]:
    """A comma-separated list of supported releases, each once, oldest first."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"{option} names no Ray version", hint=f"e.g. {option} {','.join(TESTED_RAY_VERSIONS)}")
    versions = {check_ray_version(p, option) for p in parts}
    return tuple(sorted(versions, key=Version))


def parse_ray_range(text: str, option: str = "--ray-versions") -> tuple[str, str] | None:
    """``A..B`` as its two supported releases, oldest first; None when ``text`` is not a range."""
    if ".." not in str(text):
        return None
    low, _, high = str(text).partition("..")
    low, high = check_ray_version(low, option), check_ray_version(high, option)
    if Version(low) >= Version(high):
        raise ConfigError(f"{option} {text!r} is an empty range: its first release must be older than its last",
                          hint=f"e.g. {option} 2.55.0..2.60.0")
    return low, high


def releases_between(low: str, high: str, published: list[str]) -> tuple[str, ...]:
    """The final releases (``X.Y.Z``) in ``published`` from ``low`` to ``high``, both included, oldest first."""
    inside = {v for v in published if _RELEASE.fullmatch(v) and Version(low) <= Version(v) <= Version(high)}
    return tuple(sorted(inside | {low, high}, key=Version))


def version_key(version: str) -> Version:
    """Sort key and comparison for release strings (``"2.9.0" < "2.10.0"``)."""
    return Version(version)
