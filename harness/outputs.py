"""Where a command may write: checked before any work starts, and never over an input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from runtime.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _writable_under(path: Path, what: str, option: str) -> None:
    # An existing directory is written into; a file (existing or not) is written in its directory.
    base = _nearest_existing(path if path.is_dir() else path.parent)
    if not base.is_dir():
        raise ConfigError(f"{what} {path} lies under {base}, which is a file", hint=f"pass another {option}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} cannot be written: {base} is not writable", hint=f"pass another {option}")


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
