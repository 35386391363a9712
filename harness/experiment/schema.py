"""The JSON Schema of an experiment file, built from the fault catalogue, the SLO and the load
(``serve-chaos schema`` prints it for editors).  Each fault's own parameters come from its
dataclass fields, so the schema cannot drift from what the engine accepts."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults import CATALOGUE
from serve_chaos.harness.scenario import APP_NEEDS
from serve_chaos.runtime.cluster import GCS_BACKENDS, INGRESSES

SCHEMA_ID = "https://serve-chaos.invalid/experiment.schema.json"
#: Python objects an experiment may name (``module:attribute``): checks, metrics, bounds, an app.
PYTHON_REF = {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"}
TIMING_KEYS = ("warmup_s", "hold_s", "min_observe_s", "deadline_s", "after_recovery_s", "gate_timeout_s")
_JSON_TYPES = {float: "number", int: "integer", bool: "boolean", str: "string"}


def _json_type(hint: Any) -> dict[str, Any]:
    """A dataclass field's type as JSON Schema (``X | None`` allows null)."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [_JSON_TYPES[a] for a in args if a is not type(None)]
        return {"type": [*kinds, "null"] if type(None) in args else kinds}
    return {"type": _JSON_TYPES.get(hint, "string")}


def fields_schema(cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object schema of a dataclass's fields (no other key allowed)."""
    hints = typing.get_type_hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        if typing.get_origin(hint) is dict or hint is dict:
            props[f.name] = {"type": "object", "additionalProperties": {"type": "number"}}
        else:
            props[f.name] = _json_type(hint)
    return {"type": "object", "additionalProperties": False, "properties": props}


def fault_schema() -> dict[str, Any]:
    """One step: a catalogue fault, when it starts (s after the first), and its parameters."""
    branches = [{"if": {"properties": {"fault": {"const": name}}, "required": ["fault"]},
                 "then": {"properties": {"with": fields_schema(cls, skip=("duration_s",) if name == "load_bursts"
                                                               else ())}}}
                for name, cls in CATALOGUE.items()]
    return {"type": "object", "additionalProperties": False, "required": ["fault"],
            "properties": {"fault": {"enum": sorted(CATALOGUE)}, "at_s": {"type": "number", "minimum": 0},
                           "with": {"type": "object"}},
            "allOf": branches}


def _churn() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False,
            "properties": {role: {"type": "string"} for role in ("replica", "proxy", "controller", "pod")}}


def _deviations() -> dict[str, Any]:
    one = {"oneOf": [{"type": "string", "minLength": 1},
                     {"type": "object", "additionalProperties": False, "required": ["why"],
                      "properties": {"why": {"type": "string", "minLength": 1}, "since": {"type": "string"},
                                     "fixed_in": {"type": "string"},
                                     "targets": {"type": "array", "items": {"enum": ["local", "kind", "k8s"]}}}}]}
    return {"type": "object", "additionalProperties": one}


def _followup() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["name", "fault", "slo", "expected_churn"],
            "properties": {"name": {"type": "string"}, "fault": fault_schema(), "slo": fields_schema(SLO),
                           "expected_churn": _churn(), "deadline_s": {"type": "number", "minimum": 0},
                           "checks": {"type": "array", "items": PYTHON_REF}}}


def experiment_schema() -> dict[str, Any]:
    """The whole file: everything but ``name``, ``faults``, ``slo`` and ``expected_churn`` optional."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "serve-chaos experiment",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "faults", "slo", "expected_churn"],
        "properties": {
            "name": {"type": "string", "pattern": r"^[A-Za-z0-9_]+$"},
            "title": {"type": "string"},
            # With --app / --chaos-app the user's app replaces the file's unless the file says skip.
            "on_user_app": {"enum": ["run", "skip"]},
            "skip_reason": {"type": "string"},
            "promise": {"type": "string"},
            "app": {"type": "object", "additionalProperties": False, "properties": {
                "config": {"type": "string"}, "app_dir": {"type": "string"}, "requests": {"type": "string"},
                "python": PYTHON_REF}},
            "app_options": {"type": "object", "additionalProperties": {"type": ["number", "boolean", "string"]}},
            "needs": {"type": "array", "items": {"enum": list(APP_NEEDS)}},
            "cluster": {"type": "object", "additionalProperties": False, "properties": {
                "gcs_ft": {"type": "boolean"}, "gcs_backend": {"enum": list(GCS_BACKENDS)},
                "ingress": {"enum": list(INGRESSES)}}},
            "load": {"type": "object", "additionalProperties": False, "properties": {
                "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 2000},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
                "endpoints": {"type": "array", "minItems": 1, "items": {"type": "string"}}}},
            "faults": {"type": "array", "minItems": 1, "items": fault_schema()},
            "then": {"type": "array", "items": _followup()},
            "slo": fields_schema(SLO),
            "expected_churn": _churn(),
            "timing": {"type": "object", "additionalProperties": False,
                       "properties": {k: {"type": "number", "minimum": 0} for k in TIMING_KEYS}},
            "known_broken": _deviations(),
            "known_intermittent": _deviations(),
            "checks": {"type": "array", "items": PYTHON_REF},
            "metrics": {"type": "array", "items": PYTHON_REF},
            "bounds": PYTHON_REF,
        },
    }
