"""A pod's init step: wait until a TCP address answers, then exec the pod's command.

This is KubeRay's worker init container, which waits for the head's GCS
before ``ray start`` runs.  Usage: ``python -m serve_chaos.runtime.local.podinit HOST:PORT -- CMD...``
"""

from __future__ import annotations

import os
import socket
import sys
import time

POLL_S = 1.0


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") != 1:
        print("usage: podinit HOST:PORT -- CMD...", file=sys.stderr)
        return 2
    host, _, port = argv[0].rpartition(":")
    cmd = argv[2:]
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2.0):
                break
        except OSError:
            time.sleep(POLL_S)
    os.execvp(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
