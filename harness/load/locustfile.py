"""Locust user for serve-chaos: an open-model load at a constant arrival rate.

Run only by ``serve_chaos.harness.load.generator`` in its own process (Locust monkey-patches with
gevent; it must never share a process with Ray).  Configured through env:

- ``SC_LOAD_ENDPOINTS_FILE``: a JSON file listing the endpoints, ``{"name", "url",
  "role", "pod", "incarnation"}`` each (``serve_chaos.harness.load.slots.Target``), re-read every
  second: the harness rewrites it (atomically) when a slot's pod was recreated
  at a new address; the endpoints and their order never change.  A ``url`` of
  null is a vacant slot: its sends are recorded as ``slot_vacant`` and not made.
  (``SC_LOAD_ENDPOINTS``, the same list inline, is read when no file is given.)
- ``SC_LOAD_REQUESTS``: JSON list of requests (``serve_chaos.runtime.app.spec.RequestSpec``:
  name, method, path, headers, body | json | form, expect_status, weight), mixed by weight;
- ``SC_LOAD_ID_PREFIX``: prefix of the unique ``X-Request-Id`` of every request
  (Serve's proxy keeps it and every replica logs it: how the harness learns
  which replica served a request without help from the app);
- ``SC_LOAD_USER_FILE``: a user's own locustfile, whose tasks replace the requests
  (see ``serve_chaos.harness.load.userload``);
- ``SC_LOAD_RATE``: requests per second *per endpoint*;
- ``SC_LOAD_RATES_FILE``: optional, a JSON list ``[[epoch s, rate], ...]`` re-read every
  second: from each time on, that rate (requests per second per endpoint) replaces
  ``SC_LOAD_RATE`` (a load shape: a step, a spike; the harness writes it atomically);
- ``SC_LOAD_TIMEOUT_S``: per-request timeout (seconds);
- ``SC_LOAD_MAX_IN_FLIGHT``: cap on concurrent requests (beyond it a send is
  recorded as ``client_overload`` instead of silently skipped);
- ``SC_LOAD_OUT``: JSONL file, one record per request;
- ``SC_LOAD_WORKERS``: how many Locust worker processes share the load (Locust's distributed
  mode, ``--load-workers``; 1: this process alone).  Every worker walks the same schedule from
  the start time the master sends it and makes the sends whose sequence number is its own
  (``seq % workers == worker index``), so the merged sends are exactly one process's schedule;
  each appends its records to the same file, one whole write per flush (``O_APPEND``), and
  records its index as ``worker``.

Each request is sent at its *intended* time, ``1 / (rate x endpoints)`` after the one before, whether or
not earlier ones returned, so a stalled server cannot slow the offered load and
hide an outage.  Every request opens a new connection, like independent clients --
except to an endpoint marked ``keepalive`` (a pod reached through a Kubernetes
port-forward, where a new connection is a websocket setup through the API server):
those requests share a pool of kept-alive connections per endpoint.
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
from locust.user.task import LOCUST_STATE_STOPPING

POD_HEADER = "X-Serve-Chaos-Pod"
REQUEST_ID_HEADER = "X-Request-Id"
DEFAULT_REQUESTS = [{"name": "", "method": "GET", "path": "/", "headers": {}, "body": None,
                     "expect_status": 200, "weight": 1}]

ENDPOINTS_FILE = os.environ.get("SC_LOAD_ENDPOINTS_FILE")
#: How often (s) the endpoints file is re-read.
FOLLOW_PERIOD_S = 1.0
#: Error class of a send not made because its slot had no pod (``serve_chaos.harness.load.slots.VACANT``).
VACANT = "slot_vacant"
RATE = float(os.environ.get("SC_LOAD_RATE", "20"))
TIMEOUT_S = float(os.environ.get("SC_LOAD_TIMEOUT_S", "5"))
MAX_IN_FLIGHT = int(os.environ.get("SC_LOAD_MAX_IN_FLIGHT", "500"))
OUT_PATH = os.environ.get("SC_LOAD_OUT", "requests.jsonl")
REQUESTS = json.loads(os.environ.get("SC_LOAD_REQUESTS", "null") or "null") or DEFAULT_REQUESTS
ID_PREFIX = os.environ.get("SC_LOAD_ID_PREFIX", "sc0")
USER_FILE = os.environ.get("SC_LOAD_USER_FILE")
RATES_FILE = os.environ.get("SC_LOAD_RATES_FILE")
WORKERS = max(1, int(os.environ.get("SC_LOAD_WORKERS", "1")))
#: The message the master sends every worker: the epoch s the shared schedule starts at.
START_MESSAGE = "serve_chaos_start"
#: When the shared schedule starts (epoch s; None until the master said, with several workers).
START: list[float] = []
#: How long after the master's test start the first send is intended (s): the message's trip.
START_LEAD_S = 0.5
#: The rate schedule as last read: ``[(epoch s, rate per endpoint), ...]``, sorted.
RATES: list[tuple[float, float]] = []


def reload_rates() -> None:
    """Take the harness's current rate schedule; a file missing or unreadable keeps the last one."""
    if not RATES_FILE:
        return
    try:
        with open(RATES_FILE) as fh:
            fresh = sorted((float(t), float(r)) for t, r in json.load(fh))
    except (OSError, ValueError, TypeError):
        return
    RATES[:] = [(t, r) for t, r in fresh if r > 0]


