"""How a container is started: the namespaces, root filesystem and mounts a container runtime gives it.

The command line built here is what runc would set up, with the host's tools:
1. a shell puts itself into the container's cgroups (v2 for the kill switch, v1 ``cpu`` and
   ``memory`` for the limits), so nothing the container starts can leave them;
2. ``nsenter --net`` joins the pod's network namespace (the pod IP on its veth);
3. ``unshare --mount --uts --cgroup --pid --fork``: a mount, hostname, cgroup and PID namespace of
   the container's own -- its command is PID 1 there, as in a container (a PID 1 without a
   SIGTERM handler ignores SIGTERM, which is why a KubeRay pod may wait out its whole grace
   period), and ``--kill-child`` takes it down if the runtime dies;
4. inside, a script mounts the root filesystem -- an overlay whose lower layer is the host's
   ``/`` and whose upper layer is a tmpfs of its own (writes never reach the host) -- a fresh
   ``/proc``, ``/sys`` and ``/dev``, the memory cgroup seen from the container's own group (so
   Ray's memory monitor reads the container's limit), the image's layer (``images.py``), the
   volumes, ``/etc/hosts`` and ``/etc/resolv.conf`` as the kubelet bind-mounts them, sets the
   hostname to the pod's name, then ``chroot``s and ``exec``s the command in its working
   directory, with exactly the environment given.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from serve_chaos.runtime.k8s.agent.images import Image

CGROUPS_ENV = "SERVE_CHAOS_CGROUPS"
#: Join every cgroup ``CGROUPS_ENV`` names (``cgroup.procs`` paths), forget the variable, run "$@".
JOIN_CGROUPS = f'for f in ${CGROUPS_ENV}; do echo $$ > "$f" || exit 126; done; unset {CGROUPS_ENV}; exec "$@"'


@dataclass(frozen=True)
class Mount:
    """One mount in the container: ``source`` (a host path, or a tmpfs size for ``tmpfs``) at ``path``."""

    path: str
    source: str
    kind: str = "bind"  # bind | tmpfs
    read_only: bool = False


def _q(text: str) -> str:
    return shlex.quote(text)


def in_root(path: str, max_links: int = 40) -> str:
    """``path`` as the container's root resolves it, every symbolic link followed inside that root
    (an absolute target starts again at the container's ``/``), as runc joins mount destinations
    (filepath-securejoin).  The root's lower layer is the host's ``/``, so the host's links are the
    container's: ``/var/run/secrets`` is ``/run/secrets`` in the container, and a mount there must
    never follow ``/var/run`` out to the host's ``/run``."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = "/" + "/".join(done + [part])
        if os.path.islink(candidate):
            hops += 1
            if hops > max_links:
                raise ValueError(f"too many symbolic links in {path}")
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                done = []
            continue
        done.append(part)
    return "/" + "/".join(done)


def setup_script(state_dir: Path, image: Image, mounts: list[Mount], hostname: str, memory_view: bool) -> str:
    """The shell script run as the container's PID 1 before it ``exec``s the command ("$@":
    working directory, then the command)."""
    r = _q(str(state_dir))
    root = f"{r}/root"
    lines = [
        "set -e",
        f"mount -t tmpfs -o mode=0755 serve-chaos-rootfs {r}",
        f"mkdir {r}/upper {r}/work {root}",
        f"mount -t overlay serve-chaos-root -o lowerdir=/,upperdir={r}/upper,workdir={r}/work {root}",
        f"mount -t proc proc {root}/proc",
        f"mount --rbind /sys {root}/sys",
        f"mount --rbind /dev {root}/dev",
    ]
    if memory_view:
        lines += [f"umount -l {root}/sys/fs/cgroup/memory 2>/dev/null || true",
                  f"mount -t cgroup -o memory serve-chaos-memory {root}/sys/fs/cgroup/memory"]
    lines += [f"mkdir -p {root}{_q(in_root(d))}" for d in image.dirs]
    for path, target in sorted(image.links.items()):
        lines += [f"mkdir -p {root}{_q(in_root(str(Path(path).parent)))}",
                  f"ln -sfn {_q(target)} {root}{_q(in_root(path))}"]
    for path, text in sorted(image.scripts.items()):
        lines += [f"mkdir -p {root}{_q(in_root(str(Path(path).parent)))}",
                  f"printf %s {_q(text)} > {root}{_q(in_root(path))}", f"chmod 0755 {root}{_q(in_root(path))}"]
    for m in mounts:
        dst = f"{root}{_q(in_root(m.path))}"
        if m.kind == "tmpfs":
            lines += [f"mkdir -p {dst}", f"mount -t tmpfs -o size={_q(m.source)} serve-chaos-tmpfs {dst}"]
        elif Path(m.source).is_dir():
            lines += [f"mkdir -p {dst}", f"mount --bind {_q(m.source)} {dst}"]
        else:
            lines += [f"mkdir -p {root}{_q(in_root(str(Path(m.path).parent)))}", f"[ -e {dst} ] || : > {dst}",
                      f"mount --bind {_q(m.source)} {dst}"]
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {dst}")
    lines += [f"hostname {_q(hostname)}",
              f"exec chroot {root} /bin/sh -c 'cd \"$1\" || exit 127; shift; exec \"$@\"' container \"$@\""]
    return "\n".join(lines)


def launch_argv(netns_path: str, script: str, workdir: str, command: list[str]) -> list[str]:
    """The argv that starts the container (its environment, plus ``CGROUPS_ENV`` naming the
    ``cgroup.procs`` files to join, is the Popen's)."""
    return join_argv(["nsenter", f"--net={netns_path}", "--",
                      "unshare", "--mount", "--uts", "--cgroup", "--pid", "--fork", "--kill-child",
                      "--propagation", "private",
                      "/bin/sh", "-c", script, "container", workdir, *command])


def exec_argv(init_pid: int, command: list[str]) -> list[str]:
    """A command inside a running container (an exec probe, a preStop hook): its cgroups are
    joined by the caller's wrapper; this enters its namespaces, root and working directory."""
    return ["nsenter", "--target", str(init_pid), "--net", "--mount", "--uts", "--pid", "--root", "--wd", "--",
            *command]


def join_argv(argv: list[str]) -> list[str]:
    """``argv`` run after joining the cgroups ``CGROUPS_ENV`` names."""
    return ["/bin/sh", "-c", JOIN_CGROUPS, "exec", *argv]
