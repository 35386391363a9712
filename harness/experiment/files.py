"""Experiment files to ``Scenario`` and back.

Loading validates the whole file against ``experiment_schema()`` first, so every mistake is one
``ConfigError`` line naming its key (``faults[1].with.pod_role``), before anything runs.  Steps
run in the order of ``at_s``: the first at 0 s, each later one injected while the earlier ones are
in effect (``During``, nested), judged per fault and as a whole.  Checks, metrics, bounds and a
bundled app are Python objects named ``module:attribute``; what a scenario holds that no file can
name (a check built by a function call) is listed in the printed file's header.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from pathlib import Path
from typing import Any, Callable

import jsonschema
import yaml

from serve_chaos.harness.checks import SLO
from serve_chaos.harness.deviations import KnownDeviation
from serve_chaos.harness.experiment.schema import TIMING_KEYS, experiment_schema
from serve_chaos.harness.faults import CATALOGUE, During, Fault
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Followup, Scenario
from serve_chaos.runtime.app.spec import AppSpec
from serve_chaos.runtime.errors import ConfigError

SUFFIXES = (".yaml", ".yml")
HINT = "`serve-chaos schema` prints what an experiment file may hold"


def is_experiment_file(name: str) -> bool:
    return name.endswith(SUFFIXES) and Path(name).is_file()


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"


def validate(data: Any, source: str) -> None:
    """One ConfigError line for the first schema violation (the deepest, most specific one)."""
    validator = jsonschema.Draft202012Validator(experiment_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        raise ConfigError(f"{source}: {_where(error.absolute_path)}: {' '.join(error.message.split())}", hint=HINT)


#: Top-level names serve-chaos's own code had before it moved under ``serve_chaos``.
RENAMED = ("harness", "runtime", "scenarios")


def resolve(ref: str, source: str) -> Any:
    """The Python object ``module:attribute`` names (a check, a metric, bounds, an app)."""
    module, _, attr = ref.partition(":")
    if module.split(".")[0] in RENAMED:
        # In a checkout the old name still imports -- as a second copy of the module.
        raise ConfigError(f"{source}: {ref} names serve-chaos's code by its old import name",
                          hint=f"write serve_chaos.{ref} (serve-chaos installs under the one name serve_chaos)")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{source}: {ref} cannot be imported ({err})",
                          hint="name a module on the import path and an attribute of it") from None


def _fault(step: dict[str, Any], source: str, where: str) -> Fault:
    cls = CATALOGUE[step["fault"]]
    hints = typing.get_type_hints(cls)
    params = {k: int(v) if hints.get(k) is int and isinstance(v, float) and v.is_integer() else v
              for k, v in (step.get("with") or {}).items()}
    try:
        return cls(**params)
    except (ValueError, TypeError, ConfigError) as err:
        raise ConfigError(f"{source}: {where}: {one_line(err)}", hint=HINT) from None


def one_line(err: BaseException) -> str:
    return " ".join((err.what if isinstance(err, ConfigError) else str(err)).split())


def _faults(steps: list[dict[str, Any]], source: str) -> Fault:
    """The steps as one fault: each later step ``During`` the ones before it."""
    ordered = sorted(enumerate(steps), key=lambda item: float(item[1].get("at_s", 0.0)))
    first_i, first = ordered[0]
    if float(first.get("at_s", 0.0)) != 0.0:
        raise ConfigError(f"{source}: faults[{first_i}].at_s: the first fault starts at 0 s",
                          hint="time before the first fault is timing.warmup_s and the gate")
    fault = _fault(first, source, f"faults[{first_i}]")
    for i, step in ordered[1:]:
        second = _fault(step, source, f"faults[{i}]")
        if second.load_rates():
            raise ConfigError(f"{source}: faults[{i}]: a load shape ({step['fault']}) can only be the first fault",
                              hint="put it first (at_s 0) and the other faults after it")
        # ``During`` waits from its first fault's start -- nested, the first step's -- so each
        # later step's delay is its own at_s.
        fault = During(first=fault, second=second, after_s=float(step.get("at_s", 0.0)))
    return fault


def _deviations(data: dict[str, Any]) -> dict[str, Any]:
    return {check: KnownDeviation(why) if isinstance(why, str) else
            KnownDeviation(why["why"], why.get("since"), why.get("fixed_in"), tuple(why.get("targets") or ()))
            for check, why in data.items()}


def _app(data: dict[str, Any], base: Path, source: str) -> AppSpec | None:
    if "python" in data:
        return resolve(data["python"], source)
    if "config" not in data:
        return None
    app_dir = str(base / data["app_dir"]) if data.get("app_dir") else None
    requests = str(base / data["requests"]) if data.get("requests") else None
    return AppSpec.from_file(base / data["config"], app_dir=app_dir, requests_file=requests)


def _followups(data: list[dict[str, Any]], source: str) -> tuple[Followup, ...]:
    return tuple(Followup(name=f["name"], fault=_fault(f["fault"], source, f"then.{f['name']}"), slo=SLO(**f["slo"]),
                          expected_churn=dict(f["expected_churn"]),
                          extra_checks=tuple(resolve(r, source) for r in f.get("checks", ())),
                          deadline_s=float(f.get("deadline_s", 60.0))) for f in data)


def scenario_from(data: dict[str, Any], source: str, base: Path) -> Scenario:
    """A validated experiment as the Scenario it describes."""
    cluster, load = data.get("cluster") or {}, data.get("load") or {}
    try:
        return Scenario(
            name=data["name"], title=data.get("title", data["name"]), promise=data.get("promise", ""),
            fault=_faults(data["faults"], source), slo=SLO(**data["slo"]),
            expected_churn=dict(data["expected_churn"]),
            load=LoadSpec(**{**load, **({"endpoints": tuple(load["endpoints"])} if "endpoints" in load else {})}),
            app=_app(data.get("app") or {}, base, source),
            app_options=dict(data.get("app_options") or {}), needs=tuple(data.get("needs") or ()),
            gcs_ft=cluster.get("gcs_ft", True), gcs_backend=cluster.get("gcs_backend"), ingress=cluster.get("ingress"),
            known_broken=_deviations(data.get("known_broken") or {}),
            known_intermittent=_deviations(data.get("known_intermittent") or {}),
            extra_checks=tuple(resolve(r, source) for r in data.get("checks", ())),
            extra_metrics=tuple(resolve(r, source) for r in data.get("metrics", ())),
            bounds=resolve(data["bounds"], source) if data.get("bounds") else None,
            followups=_followups(data.get("then") or [], source),
            on_user_app=data.get("on_user_app", "run"), skip_reason=data.get("skip_reason", ""),
            **{k: float(v) for k, v in (data.get("timing") or {}).items()})
    except ConfigError as err:
        raise ConfigError(f"{source}: {one_line(err)}", hint=err.hint or HINT) from None
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{source}: {one_line(err)}", hint=HINT) from None


def load_experiment(path: str | Path) -> Scenario:
    """An experiment file as a Scenario; a ConfigError line for any mistake in it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"experiment {path} cannot be read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text", hint="save the experiment as UTF-8 YAML") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not YAML{at}: {' '.join(str(getattr(err, 'problem', err)).split())}") from None
    validate(data, str(path))
    return scenario_from(data, str(path), path.parent)