def rate_at(t: float) -> float:
    """Requests per second per endpoint at ``t``: the schedule's latest entry at or before it, else ``RATE``."""
    current = RATE
    for start, rate in RATES:
        if start > t:
            break
        current = rate
    return current


def read_endpoints() -> list[dict]:
    """The endpoints as the harness last wrote them (inline from the environment without a file)."""
    if not ENDPOINTS_FILE:
        return json.loads(os.environ.get("SC_LOAD_ENDPOINTS", "[]"))
    with open(ENDPOINTS_FILE) as fh:
        return json.load(fh)


ENDPOINTS = read_endpoints()


def reload_endpoints() -> None:
    """Take the harness's current addresses, keeping the endpoints in their order (sends go
    to them in turn); a file that cannot be read keeps the last addresses."""
    try:
        fresh = read_endpoints()
    except (OSError, ValueError):
        return
    if [e.get("name") for e in fresh] == [e.get("name") for e in ENDPOINTS]:
        ENDPOINTS[:] = fresh


def _follow_endpoints() -> None:
    while True:
        gevent.sleep(FOLLOW_PERIOD_S)
        reload_endpoints()
        reload_rates()


def label(spec: dict) -> str:
    return spec.get("name") or f"{spec.get('method', 'GET')} {spec.get('path', '/')}"


def schedule(specs: list[dict]) -> list[dict]:
    """One cycle of the request mix: each request as often as its weight, interleaved
    (smooth weighted round-robin), so every short window carries every route."""
    current = [0] * len(specs)
    total = sum(int(s.get("weight", 1)) for s in specs)
    out = []
    for _ in range(total):
        for i, spec in enumerate(specs):
            current[i] += int(spec.get("weight", 1))
        best = max(range(len(specs)), key=lambda i: current[i])
        current[best] -= total
        out.append(specs[best])
    return out


def body_kwargs(spec: dict) -> dict:
    """How ``requests`` sends a request's body: ``json`` as JSON (it sets Content-Type
    application/json unless the request's headers set one), ``form`` urlencoded
    (application/x-www-form-urlencoded), else the text ``body`` as it is."""
    if spec.get("json") is not None:
        return {"json": spec["json"]}
    if spec.get("form") is not None:
        return {"data": spec["form"]}
    return {"data": spec.get("body")}


