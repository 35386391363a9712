"""``serve-chaos versions``: the Ray releases serve-chaos claims, and ``--check`` that each one builds.

``--check`` makes (or finds, cached) the virtual environment of every release the package index
serves in the range (``runtime/local/rayenv.py``: ``ray[serve]==X`` plus what
``runtime/ray_requirements.py`` adds for it) and checks ``ray --version`` and ``import ray.serve``
there, one line per release; a release that cannot work says why in one line.  The results go to
``versions-check.json`` in the environments' directory, with the date.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import typer

from serve_chaos.harness.cli.common import console
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.ray_requirements import extra_requirements
from serve_chaos.runtime.ray_versions import (DEFAULT_RAY_VERSION, NEWEST_SUPPORTED, OLDEST_SUPPORTED, SUPPORTED_RANGE, TESTED_RAY_VERSIONS,
                                  parse_ray_range, parse_ray_versions, releases_between)


def register(app: typer.Typer) -> None:
    app.command("versions")(versions)


@dataclass(frozen=True)
class ReleaseCheck:
    """One release: ``ok``, or ``why`` not (one line); ``took_s`` seconds (0 when cached)."""

    version: str
    ok: bool
    why: str = ""
    extras: tuple[str, ...] = ()
    took_s: float = 0.0


def check_releases(releases: list[str], ensure: Callable[[str], object]) -> list[ReleaseCheck]:
    """Each release's environment made (or found) by ``ensure``; a failure is that release's line."""
    out = []
    for version in releases:
        t0 = time.monotonic()
        try:
            ensure(version)
            out.append(ReleaseCheck(version, True, extras=tuple(extra_requirements(version)),
                                    took_s=round(time.monotonic() - t0, 1)))
        except ServeChaosError as err:
            out.append(ReleaseCheck(version, False, err.one_line(), tuple(extra_requirements(version)),
                                    round(time.monotonic() - t0, 1)))
        except subprocess.TimeoutExpired as err:
            out.append(ReleaseCheck(version, False, f"`{' '.join(map(str, err.cmd[-3:]))}` took over {err.timeout:g} s",
                                    tuple(extra_requirements(version)), round(time.monotonic() - t0, 1)))
        console.print(_line(out[-1]), markup=False)
    return out


def own_serve_import() -> None:
    """``import ray.serve`` in the harness's own interpreter (the pinned release), in a child process."""
    import sys

    from serve_chaos.runtime.errors import InfrastructureError

    proc = subprocess.run([sys.executable, "-c", "import ray, ray.serve; print(ray.__version__)"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or DEFAULT_RAY_VERSION not in proc.stdout:
        last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise InfrastructureError(f"the project's own Ray {DEFAULT_RAY_VERSION} fails `import ray.serve`: {last[0]}",
                                  hint="run ./setup.sh again")


def _line(check: ReleaseCheck) -> str:
    extras = f" (+ {', '.join(check.extras)})" if check.extras else ""
    return f"{'ok  ' if check.ok else 'FAIL'} Ray {check.version}{extras}" + ("" if check.ok else f": {check.why}")


def versions(
    check: bool = typer.Option(False, "--check", help="build (or find, cached) each release's environment and "
                                                      "import Serve there"),
    ray_versions: Optional[str] = typer.Option(None, "--ray-versions", help=f"a range A..B or A,B,C (default: "
                                                                             f"{SUPPORTED_RANGE})"),
) -> None:
    """The Ray releases serve-chaos claims; with --check, whether each one builds and imports Serve."""
    from serve_chaos.runtime.local.rayenv import RayEnvCache, published_ray_releases

    span = parse_ray_range(ray_versions or f"{OLDEST_SUPPORTED}..{NEWEST_SUPPORTED}")
    if span is None:
        releases = list(parse_ray_versions(str(ray_versions)))
    else:
        published = published_ray_releases()
        releases = [v for v in releases_between(span[0], span[1], published) if v in published]
        for end in sorted(set(span) - set(releases)):
            console.print(f"Ray {end} is not served by the package index: not a release to check", markup=False)
    console.print(f"supported: {SUPPORTED_RANGE}; a matrix runs {', '.join(TESTED_RAY_VERSIONS)} by default; "
                  f"{len(releases)} release(s) chosen", markup=False)
    if not check:
        for version in releases:
            extras = extra_requirements(version)
            console.print(f"Ray {version}" + (f" (+ {', '.join(extras)})" if extras else ""), markup=False)
        return
    cache = RayEnvCache()
    # The pinned release is the harness's own (.venv): importing Serve there is its check.
    results = check_releases(releases, lambda v: own_serve_import() if v == DEFAULT_RAY_VERSION else cache.ensure(v))
    failed = [r for r in results if not r.ok]
    record = {"checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": [asdict(r) for r in results]}
    cache.root.mkdir(parents=True, exist_ok=True)
    (cache.root / "versions-check.json").write_text(json.dumps(record, indent=2))
    console.print(f"{len(results) - len(failed)} of {len(results)} release(s) build and import Serve"
                  + (f"; cannot work: {', '.join(r.version for r in failed)}" if failed else ""), markup=False)
    if failed:
        raise typer.Exit(1)
