"""Locust user for serve-chaos: an open-model load at a constant arrival rate.

Run only by ``harness.load`` in its own process (Locust monkey-patches with
gevent; it must never share a process with Ray).  Configured through env:

- ``SC_LOAD_ENDPOINTS``: JSON list of ``{"name", "url", "pod", "role"}``;
- ``SC_LOAD_RATE``: requests per second *per endpoint*;
- ``SC_LOAD_TIMEOUT_S``: per-request timeout (seconds);
- ``SC_LOAD_MAX_IN_FLIGHT``: cap on concurrent requests (beyond it a send is
  recorded as ``client_overload`` instead of silently skipped);
- ``SC_LOAD_OUT``: JSONL file, one record per request.

Each request is sent at its *intended* time ``t0 + i / total_rate`` whether or
not earlier ones returned, so a stalled server cannot slow the offered load and
hide an outage.  Every request opens a new connection, like independent clients.
"""

from __future__ import annotations

import errno
import json
import os
import time

import gevent
import requests
from gevent.pool import Pool
from locust import User, constant, events, task

POD_HEADER = "X-Serve-Chaos-Pod"

ENDPOINTS = json.loads(os.environ.get("SC_LOAD_ENDPOINTS", "[]"))
RATE = float(os.environ.get("SC_LOAD_RATE", "20"))
TIMEOUT_S = float(os.environ.get("SC_LOAD_TIMEOUT_S", "5"))
MAX_IN_FLIGHT = int(os.environ.get("SC_LOAD_MAX_IN_FLIGHT", "500"))
OUT_PATH = os.environ.get("SC_LOAD_OUT", "requests.jsonl")


def classify(exc: BaseException) -> str:
    """Error class of a failed request: refused / reset / timeout / unreachable / other."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "refused"
        if isinstance(cur, (ConnectionResetError, BrokenPipeError)):
            return "reset"
        if isinstance(cur, TimeoutError):
            return "timeout"
        if isinstance(cur, OSError) and cur.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable"
        name = type(cur).__name__
        if name in ("RemoteDisconnected", "ProtocolError", "IncompleteRead"):
            return "reset"
        cur = cur.__cause__ or cur.__context__ or (cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None)
    text = str(exc)
    if "Connection refused" in text:
        return "refused"
    if "reset" in text.lower() or "RemoteDisconnected" in text or "Connection aborted" in text:
        return "reset"
    if "timed out" in text.lower():
        return "timeout"
    return "other"


class Recorder:
    """Buffers records and flushes them to the JSONL file every 200 ms."""

    def __init__(self, path: str) -> None:
        self.fh = open(path, "a", buffering=1 << 16)
        self.buffer: list[str] = []
        self.closed = False
        gevent.spawn(self._flusher)

    def add(self, record: dict) -> None:
        self.buffer.append(json.dumps(record, separators=(",", ":")))

    def flush(self) -> None:
        if self.buffer and not self.closed:
            lines, self.buffer = self.buffer, []
            self.fh.write("\n".join(lines) + "\n")
            self.fh.flush()

    def _flusher(self) -> None:
        while not self.closed:
            gevent.sleep(0.2)
            self.flush()

    def close(self) -> None:
        self.flush()
        self.closed = True
        self.fh.close()


RECORDER: Recorder | None = None
#: In-flight requests; joined at stop so no started request goes unrecorded.
IN_FLIGHT = Pool(MAX_IN_FLIGHT)


@events.test_start.add_listener
def _on_start(environment, **_kwargs) -> None:
    global RECORDER
    RECORDER = Recorder(OUT_PATH)


@events.test_stop.add_listener
def _on_stop(environment, **_kwargs) -> None:
    IN_FLIGHT.join(timeout=TIMEOUT_S + 1)
    if RECORDER is not None:
        RECORDER.close()


class OpenLoopUser(User):
    """One user drives every endpoint; concurrency comes from a greenlet per request."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.pool = IN_FLIGHT
        self.total_rate = RATE * max(1, len(ENDPOINTS))

    def _send(self, endpoint: dict, intended: float, seq: int) -> None:
        sent = time.time()
        record = {
            "seq": seq,
            "t": intended,
            "t_sent": sent,
            "endpoint": endpoint["name"],
            "status": None,
            "ok": False,
            "error": None,
            "pid": None,
            "pod": endpoint.get("pod"),
            "role": endpoint.get("role"),
        }
        exc: BaseException | None = None
        try:
            resp = requests.get(endpoint["url"], timeout=TIMEOUT_S, headers={"Connection": "close"})
            record["status"] = resp.status_code
            record["pod"] = resp.headers.get(POD_HEADER) or endpoint.get("pod")
            if resp.status_code >= 500:
                record["error"] = "5xx"
            elif resp.status_code >= 400:
                record["error"] = "4xx"
            else:
                try:
                    record["pid"] = int(resp.text.strip())
                    record["ok"] = True
                except ValueError:
                    record["error"] = "bad_body"
        except Exception as err:  # noqa: BLE001 - every failure is data
            exc = err
            record["error"] = classify(err)
        latency_s = time.time() - sent
        record["latency_ms"] = round(latency_s * 1000, 3)
        if RECORDER is not None:
            RECORDER.add(record)
        self.environment.events.request.fire(
            request_type="GET",
            name=endpoint["name"],
            response_time=latency_s * 1000,
            response_length=0,
            exception=exc if exc is not None else (None if record["ok"] else RuntimeError(record["error"])),
            context={},
        )

    @task
    def drive(self) -> None:
        if not ENDPOINTS:
            raise RuntimeError("SC_LOAD_ENDPOINTS is empty")
        interval = 1.0 / self.total_rate
        t0 = time.time() + 0.05
        seq = 0
        while True:
            intended = t0 + seq * interval
            delay = intended - time.time()
            if delay > 0:
                gevent.sleep(delay)
            endpoint = ENDPOINTS[seq % len(ENDPOINTS)]
            if self.pool.full():
                if RECORDER is not None:
                    RECORDER.add({"seq": seq, "t": intended, "t_sent": None, "endpoint": endpoint["name"],
                                  "status": None, "ok": False, "error": "client_overload", "pid": None,
                                  "pod": endpoint.get("pod"), "role": endpoint.get("role"), "latency_ms": None})
            else:
                self.pool.spawn(self._send, endpoint, intended, seq)
            seq += 1
