"""Which replica served a request, from Serve's own logs -- no help from the app.

The load gives every request a unique ``X-Request-Id``; Serve's proxy keeps a
request id it is given (``ray/serve/_private/proxy.py``) and every replica that
handles the request -- the ingress replica and each downstream one called
through a DeploymentHandle -- writes an access line carrying that id into its
own log file (``serve/replica_<app>_<deployment>_<id>.log``; its path is in the
Serve REST API's replica details).  A reader thread fetches the tail of each
live replica's log through the dashboard's log API about every two seconds and
records ``request id -> replica`` pairs, live and as JSONL in the run directory.

A replica whose access log is switched off (``logging_config.enable_access_log:
false``) names no request; the checks then judge nothing by served-by.

Each access line also says how the request reached the replica: an HTTP method when
it came from a proxy (the ingress), ``CALL`` when through a DeploymentHandle.  That
is the same in every supported Ray, so it decides a record's ``ingress`` even where
the REST API does not say which deployment is the ingress (``runtime/ray_compat.py``).
"""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
import requests

from serve_chaos.runtime.ray_compat import LOG_FILE_API, access_via_http, log_file_params, log_text
#: Request ids the load generates: ``sc<run tag>-<sequence number>``.
REQUEST_ID_RE = re.compile(r"\b(sc[0-9a-z]{1,12}-(?:\d+|start)(?:\.\d+)?)\b")
#: The fields of a replica a served-by record carries.
REPLICA_FIELDS = ("replica_id", "actor_id", "pid", "app", "deployment", "pod", "ingress")
#: Lines asked of a log per fetch at first, and at most (the API returns the last N).
FIRST_LINES, MAX_LINES = 400, 20000


def request_ids(text: str) -> list[str]:
    """Our request ids in a replica log's text, in order (one per access line)."""
    return [rid for rid, _ in access_entries(text)]


def access_entries(text: str) -> list[tuple[str, bool | None]]:
    """``(request id, came over HTTP)`` per access line carrying one of our ids, in order;
    the second is None where the line does not say."""
    out = []
    for line in text.splitlines():
        match = REQUEST_ID_RE.search(line)
        if match:
            out.append((match.group(1), access_via_http(line[match.end():])))
    return out


def next_lines(asked: int, got: int, known: int) -> int:
    """How many lines to ask for next time: more when the whole answer was new
    (lines may have been missed), less when most of it was already known."""
    if got >= asked and known == 0:
        return min(MAX_LINES, asked * 2)
    return max(FIRST_LINES, min(MAX_LINES, 2 * (got - known) + 200))


