"""Where a command may write: checked before any work starts, and never over an input.

Writability is *tried*, not read from mode bits: ``os.access`` says yes to root
under ``/proc`` and ``/sys``, where nothing can be created.  A check creates and
removes a probe file in the nearest existing directory (or opens an existing
file for appending, writing nothing).  Writing itself goes through ``write_text``,
so a disk that fills up meanwhile is still one line.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable

from serve_chaos.runtime.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _why(err: OSError) -> str:
    return err.strerror or errno.errorcode.get(err.errno or 0, type(err).__name__)


def _probe_dir(base: Path) -> str | None:
    """Why no file can be created in the existing directory ``base``, or None."""
    try:
        fd, name = tempfile.mkstemp(prefix=".serve-chaos-probe-", dir=base)
    except OSError as err:
        return _why(err)
    os.close(fd)
    os.unlink(name)
    return None


def _probe_file(path: Path) -> str | None:
    """Why the existing file ``path`` cannot be written, or None (opened for appending,
    non-blocking so a FIFO without a reader cannot hang us; nothing is written)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
    except OSError as err:
        return _why(err)
    os.close(fd)
    return None


def _writable_under(path: Path, what: str, option: str) -> None:
    # An existing directory is written into; a file (existing or not) is written in its directory.
    base = _nearest_existing(path if path.is_dir() else path.parent)
    if not base.is_dir():
        raise ConfigError(f"{what} {path} lies under {base}, which is a file", hint=f"pass another {option}")
    why = _probe_dir(base)
    if why is not None:
        raise ConfigError(f"{what} {path} cannot be written: nothing can be created in {base} ({why})",
                          hint=f"pass another {option}")


def check_dir(path: Path | None, what: str, option: str) -> None:
    """A directory we will create (or fill): not a file, and creatable."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a directory", hint=f"pass a directory for {option}")
    _writable_under(path, what, option)


def check_file(path: Path | None, what: str, option: str, inputs: Iterable[Path] = ()) -> None:
    """A file we will write: not a directory, creatable, and never one of -- or inside -- ``inputs``."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory", hint=f"pass a file name for {option}, e.g. {path}/report.html")
    if path.exists():
        # Rewritten in place (last night's report, /dev/null): its directory need not take new files.
        why = _probe_file(path)
        if why is not None:
            raise ConfigError(f"{what} {path} cannot be written ({why})", hint=f"pass another {option}")
    else:
        _writable_under(path, what, option)
    target = path.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if target == source or source in target.parents:
            raise ConfigError(f"{what} {path} would overwrite the input {source}",
                              hint=f"pass a {option} outside the run directories")


def check_distinct(paths: dict[str, Path | None]) -> None:
    """No two outputs may be the same file."""
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        resolved = Path(path).resolve()
        if resolved in seen:
            raise ConfigError(f"{option} and {seen[resolved]} are the same file {path}", hint="give each its own file")
        seen[resolved] = option


def write_text(path: Path, text: str, what: str, option: str) -> None:
    """Write an output file, creating its directory; an OSError is one ConfigError line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise ConfigError(f"could not write {what} {path}: {_why(err)}", hint=f"pass another {option}") from None
