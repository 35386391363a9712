"""Names and paths of one run, all derived from its label (6 hex digits).

Everything the tool creates on the host carries the label, so leftovers of a
killed run can be found and removed without looking at process names.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

LABEL_RE = re.compile(r"^[0-9a-f]{6}$")
NETNS_RE = re.compile(r"^sc-([0-9a-f]{6})-")
LINK_RE = re.compile(r"^s([0-9a-f]{6})[hn][0-9a-f]{3}$|^scb([0-9a-f]{6})$")
CGROUP_RE = re.compile(r"^serve-chaos-([0-9a-f]{6})$")
#: Serve's HAProxy files (config, admin and metrics sockets) live in a short host path: under the
#: run's root a node's ``<dir>/<node id: 56 hex>/admin.sock`` would pass the 107-byte socket limit.
HAPROXY_TMP = Path("/tmp")
HAPROXY_DIR_RE = re.compile(r"^sc-([0-9a-f]{6})-hap$")


def new_label() -> str:
    return secrets.token_hex(3)


@dataclass(frozen=True)
class RunLayout:
    home: Path
    label: str

    @property
    def root(self) -> Path:
        return self.home / self.label

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def control_file(self) -> Path:
        """Control API address and token (mode 0600)."""
        return self.root / "control.json"

    @property
    def supervisor_pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def haproxy_dir(self) -> Path:
        """Where Serve's per-node HAProxy keeps its files (``RAY_SERVE_HAPROXY_*`` paths)."""
        return HAPROXY_TMP / f"sc-{self.label}-hap"

    @property
    def bridge(self) -> str:
        return f"scb{self.label}"

    @property
    def cgroup_name(self) -> str:
        return f"serve-chaos-{self.label}"

    def netns(self, pod: str, serial: int) -> str:
        return f"sc-{self.label}-{pod}-{serial}"

    def host_if(self, serial: int) -> str:
        return f"s{self.label}h{serial % 4096:03x}"

    def pod_dir(self, pod: str, serial: int) -> Path:
        """A fresh temp dir per pod incarnation, like a fresh pod filesystem."""
        return self.root / f"{pod}.{serial}"

    def read_control(self) -> dict | None:
        try:
            return json.loads(self.control_file.read_text())
        except (OSError, ValueError):
            return None


def labels_in_home(home: Path) -> list[str]:
    try:
        return sorted(p.name for p in home.iterdir() if p.is_dir() and LABEL_RE.match(p.name))
    except OSError:
        return []
