"""Find and remove what earlier runs left behind, by run label only.

A run is *live* while its supervisor process (marked with the run's label and
the supervisor role in its environment) is alive.  Anything labelled by a run that is not
live -- processes, cgroups, network namespaces, veths, bridges, state dirs --
is a leftover.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from serve_chaos.runtime.local import cgroups, netns, procs
from serve_chaos.runtime.local.layout import (CGROUP_RE, HAPROXY_DIR_RE, HAPROXY_TMP, LABEL_RE, LINK_RE, NETNS_RE, RunLayout,
                                  labels_in_home)


@dataclass
class Leftovers:
    label: str
    pids: list[int] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    cgroups: list[Path] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.pids or self.netns or self.links or self.cgroups or self.dirs or self.files)

    def summary(self) -> str:
        parts = []
        for name in ("pids", "netns", "links", "cgroups", "dirs", "files"):
            items = getattr(self, name)
            if items:
                parts.append(f"{len(items)} {name}")
        return f"run {self.label}: " + ", ".join(parts)


def live_supervisors() -> dict[str, int]:
    """Label -> PID of every live supervisor on this host, whatever its home directory.

    Liveness is decided from processes, not files, so a run kept in another
    SERVE_CHAOS_HOME is never mistaken for a leftover.
    """
    live: dict[str, int] = {}
    for pid, markers in procs.marked_processes().items():
        if markers.get(procs.ROLE_ENV) == "supervisor" and procs.alive(pid):
            live[markers.get(procs.RUN_ENV, "")] = pid
    return live


def live_supervisor(home: Path, label: str) -> int | None:
    """PID of the label's supervisor if it is alive."""
    return live_supervisors().get(label)


def live_runs(home: Path) -> dict[str, int]:
    """Live runs whose state lives in ``home`` (the ones a client there can attach to)."""
    return {label: pid for label, pid in live_supervisors().items()
            if RunLayout(home, label).control_file.exists()}


def find(home: Path) -> list[Leftovers]:
    """Everything labelled by runs that are not live."""
    live = set(live_supervisors())
    found: dict[str, Leftovers] = {}

    def bucket(label: str) -> Leftovers | None:
        if label in live:
            return None
        return found.setdefault(label, Leftovers(label))

    for pid, markers in procs.marked_processes().items():
        if (b := bucket(markers.get(procs.RUN_ENV, ""))) is not None:
            b.pids.append(pid)
    for name in netns.list_netns("sc-"):
        if (m := NETNS_RE.match(name)) and (b := bucket(m.group(1))):
            b.netns.append(name)
    try:
        links = [p.name for p in Path("/sys/class/net").iterdir()]
    except OSError:
        links = []
    for name in links:
        if (m := LINK_RE.match(name)) and (b := bucket(m.group(1) or m.group(2))):
            b.links.append(name)
    roots = [cgroups.cgroup2_root(), *(cgroups.v1_root(c) for c in cgroups.V1_CONTROLLERS)]
    for root in (r for r in roots if r is not None):
        for group in cgroups.list_groups(root, "serve-chaos-"):
            if (m := CGROUP_RE.match(group.name)) and (b := bucket(m.group(1))):
                b.cgroups.append(group)
    for label in labels_in_home(home):
        if (b := bucket(label)) is not None:
            b.dirs.append(home / label)
    for path in HAPROXY_TMP.glob("sc-*-hap"):
        if (m := HAPROXY_DIR_RE.match(path.name)) and (b := bucket(m.group(1))):
            b.dirs.append(path)
    try:
        files = [p for p in home.iterdir() if p.is_file()]
    except OSError:
        files = []
    for path in files:
        label = path.name.split(".", 1)[0]
        if LABEL_RE.match(label) and (b := bucket(label)) is not None:
            b.files.append(path)
    return [b for b in found.values() if not b.empty()]


def clean(leftovers: Leftovers) -> None:
    """Remove one dead run's leftovers: processes first (they pin namespaces and cgroups)."""
    for group in leftovers.cgroups:
        cgroups.kill(group)
    procs.kill_and_wait(leftovers.pids, timeout_s=10)
    for group in leftovers.cgroups:
        cgroups.remove(group, timeout_s=5)
    for name in leftovers.netns:
        netns.delete_netns(name)
    for link in leftovers.links:
        netns.delete_link(link)
    for directory in leftovers.dirs:
        shutil.rmtree(directory, ignore_errors=True)
    for path in leftovers.files:
        path.unlink(missing_ok=True)


def reap_all(home: Path) -> list[str]:
    """Clean every dead run's leftovers; return one summary line per run cleaned."""
    done = []
    for item in find(home):
        clean(item)
        done.append(item.summary())
    return done
