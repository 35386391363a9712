"""What each Ray release needs installed beside ``ray[serve]`` today, in one place, each with why.

PyPI serves today's versions of a release's dependencies, which may be newer than the ones it was
tested with, and some releases import a package they do not declare.  ``RayEnvCache`` installs
these with the release (``runtime/local/rayenv.py``); an environment made before a requirement was
known here is made again.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version


@dataclass(frozen=True)
class ExtraRequirement:
    """``requirement`` (a pip specifier) for releases ``since <= v < until`` (``until`` None: all
    later ones too); ``why`` says what breaks without it and where that was seen."""

    requirement: str
    since: str
    until: str | None
    why: str

    def applies(self, version: str) -> bool:
        v = Version(version)
        return Version(self.since) <= v and (self.until is None or v < Version(self.until))


EXTRA_REQUIREMENTS: tuple[ExtraRequirement, ...] = (
    ExtraRequirement(
        "protobuf<7", "0", "2.60.0",
        "Serve before 2.60 reads FieldDescriptor.label (serve/_private/config.py), which protobuf 7 removed: "
        "deploying fails with \"'FieldDescriptor' object has no attribute 'label'\" (seen with Ray 2.50.0)"),
    ExtraRequirement(
        "jinja2", "2.57.0", "2.59.0",
        "ray[serve] 2.57.0 and 2.58.0 import jinja2 (serve/_private/haproxy.py, at `import ray.serve`) but "
        "declare it in no extra: `import ray.serve` fails with \"No module named 'jinja2'\" (seen with both; "
        "2.56.1 and 2.59.0 build without it)"),
)


def extra_requirements(version: str) -> list[str]:
    """The pip specifiers to install beside ``ray[serve]==version``."""
    return [r.requirement for r in EXTRA_REQUIREMENTS if r.applies(version)]