# ---------------------------------------------------------------------- a Scenario printed as a file
def reference(obj: Any) -> str | None:
    """``module:attribute`` that imports back to ``obj``, or None (a closure, a lambda)."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if module and name and "<" not in name:
        try:
            if getattr(importlib.import_module(module), name) is obj:
                return f"{module}:{name}"
        except (ImportError, AttributeError):
            pass
    return None


def _app_reference(app: AppSpec) -> str | None:
    from serve_chaos.runtime.app import serve_config

    return next((f"serve_chaos.runtime.app.serve_config:{k}" for k, v in vars(serve_config).items() if v is app), None)


def _steps(fault: Fault) -> list[dict[str, Any]]:
    """A fault (``During`` nested) as the file's steps, each with its start."""
    if isinstance(fault, During):
        return _steps(fault.first) + [{**_steps(fault.second)[0], "at_s": fault.after_s}]
    default = type(fault)()
    with_ = {f.name: getattr(fault, f.name) for f in dataclasses.fields(fault)
             if getattr(fault, f.name) != getattr(default, f.name) and f.name != "duration_s"
             or f.name == "duration_s" and fault.name != "load_bursts" and fault.duration_s != default.duration_s}
    return [{"fault": fault.name, **({"with": with_} if with_ else {})}]


def _slo(slo: SLO) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(slo).items() if v not in (None, {}) and getattr(SLO(), k) != v}


