"""Kill a named Ray actor as the fault-tolerance guide does: ``ray.kill(handle, no_restart=...)``.

Runs as a short-lived Ray driver inside the head pod (``kubectl exec`` on
KubeRay, the head's network namespace locally).  Prints one JSON line:
``{"actor_id", "t_kill_start", "t_kill_end", "connect_s"}`` (epoch seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="auto", help="GCS address host:port")
    parser.add_argument("--node-ip", default=None, help="this driver's node IP")
    parser.add_argument("--name", required=True, help="actor name")
    parser.add_argument("--namespace", default="serve")
    parser.add_argument("--no-restart", action="store_true")
    args = parser.parse_args(argv)

    import ray

    t0 = time.time()
    init_kwargs = {"address": args.address, "logging_level": "ERROR", "log_to_driver": False}
    if args.node_ip:
        init_kwargs["_node_ip_address"] = args.node_ip
    ray.init(**init_kwargs)
    connect_s = time.time() - t0
    try:
        handle = ray.get_actor(args.name, namespace=args.namespace)
    except ValueError as err:
        print(json.dumps({"error": f"no actor named {args.name!r} in {args.namespace!r}: {err}"}))
        return 3
    t_start = time.time()
    ray.kill(handle, no_restart=args.no_restart)
    t_end = time.time()
    print(
        json.dumps(
            {
                "actor_id": handle._actor_id.hex(),
                "t_kill_start": t_start,
                "t_kill_end": t_end,
                "connect_s": connect_s,
                "no_restart": args.no_restart,
            }
        ),
        flush=True,
    )
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
