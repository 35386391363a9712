"""A Ray pod's own view of the filesystem: its own temp dir and its own memory cgroup, as a container has.

Pods of the local cluster share the host's filesystem.  Two things a container gives its pod
therefore need a private mount namespace (``unshare --mount``, set up before the pod's
program runs; nothing changes outside it):

- **its own ``/tmp/ray``.**  Ray before 2.60 ignores ``ray start --temp-dir`` on worker nodes
  ("temp_dir is only configurable from a head node", ``scripts.py``) and uses the head's: on one
  host every raylet then shares a session directory and they collide (Ray 2.40.0: "bind: Address
  already in use", SIGABRT).  Every pod is given the same temp dir path, and in its own mount
  namespace that path is its own incarnation's directory, bind-mounted there.
- **its own ``/sys/fs/cgroup/memory``.**  Ray's memory monitor reads the limit and usage at
  that fixed path; a new cgroup namespace rooted at the pod's group, with the hierarchy mounted
  afresh, shows it the pod's limit (without it the monitor would read the host's root group,
  which has no limit, and never act at the pod's).

A process run in the pod later (``kubectl exec``) enters the same mount namespace, through
the pod's main process (``/proc/<pid>/ns/mnt``): a driver finds the raylet's sockets there.
"""

from __future__ import annotations

import shlex
from pathlib import Path


def pod_view(cmd: list[str], own_temp: tuple[Path, Path] | None, memory: bool) -> list[str]:
    """``cmd`` in a private mount namespace (and a cgroup namespace when ``memory``) where the
    pod's own temp dir ``own_temp[0]`` is seen at ``own_temp[1]`` and, when ``memory``, its own
    memory cgroup at ``/sys/fs/cgroup/memory``."""
    steps = []
    if own_temp is not None:
        own, shared = own_temp
        steps.append(f"mount --bind {shlex.quote(str(own))} {shlex.quote(str(shared))}")
    if memory:
        steps.append("{ umount /sys/fs/cgroup/memory 2>/dev/null; "
                     "mount -t cgroup -o memory serve-chaos-memory /sys/fs/cgroup/memory; }")
    if not steps:
        return cmd
    unshare = ["unshare", "--mount", "--propagation", "private"] + (["--cgroup"] if memory else [])
    return [*unshare, "sh", "-c", " && ".join(steps) + ' && exec "$@"', "pod", *cmd]


def enter_prefix(pid: int) -> list[str]:
    """Options of ``nsenter`` that join the mount namespace of process ``pid`` (a pod's)."""
    return [f"--mount=/proc/{pid}/ns/mnt"]