def _deviation_data(known: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for check, dev in known.items():
        if isinstance(dev, str) or not (dev.since or dev.fixed_in or dev.targets):
            out[check] = dev if isinstance(dev, str) else dev.why
        else:
            out[check] = {"why": dev.why, **{k: v for k, v in (("since", dev.since), ("fixed_in", dev.fixed_in))
                                               if v}, **({"targets": list(dev.targets)} if dev.targets else {})}
    return out


def _refs(objs: tuple[Callable, ...], what: str, left: list[str]) -> list[str]:
    refs = []
    for obj in objs:
        ref = reference(obj)
        if ref:
            refs.append(ref)
        else:
            left.append(f"{what} {getattr(obj, '__name__', obj)!s}")
    return refs


def scenario_data(sc: Scenario) -> tuple[dict[str, Any], list[str]]:
    """The file's content for ``sc``, and what of it stays in Python (no name to import it by)."""
    left: list[str] = []
    data: dict[str, Any] = {"name": sc.name, "title": sc.title, "promise": sc.promise}
    if sc.on_user_app != "run":
        data.update(on_user_app=sc.on_user_app, skip_reason=sc.skip_reason)
    if sc.app is not None:
        ref = _app_reference(sc.app)
        data["app"] = {"python": ref} if ref else {}
        if not ref:
            left.append(f"app {sc.app.label()}")
    if sc.app_options:
        data["app_options"] = dict(sc.app_options)
    if sc.needs:
        data["needs"] = list(sc.needs)
    cluster = {k: v for k, v in (("gcs_ft", sc.gcs_ft), ("gcs_backend", sc.gcs_backend), ("ingress", sc.ingress))
               if v is not None and not (k == "gcs_ft" and v is True)}
    if cluster:
        data["cluster"] = cluster
    data["load"] = {"rate": sc.load.rate, "timeout_s": sc.load.timeout_s, "endpoints": list(sc.load.endpoints)}
    data["faults"] = _steps(sc.fault)
    data["slo"] = _slo(sc.slo)
    data["expected_churn"] = dict(sc.expected_churn)
    data["timing"] = {k: getattr(sc, k) for k in TIMING_KEYS}
    for key in ("known_broken", "known_intermittent"):
        if getattr(sc, key):
            data[key] = _deviation_data(getattr(sc, key))
    for key, objs in (("checks", sc.extra_checks), ("metrics", sc.extra_metrics)):
        refs = _refs(objs, key[:-1], left)
        if refs:
            data[key] = refs
    if sc.bounds is not None:
        for ref in _refs((sc.bounds,), "bounds", left):
            data["bounds"] = ref
    if sc.followups:
        data["then"] = [{"name": f.name, "fault": _steps(f.fault)[0], "slo": _slo(f.slo),
                         "expected_churn": dict(f.expected_churn), "deadline_s": f.deadline_s,
                         **({"checks": refs} if (refs := _refs(f.extra_checks, "check", left)) else {})}
                        for f in sc.followups]
    return data, left


def dump_scenario(sc: Scenario) -> str:
    """``sc`` as an experiment file (YAML), its header saying what stays in Python."""
    data, left = scenario_data(sc)
    head = f"# serve-chaos experiment: {sc.name} (`serve-chaos run THIS_FILE`)\n"
    if left:
        head += "# built in Python, not in this file: " + "; ".join(left) + "\n"
    return head + yaml.safe_dump(data, sort_keys=False, width=110)
