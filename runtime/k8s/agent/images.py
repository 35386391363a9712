"""What an image means on a node without a container runtime.

A container's root filesystem here is the host's own, seen through an overlay of its own
(``rootfs.py``); an image adds a thin layer on top: the files its entrypoints are found at,
its environment and working directory.  Only the images serve-chaos's manifests name are
known -- Ray's (``rayproject/ray:X.Y.Z``: that release's ``ray``/``python`` from the venv the
local target runs it from, ``serve_chaos.runtime.local.rayenv``), Redis (``redis:*``: the host's
``redis-server``) and the KubeRay operator (``quay.io/kuberay/operator:<v>``: the operator
built from its Go module) -- and any other is a pull that fails, as it would on a node that
cannot reach its registry (``ErrImagePull`` with the reason).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from serve_chaos.runtime.errors import ServeChaosError

#: The PATH a Debian-based image sets (the Ray and Redis images' own base).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RAY_IMAGE = re.compile(r"^(?:docker\.io/)?rayproject/ray(?:-ml)?:(\d+\.\d+\.\d+)(?:-[\w.]+)?$")
REDIS_IMAGE = re.compile(r"^(?:docker\.io/)?(?:library/)?redis(?::[\w.-]+)?$")
OPERATOR_IMAGE = re.compile(r"^(?:quay\.io/)?kuberay/operator:(v\d+\.\d+\.\d+)$")


class ImageUnavailable(ServeChaosError):
    """The node cannot run this image (ErrImagePull's message)."""


@dataclass(frozen=True)
class Image:
    """The layer an image puts over the host's filesystem: links (path in the container ->
    host path), directories to create, environment, working directory."""

    name: str
    links: dict[str, str] = field(default_factory=dict)
    #: Executable scripts (path -> text): a venv's interpreter must be started by its own path,
    #: not through a link (Python finds its venv from the path it was started by).
    scripts: dict[str, str] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    #: What the image's digest would be: the host paths it resolved to.
    image_id: str = ""


def _ray(name: str, version: str) -> Image:
    from serve_chaos.runtime.local.rayenv import installed_runtime

    try:
        ray = installed_runtime(version)
    except ServeChaosError as err:
        raise ImageUnavailable(f"{name}: {err.what}", hint=err.hint) from None
    bin_dir = ray.bin_dir
    links = {f"/usr/local/bin/{tool}": str(bin_dir / tool) for tool in ("ray", "serve", "pip")
             if (bin_dir / tool).exists()}
    run_python = f'#!/bin/sh\nexec {ray.python} "$@"\n'
    scripts = {"/usr/local/bin/python": run_python, "/usr/local/bin/python3": run_python}
    return Image(name, links, scripts, dirs=("/home/ray",), env={"PATH": IMAGE_PATH, "HOME": "/home/ray"},
                 workdir="/home/ray", image_id=f"venv://{bin_dir.parent}")


def _redis(name: str) -> Image:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(server).exists():
        raise ImageUnavailable(f"{name}: redis-server is not installed on this host", hint="apt-get install redis-server")
    return Image(name, {"/usr/local/bin/redis-server": server}, dirs=("/data",), env={"PATH": IMAGE_PATH},
                 workdir="/data", image_id=f"host://{server}")


def _operator(name: str, version: str, operators: dict[str, str]) -> Image:
    binary = operators.get(version)
    if not binary:
        raise ImageUnavailable(f"{name}: no KubeRay operator {version} was built here",
                               hint=f"built here: {', '.join(sorted(operators)) or 'none'}")
    return Image(name, {"/manager": binary}, env={"PATH": IMAGE_PATH}, workdir="/", image_id=f"go://{binary}")


def resolve(name: str, operators: dict[str, str]) -> Image:
    """The layer for image ``name``; ImageUnavailable (one line) for any image this node cannot run.
    ``operators``: KubeRay operator version -> built binary."""
    if (m := RAY_IMAGE.match(name)) is not None:
        return _ray(name, m.group(1))
    if REDIS_IMAGE.match(name):
        return _redis(name)
    if (m := OPERATOR_IMAGE.match(name)) is not None:
        return _operator(name, m.group(1), operators)
    raise ImageUnavailable(f"{name}: this node has no container runtime and runs only Ray's, Redis's and the "
                           "KubeRay operator's images", hint="on the k8s target ship app code with --app-dir "
                                                            "(a ConfigMap), not --image")
