"""A user's own locustfile driven as an open model: their tasks, our schedule and records.

``--locustfile FILE`` names a file with one Locust ``HttpUser`` subclass.  Its
``@task`` methods (weights as Locust expands them into ``tasks``) are called
in turn, one call per scheduled send, each in its own greenlet on a copy of
the user whose ``client`` records every request it makes: one JSONL record per
request (route = the request's ``name=`` or path), a unique ``X-Request-Id``,
ok when the status is below 400 (or as ``catch_response`` decides).  ``on_start``
runs once, recorded but not judged.  TaskSets and ``wait_time`` are not used:
the arrival rate is ours.  Imported only in the Locust process.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import sys
import time
from typing import Any

#: The running locustfile module (Locust loads it from its path, not as ``serve_chaos.harness.load.locustfile``:
#: importing that would make a second module with a second recorder).  Set by ``bind``.
lf: Any = None


def bind(module: Any) -> None:
    global lf
    lf = module


class CatchResponse:
    """What ``with client.get(..., catch_response=True) as resp`` yields: the response,
    plus ``success()`` / ``failure(why)`` that decide the record's outcome."""

    def __init__(self, response: Any, record: dict[str, Any]) -> None:
        self._response = response
        self._record = record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def __enter__(self) -> "CatchResponse":
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False

    def success(self) -> None:
        self._record["ok"], self._record["error"] = True, None

    def failure(self, why: Any = "") -> None:
        self._record["ok"], self._record["error"] = False, "user_failure"


class RecordingClient:
    """Stands in for ``HttpUser.client`` during one task call (times in seconds)."""

    def __init__(self, base_url: str, endpoint: dict, seq: int | None, intended: float, timeout_s: float,
                 environment: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.endpoint = endpoint
        self.seq = seq
        self.intended = intended
        self.timeout_s = timeout_s
        self.environment = environment
        self.count = 0

    def request(self, method: str, url: str, name: str | None = None, catch_response: bool = False,
                headers: dict | None = None, **kwargs: Any) -> Any:
        import requests  # here: the check process must let Locust patch ssl before requests loads it

        tag = "start" if self.seq is None else str(self.seq)
        record = lf.new_record(self.seq, self.intended, self.endpoint, None, time.time(),
                               route=name or f"{method.upper()} {url.split('?')[0]}")
        record["request_id"] = f"{lf.ID_PREFIX}-{tag}" + (f".{self.count}" if self.count else "")
        self.count += 1
        sent = record["t_sent"]
        exc: BaseException | None = None
        response: Any = None
        try:
            full = url if url.startswith("http") else self.base_url + url
            sent_headers = {"Connection": "close", **(headers or {}), lf.REQUEST_ID_HEADER: record["request_id"]}
            kwargs.setdefault("timeout", self.timeout_s)
            response = requests.request(method.upper(), full, headers=sent_headers, **kwargs)
            record["pod"] = response.headers.get(lf.POD_HEADER) or self.endpoint.get("pod")
            lf.judge(record, response.status_code, response.status_code if response.status_code < 400 else 200)
            if catch_response:
                response = CatchResponse(response, record)
        except Exception as err:  # noqa: BLE001 - every failure is data
            exc = err
            record["error"] = lf.classify(err)
            if not catch_response:
                raise
            response = CatchResponse(requests.Response(), record)
        finally:
            # With catch_response the task decides after this returns: record at the end of the call.
            if catch_response:
                self._pending = (record, sent, exc)
            else:
                lf.finish(self.environment, record, sent, exc)
        return response

    def flush(self) -> None:
        pending = getattr(self, "_pending", None)
        if pending is not None:
            lf.finish(self.environment, *pending)
            self._pending = None

    def __getattr__(self, method: str) -> Any:
        if method in ("get", "post", "put", "patch", "delete", "head", "options"):
            return lambda url, **kw: self._call(method, url, **kw)
        raise AttributeError(method)

    def _call(self, method: str, url: str, **kw: Any) -> Any:
        self.flush()
        return self.request(method, url, **kw)


def user_class(path: str) -> type:
    """The one HttpUser subclass the file defines."""
    from locust import HttpUser

    spec = importlib.util.spec_from_file_location("serve_chaos_user_locustfile", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    found = [v for v in vars(module).values()
             if inspect.isclass(v) and issubclass(v, HttpUser) and v is not HttpUser and not v.abstract]
    if len(found) != 1:
        raise ValueError(f"{path} defines {len(found)} HttpUser classes; it must define exactly one")
    tasks = found[0].tasks
    if not tasks or not all(inspect.isfunction(t) for t in tasks):
        raise ValueError(f"{path}: {found[0].__name__} needs @task methods (TaskSets are not supported)")
    return found[0]


class UserTasks:
    """Calls the user's tasks one per scheduled send."""

    def __init__(self, cls: type, environment: Any, timeout_s: float, host: str) -> None:
        if not getattr(cls, "host", None):
            cls.host = host  # HttpUser refuses to exist without one; ours are the endpoints
        self.cls = cls
        self.environment = environment
        self.timeout_s = timeout_s
        self.user = cls(environment)
        self.started = False

    @classmethod
    def load(cls, path: str, environment: Any, timeout_s: float, host: str) -> "UserTasks":
        return cls(user_class(path), environment, timeout_s, host)

    def _call(self, fn: Any, endpoint: dict, seq: int | None, intended: float) -> None:
        user = copy.copy(self.user)
        user.client = RecordingClient(endpoint["url"], endpoint, seq, intended, self.timeout_s, self.environment)
        try:
            fn(user)
        except Exception:  # noqa: BLE001 - the failed request is already recorded
            pass
        finally:
            user.client.flush()

    def run(self, endpoint: dict, intended: float, seq: int) -> None:
        if not self.started:
            self.started = True
            on_start = getattr(self.cls, "on_start", None)
            if on_start is not None:
                self._call(on_start, endpoint, None, intended)
        tasks = self.cls.tasks
        self._call(tasks[seq % len(tasks)], endpoint, seq, intended)


def main(argv: list[str]) -> int:
    """``python -m serve_chaos.harness.load.userload FILE``: check a locustfile in a process of its own
    (Locust patches the interpreter with gevent); prints one line and exits 1 if unusable."""
    try:
        cls = user_class(argv[0])
    except Exception as err:  # noqa: BLE001 - anything a user file raises is their mistake, told in one line
        print(str(err).splitlines()[0] if str(err) else type(err).__name__)
        return 1
    print(f"{cls.__name__}: {len(cls.tasks)} task slots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