def body_pid(text: str) -> int | None:
    """The PID an app like SleepyPid returns as its whole body (a cross-check only)."""
    try:
        return int(text.strip())
    except ValueError:
        return None


#: How much of a 5xx answer's body a request record keeps (characters).
DETAIL_CHARS = 300


def judge(record: dict, status: int, expect: int) -> None:
    """Fill in the outcome of an answered request: ok when it answered ``expect``."""
    record["status"] = status
    if status == expect:
        record["ok"] = True
    elif status >= 500:
        record["error"] = "5xx"
    elif status >= 400:
        record["error"] = "4xx"
    else:
        record["error"] = "unexpected_status"


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
    """Buffers records and appends them to the JSONL file every 200 ms, in one ``write`` on an
    ``O_APPEND`` descriptor: whole lines, never interleaved with another worker's."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.buffer: list[str] = []
        self.closed = False
        gevent.spawn(self._flusher)

    def add(self, record: dict) -> None:
        self.buffer.append(json.dumps(record, separators=(",", ":")))

    def flush(self) -> None:
        if self.buffer and not self.closed:
            lines, self.buffer = self.buffer, []
            data = ("\n".join(lines) + "\n").encode()
            while data:
                data = data[os.write(self.fd, data):]

    def _flusher(self) -> None:
        while not self.closed:
            gevent.sleep(0.2)
            self.flush()

    def close(self) -> None:
        self.flush()
        self.closed = True
        os.close(self.fd)


#: Kept-alive connections per ``keepalive`` endpoint (its name -> a Session with a pool as
#: large as the requests that may be in flight); never retried: a failure is data.
SESSIONS: dict[str, requests.Session] = {}


def session_for(endpoint: dict) -> requests.Session | None:
    if not endpoint.get("keepalive"):
        return None
    if endpoint["name"] not in SESSIONS:
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=MAX_IN_FLIGHT, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        SESSIONS[endpoint["name"]] = session
    return SESSIONS[endpoint["name"]]


RECORDER: Recorder | None = None
#: In-flight requests; joined at stop so no started request goes unrecorded.
IN_FLIGHT = Pool(MAX_IN_FLIGHT)


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(START_MESSAGE, lambda msg, **_kw: START.append(float(msg.data)))


@events.test_start.add_listener
def _on_start(environment, **_kwargs) -> None:
    global RECORDER
    from locust.runners import MasterRunner

    if isinstance(environment.runner, MasterRunner):
        # The master sends nothing itself; it only tells every worker when the schedule starts.
        environment.runner.send_message(START_MESSAGE, time.time() + START_LEAD_S)
        return
    RECORDER = Recorder(OUT_PATH)
    reload_rates()
    if ENDPOINTS_FILE:
        gevent.spawn(_follow_endpoints)


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

    def _send(self, endpoint: dict, spec: dict, intended: float, seq: int) -> None:
        sent = time.time()
        record = new_record(seq, intended, endpoint, spec, sent)
        exc: BaseException | None = None
        try:
            session = session_for(endpoint)
            headers = {**({} if session else {"Connection": "close"}), **(spec.get("headers") or {}),
                       REQUEST_ID_HEADER: record["request_id"]}
            resp = (session or requests).request(spec.get("method", "GET"),
                                                 endpoint["url"].rstrip("/") + spec.get("path", "/"),
                                                 timeout=TIMEOUT_S, headers=headers, **body_kwargs(spec))
            record["pod"] = resp.headers.get(POD_HEADER) or endpoint.get("pod")
            judge(record, resp.status_code, int(spec.get("expect_status", 200)))
            record["pid"] = body_pid(resp.text) if record["ok"] else None
            if record["status"] is not None and record["status"] >= 500:
                # Serve's proxy answers a 500 with the exception's text: the cause, kept short.
                record["detail"] = resp.text[:DETAIL_CHARS]
        except Exception as err:  # noqa: BLE001 - every failure is data
            exc = err
            record["error"] = classify(err)
        finish(self.environment, record, sent, exc)

    def _start(self) -> tuple[float, int]:
        """When the schedule starts (epoch s) and which residue of it this process sends."""
        if WORKERS == 1:
            return time.time() + 0.05, 0
        while not START:
            gevent.sleep(0.01)
        return START[0], int(getattr(self.environment.runner, "worker_index", 0)) % WORKERS

    @task
    def drive(self) -> None:
        if not ENDPOINTS:
            raise RuntimeError("SC_LOAD_ENDPOINTS is empty")
        mix = schedule(REQUESTS)
        user_tasks = load_user_tasks(self.environment) if USER_FILE else None
        intended, mine = self._start()
        WORKER[0] = mine
        seq = 0
        # Return when Locust stops the user: in-flight requests are joined at test_stop, and an
        # endless task would hold the stop for the whole --stop-timeout.
        while self._state != LOCUST_STATE_STOPPING:
            if seq:
                # Each send 1 / (rate x endpoints) after the last *intended* one: the schedule's
                # rate at that time, the open model kept across a change of rate.
                intended += 1.0 / (rate_at(intended) * max(1, len(ENDPOINTS)))
            if seq % WORKERS != mine:
                seq += 1
                continue
            delay = intended - time.time()
            if delay > 0:
                gevent.sleep(delay)
            # Endpoints strictly in turn (History.judged_until relies on it), routes by weight.
            endpoint = ENDPOINTS[seq % len(ENDPOINTS)]
            spec = mix[(seq // len(ENDPOINTS)) % len(mix)]
            if endpoint.get("url") is None:
                # A slot whose pod is gone and not back: nothing to send to, but the send is
                # recorded (History.judged_until counts on every sequence number).
                if RECORDER is not None:
                    RECORDER.add({**new_record(seq, intended, endpoint, spec, None), "error": VACANT})
            elif self.pool.full():
                if RECORDER is not None:
                    RECORDER.add({**new_record(seq, intended, endpoint, spec, None), "error": "client_overload"})
            elif user_tasks is not None:
                self.pool.spawn(user_tasks.run, endpoint, intended, seq)
            else:
                self.pool.spawn(self._send, endpoint, spec, intended, seq)
            seq += 1


def new_record(seq: int | str, intended: float, endpoint: dict, spec: dict | None, sent: float | None,
               route: str | None = None) -> dict:
    return {"seq": seq, "t": intended, "t_sent": sent, "endpoint": endpoint["name"],
            "route": route or (label(spec) if spec else ""), "request_id": f"{ID_PREFIX}-{seq}",
            "status": None, "ok": False, "error": None, "pid": None, "pod": endpoint.get("pod"),
            "role": endpoint.get("role"), "latency_ms": None,
            # Which incarnation of a slot's pod the request was aimed at, and at what address.
            "address": endpoint.get("url"), "incarnation": endpoint.get("incarnation"), "worker": WORKER[0]}


#: This process's worker index (0 alone), set once Locust's master has numbered it.
WORKER: list[int] = [0]


def finish(environment, record: dict, sent: float, exc: BaseException | None) -> None:
    """Record one answered (or failed) request, and tell Locust's own statistics."""
    latency_s = time.time() - sent
    record["latency_ms"] = round(latency_s * 1000, 3)
    if RECORDER is not None:
        RECORDER.add(record)
    environment.events.request.fire(
        request_type="HTTP", name=record["route"] or record["endpoint"], response_time=latency_s * 1000,
        response_length=0, context={},
        exception=exc if exc is not None else (None if record["ok"] else RuntimeError(record["error"])))


def load_user_tasks(environment):
    import sys

    from serve_chaos.harness.load import userload

    userload.bind(sys.modules[__name__])
    return userload.UserTasks.load(USER_FILE, environment, TIMEOUT_S, next(e["url"] for e in ENDPOINTS if e.get("url")))