def served_by_map(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``request id -> replica that received it over HTTP`` (the ingress replica; a
    downstream replica only when no ingress line was seen)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        rid = rec.get("request_id")
        if not rid:
            continue
        if rid not in out or (rec.get("ingress") and not out[rid].get("ingress")):
            out[rid] = rec
    return out


def downstream_map(records: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """``request id -> replica ids of non-ingress replicas that handled it``."""
    out: dict[str, list[str]] = {}
    for rec in records:
        if rec.get("request_id") and rec.get("ingress") is False and rec.get("replica_id"):
            out.setdefault(rec["request_id"], []).append(rec["replica_id"])
    return out


def replicas_by_pid(snapshots: Iterable[Any]) -> dict[int, str | None]:
    """PID -> replica id for every replica the probes saw; None where a PID was two
    replicas' (each Kubernetes pod has its own PID namespace, so PIDs repeat)."""
    out: dict[int, str | None] = {}
    for snap in snapshots:
        for actor in getattr(snap, "actors", []):
            if actor.get("role") != "replica" or not actor.get("pid") or not actor.get("replica_id"):
                continue
            pid = int(actor["pid"])
            if out.get(pid, actor["replica_id"]) != actor["replica_id"]:
                out[pid] = None
            else:
                out[pid] = actor["replica_id"]
    return out


def attribute(requests_df: pd.DataFrame, records: list[dict[str, Any]], snapshots: list[Any]) -> pd.DataFrame:
    """The requests with who served them: ``replica`` (Serve's logs) and its ``replica_pod``, ``replica_by_body``
    (a PID in the body mapped through the probes -- SleepyPid's cross-check) and
    ``downstream`` (replica ids of deployments the ingress called for it)."""
    df = requests_df.copy()
    by_id = served_by_map(records)
    down = downstream_map(records)
    ids = df["request_id"] if "request_id" in df else pd.Series([None] * len(df), index=df.index)
    df["replica"] = [by_id[r]["replica_id"] if isinstance(r, str) and r in by_id else None for r in ids]
    df["replica_pod"] = [by_id[r].get("pod") if isinstance(r, str) and r in by_id else None for r in ids]
    df["downstream"] = [",".join(down.get(r, [])) if isinstance(r, str) else "" for r in ids]
    pids = replicas_by_pid(snapshots)
    # A PID no probe ever saw as a replica's is named as such: an answer from outside the RUNNING set.
    df["replica_by_body"] = [pids.get(int(p), f"pid:{int(p)}") if p is not None and p == p else None
                             for p in df["pid"]]
    return df


def served(df: pd.DataFrame) -> pd.Series:
    """Who served each request: Serve's logs, else the app's own PID where it gives one."""
    if "replica" not in df:
        return pd.Series([None] * len(df), index=df.index, dtype=object)
    return df["replica"].where(df["replica"].notna(), df["replica_by_body"])


def agreement(df: pd.DataFrame) -> dict[str, Any]:
    """How often the logs and the body name the same replica (requests that have both)."""
    if "replica" not in df or df.empty:
        return {"both": 0, "agree": 0, "log_only": 0, "unattributed": 0, "pid_ambiguous": 0}
    both = df[df["replica"].notna() & df["replica_by_body"].notna()]
    ok = df[df["ok"]]
    # A body PID two replicas had (each pod its own PID namespace, as on Kubernetes) names no
    # one replica: such requests can only be attributed by the logs.
    pid_ambiguous = df["pid"].notna() & df["replica_by_body"].isna()
    return {"both": int(len(both)), "agree": int((both["replica"] == both["replica_by_body"]).sum()),
            "log_only": int((df["replica"].notna() & df["replica_by_body"].isna()).sum()),
            "unattributed": int(ok["replica"].isna().sum()), "pid_ambiguous": int(pid_ambiguous.sum())}


class ServedByReader:
    """Fetches live replicas' Serve logs every ``period_s`` seconds (timeout ``timeout_s``)
    and keeps ``request id -> replica`` records, in memory and in ``out_path``.

    ``replicas_fn`` returns the replicas to read: snapshot actor dicts with
    ``node_id``, ``log_file`` and the REPLICA_FIELDS.  Only request ids that start
    with ``prefix`` (this run's) are kept: a replica's log also holds earlier runs'.
    """

    def __init__(self, dashboard: str, replicas_fn: Callable[[], list[dict[str, Any]]],
                 out_path: Path | None = None, prefix: str = "sc", period_s: float = 2.0,
                 timeout_s: float = 5.0) -> None:
        self.dashboard = dashboard.rstrip("/")
        self.prefix = prefix + "-"
        self.replicas_fn = replicas_fn
        self.out_path = out_path
        self.period_s = period_s
        self.timeout_s = timeout_s
        self.records: list[dict[str, Any]] = []
        self.errors: dict[str, str] = {}
        self._seen: set[tuple[str, str]] = set()
        self._lines: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="servedby")
        self._session = requests.Session()

    def _fetch(self, replica: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, bool | None]]]:
        key = replica["replica_id"]
        asked = self._lines.get(key, FIRST_LINES)
        params = log_file_params(replica["node_id"], replica["log_file"], asked)
        resp = self._session.get(self.dashboard + LOG_FILE_API, params=params, timeout=self.timeout_s)
        text = log_text(resp.status_code, resp.text)
        entries = access_entries(text)
        known = sum((rid, key) in self._seen for rid, _ in entries)
        self._lines[key] = next_lines(asked, text.count("\n"), known)
        return replica, entries

    def poll(self) -> int:
        """One round over the live replicas; returns how many new pairs it found."""
        replicas = [r for r in self.replicas_fn() if r.get("log_file") and r.get("node_id") and r.get("replica_id")]
        futures = [self._pool.submit(self._fetch, r) for r in replicas]
        fresh: list[dict[str, Any]] = []
        for future in futures:
            try:
                replica, entries = future.result()
            except Exception as err:  # noqa: BLE001 - a dead replica's log is an observation
                self.errors["last"] = f"{type(err).__name__}: {str(err)[:200]}"
                continue
            for rid, via_http in entries:
                if not rid.startswith(self.prefix) or (rid, replica["replica_id"]) in self._seen:
                    continue
                self._seen.add((rid, replica["replica_id"]))
                record = {"request_id": rid, **{k: replica.get(k) for k in REPLICA_FIELDS}}
                if via_http is not None:
                    # The line knows better than the snapshot how this request arrived.
                    record["ingress"] = via_http
                fresh.append(record)
        if fresh:
            with self._lock:
                self.records.extend(fresh)
            if self.out_path is not None:
                with self.out_path.open("a") as fh:
                    fh.writelines(json.dumps(r, default=str) + "\n" for r in fresh)
        return len(fresh)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.poll()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="servedby")
        self._thread.start()

    def stop(self) -> None:
        """A last round (the latest requests), then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        try:
            self.poll()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def copy(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.records)
