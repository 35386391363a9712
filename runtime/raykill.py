"""Kill named Ray actors as the fault-tolerance guide does: ``ray.kill(handle, no_restart=...)``.

Runs as a short-lived Ray driver inside the head pod (``kubectl exec`` on
KubeRay, the head's network namespace locally).  Handles are looked up first
and then killed back to back, so several victims die within milliseconds.
Prints one JSON line (times are epoch seconds): ``{"killed": [{"name",
"actor_id", "t"}], "t_kill_start", "t_kill_end", "connect_s"}``.
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
    parser.add_argument("--name", required=True, action="append", help="actor name (repeatable)")
    parser.add_argument("--namespace", default="serve")
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--ignore-missing", action="store_true", help="skip names that are not found")
    args = parser.parse_args(argv)

    import ray

    t0 = time.time()
    init_kwargs = {"address": args.address, "logging_level": "ERROR", "log_to_driver": False}
    if args.node_ip:
        init_kwargs["_node_ip_address"] = args.node_ip
    ray.init(**init_kwargs)
    connect_s = time.time() - t0
    handles = []
    for name in args.name:
        try:
            handles.append((name, ray.get_actor(name, namespace=args.namespace)))
        except ValueError as err:
            if args.ignore_missing:
                continue
            print(json.dumps({"error": f"no actor named {name!r} in {args.namespace!r}: {err}"}))
            return 3
    killed = []
    for name, handle in handles:
        t = time.time()
        ray.kill(handle, no_restart=args.no_restart)
        killed.append({"name": name, "actor_id": handle._actor_id.hex(), "t": t})
    print(
        json.dumps(
            {
                "killed": killed,
                "actor_id": killed[0]["actor_id"] if killed else None,
                "t_kill_start": killed[0]["t"] if killed else time.time(),
                "t_kill_end": time.time(),
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
