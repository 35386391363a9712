"""Traffic as users write it: a JSON body (as YAML or under ``json:``), form data and text bodies,
sent by the real load generator to a real local HTTP server that records what arrived."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from serve_chaos.harness.observe.history import read_jsonl, requests_frame
from serve_chaos.harness.load.generator import LoadGenerator
from serve_chaos.harness.load.spec import LoadSpec, Traffic
from serve_chaos.runtime.app.spec import RequestSpec, load_requests
from serve_chaos.runtime.errors import ConfigError

REQUESTS_YAML = """
- name: yaml-json
  method: POST
  path: /score
  body: {"text": "a good day"}
- name: json-list
  method: POST
  path: /batch
  json: [1, 2, {"k": null}]
- name: form
  method: POST
  path: /login
  form: {user: ada, tries: 3, tags: [a, b]}
- name: text
  method: POST
  path: /echo
  headers: {Content-Type: text/plain}
  body: "is this app resilient?"
- name: json-own-type
  method: PUT
  path: /v2
  headers: {Content-Type: application/vnd.api+json}
  json: {"id": 7}
"""


def test_a_requests_file_as_users_write_it(tmp_path):
    path = tmp_path / "requests.yaml"
    path.write_text(REQUESTS_YAML)
    specs = {r.name: r for r in load_requests(path)}
    assert specs["yaml-json"].json_body == {"text": "a good day"} and specs["yaml-json"].body is None
    assert specs["json-list"].model_dump()["json"] == [1, 2, {"k": None}]
    assert specs["form"].form == {"user": "ada", "tries": 3, "tags": ["a", "b"]}
    assert specs["text"].body == "is this app resilient?"


@pytest.mark.parametrize("item, words", [
    ("{body: 42}", "item 1: body: body 42 is neither text (sent as it is) nor a mapping or list"),
    ("{json: hello}", "item 1: json: json must be a mapping or a list (sent as JSON), got str 'hello'"),
    ("{body: text, form: {a: 1}}", "item 1: request: body and form both give the body; keep one"),
    ("{json: {a: 1}, body: {b: 2}}", "item 1: request: body and json both give the body; keep one"),
    ("{form: {a: {b: 1}}}", "item 1: form: form field 'a' must be text, a number, true/false or a list of them"),
    ("{form: [a, b]}", "item 1: form: form must be a mapping of field: value (sent urlencoded), got list"),
    ("{json: {day: 2024-01-01}}", "item 1: json: json cannot be sent as JSON"),
])
def test_a_bad_body_is_one_line(tmp_path, item, words):
    path = tmp_path / "requests.yaml"
    path.write_text(f"- {item}\n")
    with pytest.raises(ConfigError) as err:
        load_requests(path)
    line = err.value.one_line()
    assert words in line and "\n" not in line, line


# ---------------------------------------------------------------------- what arrives on the wire
ARRIVED: list[dict] = []


class Recorder(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _record(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ARRIVED.append({"method": self.command, "path": self.path, "type": self.headers.get("Content-Type"),
                        "body": body.decode()})
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_POST = do_PUT = _record


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def _drive(server: str, tmp_path, traffic: Traffic, seconds: float = 2.0):
    ARRIVED.clear()
    out = tmp_path / "requests.jsonl"
    gen = LoadGenerator(LoadSpec(rate=20, timeout_s=2.0), [{"name": "front", "url": server}], out, 60, traffic=traffic)
    gen.start()
    time.sleep(seconds)
    gen.stop()
    return requests_frame(read_jsonl(out))


def test_each_body_is_sent_as_its_kind(server, tmp_path):
    path = tmp_path / "requests.yaml"
    path.write_text(REQUESTS_YAML)
    traffic = Traffic(tuple(r.model_dump() for r in load_requests(path)), "scbody")
    df = _drive(server, tmp_path, traffic)
    assert df["ok"].all() and set(df["route"]) == {"yaml-json", "json-list", "form", "text", "json-own-type"}
    by_path = {a["path"]: a for a in ARRIVED}
    assert by_path["/score"]["type"] == "application/json"
    assert json.loads(by_path["/score"]["body"]) == {"text": "a good day"}
    assert json.loads(by_path["/batch"]["body"]) == [1, 2, {"k": None}]
    assert by_path["/login"]["type"] == "application/x-www-form-urlencoded"
    assert parse_qs(by_path["/login"]["body"]) == {"user": ["ada"], "tries": ["3"], "tags": ["a", "b"]}
    assert by_path["/echo"] == {"method": "POST", "path": "/echo", "type": "text/plain",
                                "body": "is this app resilient?"}
    assert by_path["/v2"]["type"] == "application/vnd.api+json" and json.loads(by_path["/v2"]["body"]) == {"id": 7}


def test_a_users_locustfile_sends_json_through_our_client(server, tmp_path):
    user_file = tmp_path / "their_locustfile.py"
    user_file.write_text(
        "from locust import HttpUser, task\n\n"
        "class Scorer(HttpUser):\n"
        "    @task\n"
        "    def score(self):\n"
        "        self.client.post('/score', json={'text': 'a good day'}, name='score')\n")
    df = _drive(server, tmp_path, Traffic((), "scuser", str(user_file)))
    assert df["ok"].all() and set(df["route"]) == {"score"}
    assert ARRIVED and all(a["type"] == "application/json" and json.loads(a["body"]) == {"text": "a good day"}
                           for a in ARRIVED)


def test_the_spec_round_trips_through_the_load_generators_json():
    spec = RequestSpec(**{"name": "x", "method": "POST", "body": {"a": [1, 2]}})
    wire = json.loads(json.dumps(spec.model_dump()))
    assert wire["json"] == {"a": [1, 2]} and wire["body"] is None and "json_body" not in wire
    assert RequestSpec(**wire) == spec
