"""What the kubelet is given and gives: a pod's spec (the operator's pod template), its event sink, and
where a pod's Ray session lies as the host sees it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from serve_chaos.runtime.local.pods import Pod


#: ``pod -> (command, extra env)``: what a pod runs (the operator's pod template).
PodSpec = Callable[[Pod], tuple[list[str], dict[str, str]]]


Event = Callable[..., Any]


def session_dir(pod_dir: Path) -> Path:
    """The Ray session directory in a pod's temp dir, as the host sees it.

    Ray links ``session_latest`` to an absolute path as the pod sees it: under the shared
    temp dir its mount namespace lays the pod's own directory over.  From the host that
    path is the shared directory, where the session is not, so the link's last component
    is looked up in the pod's own directory."""
    latest = pod_dir / "session_latest"
    try:
        return pod_dir / Path(os.readlink(latest)).name
    except OSError:
        return latest
