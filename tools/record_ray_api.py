"""Record a live cluster's API answers into ``tests/fixtures/ray-<version>/``, replacing derived ones.

The version tests (``tests/test_ray_compat.py``) read these files; until someone records them
they are derived from each release's source (``tools/derive_ray_fixtures.py``).  With a cluster
up and traffic through it (run a scenario with ``--keep-cluster``, or any load that carries
``X-Request-Id`` headers), run::

    .venv/bin/python tools/record_ray_api.py                 # the running local cluster
    .venv/bin/python tools/record_ray_api.py --dashboard http://HOST:8265

It writes ``serve_applications.json``, ``actors.json`` and ``nodes.json`` (exactly what the
harness's prober asks for), ``version.json``, the Serve controller's log and the logs of the
replicas that logged our requests (``logs/``), and ``source.json`` saying they were recorded.
``facts.json`` stays derived: it holds what the installed release declares (defaults, schema
keys, CLI options), which a running cluster does not tell.  Nothing is changed on the cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve_chaos.harness.observe.probe import ACTORS_ALIVE, NODES, SERVE_DETAILS  # noqa: E402
from serve_chaos.harness.load.servedby import access_entries  # noqa: E402
from serve_chaos.runtime.ray_compat import LOG_FILE_API, VERSION_API, log_file_params, log_text  # noqa: E402

#: Keep a replica's log only if it names this many of our requests (one is enough to parse).
MIN_ENTRIES = 1


def get(dashboard: str, path: str, **params: Any) -> requests.Response:
    resp = requests.get(dashboard.rstrip("/") + path, params=params or None, timeout=30)
    resp.raise_for_status()
    return resp


def log(dashboard: str, node_id: str, filename: str, lines: int) -> str:
    resp = requests.get(dashboard.rstrip("/") + LOG_FILE_API, params=log_file_params(node_id, filename, lines),
                        timeout=30)
    return log_text(resp.status_code, resp.text)


def record(dashboard: str, out_root: Path) -> Path:
    version = get(dashboard, VERSION_API).json()
    out = out_root / f"ray-{version['ray_version']}"
    (out / "logs").mkdir(parents=True, exist_ok=True)
    serve = get(dashboard, SERVE_DETAILS).json()
    answers = {"version.json": version, "serve_applications.json": serve,
               "actors.json": get(dashboard, ACTORS_ALIVE).json(), "nodes.json": get(dashboard, NODES).json()}
    for name, data in answers.items():
        (out / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    controller = serve.get("controller_info") or {}
    if controller.get("log_file_path"):
        (out / "controller.log").write_text(log(dashboard, controller["node_id"], controller["log_file_path"], 2000))
    for old in (out / "logs").iterdir():
        old.unlink()
    kept = 0
    for app in (serve.get("applications") or {}).values():
        for dep in (app.get("deployments") or {}).values():
            for rep in dep.get("replicas") or []:
                if not rep.get("log_file_path"):
                    continue
                text = log(dashboard, rep["node_id"], rep["log_file_path"], 500)
                if len(access_entries(text)) >= MIN_ENTRIES:
                    (out / "logs" / Path(rep["log_file_path"]).name).write_text(text)
                    kept += 1
    (out / "source.json").write_text(json.dumps({
        "ray_version": version["ray_version"], "kind": "recorded", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime()),
        "how": f"recorded by tools/record_ray_api.py from {dashboard}; facts.json is still derived from the "
               "installed release (tools/derive_ray_fixtures.py)",
    }, indent=1) + "\n")
    print(f"recorded Ray {version['ray_version']} into {out} ({kept} replica logs with our request ids)")
    if kept == 0:
        print("warning: no replica log named a request of ours; send load through the cluster and record again",
              file=sys.stderr)
    return out


def running_dashboard() -> str:
    from serve_chaos.harness.cli.common import attached
    from serve_chaos.harness.targets import TargetOptions

    cluster = attached(TargetOptions())
    if cluster is None:
        raise SystemExit("error: no serve-chaos cluster is up. Hint: pass --dashboard URL or `serve-chaos up` first")
    return cluster.endpoints().dashboard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dashboard", help="dashboard URL (default: the running local cluster's)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures",
                        help="fixtures root; files go to <out>/ray-<version>/")
    args = parser.parse_args(argv)
    record(args.dashboard or running_dashboard(), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
