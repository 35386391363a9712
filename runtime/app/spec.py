"""The Serve application(s) under test: a Serve config in Serve's own schema, the code, the traffic.

``--app FILE`` takes what ``serve build`` writes and a RayService's
``serveConfigV2`` holds: ``applications: [{name, route_prefix, import_path,
runtime_env, deployments: [...]}]`` -- one application or several.  The code it
imports comes from ``--app-dir DIR`` (on the local pods' import path; on
Kubernetes in a ConfigMap) or from ``--image`` (Kubernetes).  The traffic is
``--requests FILE`` (a YAML list of requests) or, by default, a GET of every
application's route prefix answered 200.  The bundled SleepyPid is the default
app and one example; nothing in the engine depends on what an app returns.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import serve_chaos
from serve_chaos.runtime.errors import ConfigError

#: Serve's defaults, written out so a verdict can say what was in effect (s).
SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S = 10.0
SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S = 30.0
SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S = 20.0
#: The documented opt-in route: an app that answers ``POST <prefix>/-/chaos/health?mode=raise|hang|ok``
#: with ``{"pid": <replica PID>, "mode": ...}`` lets the harness make the receiving replica's
#: ``check_health`` raise or hang.  Other apps get ``replica_hang`` (SIGSTOP) instead.
HEALTH_ROUTE = "/-/chaos/health"
#: Where the bundled apps' files are read from: the directory holding ``runtime/`` (the checkout, or
#: ``serve_chaos/`` in an installed wheel) and the package's own directory.
REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(serve_chaos.__file__).resolve().parent
#: What a ConfigMap may hold (bytes); bigger code goes into an image.
CONFIGMAP_LIMIT = 900 * 1024


#: A JSON body as YAML writes it: a mapping or a list (of anything JSON holds).
JsonBody = dict[str, Any] | list[Any]
#: One form field's value (a list repeats the field).
FormValue = str | int | float | bool
#: What a request's body may be given as (at most one of them).
BODY_FIELDS = ("body", "json", "form")


class RequestSpec(BaseModel):
    """One kind of request the load sends: ``path`` is relative to the endpoint; a request is
    a success when it answers ``expect_status``.  ``weight`` is its share of the traffic.

    The body, as users write it (at most one of): ``body`` text, sent as it is (a
    mapping or list under ``body`` is a JSON body written as YAML: sent as JSON);
    ``json`` a mapping or list, sent as JSON with ``Content-Type: application/json``;
    ``form`` a mapping, sent urlencoded (``application/x-www-form-urlencoded``).  A
    ``Content-Type`` in ``headers`` wins over the one implied."""

    # By alias: `json` is what users write (and what the load generator reads); the field
    # is json_body because `json` would shadow BaseModel's own attribute.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)

    name: str = ""
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_body: JsonBody | None = Field(None, alias="json")
    form: dict[str, FormValue | list[FormValue]] | None = None
    expect_status: int = Field(200, ge=100, le=599)
    weight: int = Field(1, ge=1, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _yaml_json_body(cls, data: Any) -> Any:
        """``body: {"text": "a good day"}`` is a JSON body written as YAML: send it as JSON."""
        if not isinstance(data, dict) or not isinstance(data.get("body"), (dict, list)):
            return data
        if data.get("json") is not None or data.get("json_body") is not None:
            raise ValueError("body and json both give the body; keep one")
        return {**{k: v for k, v in data.items() if k != "body"}, "json": data["body"]}

    @field_validator("body", mode="before")
    @classmethod
    def _body(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"body {value!r} is neither text (sent as it is) nor a mapping or list (sent as "
                             "JSON); quote it, or use json: or form:")
        return value

    @field_validator("json_body", mode="before")
    @classmethod
    def _json_shape(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, (dict, list)):
            raise ValueError(f"json must be a mapping or a list (sent as JSON), got {type(value).__name__} "
                             f"{value!r}; for text use body:")
        return value

    @field_validator("form", mode="before")
    @classmethod
    def _form_shape(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, dict):
            raise ValueError(f"form must be a mapping of field: value (sent urlencoded), got {type(value).__name__}")
        scalar = (str, int, float, bool)
        for key, item in value.items():
            items = item if isinstance(item, list) else [item]
            if not isinstance(key, str) or not all(isinstance(i, scalar) for i in items):
                raise ValueError(f"form field {key!r} must be text, a number, true/false or a list of them")
        return value

    @field_validator("json_body")
    @classmethod
    def _json(cls, value: JsonBody | None) -> JsonBody | None:
        if value is not None:
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise ValueError(f"json cannot be sent as JSON ({err}); quote dates and the like") from None
        return value

    @model_validator(mode="after")
    def _one_body(self) -> "RequestSpec":
        given = [name for name, value in (("body", self.body), ("json", self.json_body), ("form", self.form))
                 if value is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} both give the body; keep one")
        return self

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
            raise ValueError(f"method {value!r} is not an HTTP method")
        return value.upper()

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with /")
        return value

    @property
    def label(self) -> str:
        return self.name or f"{self.method} {self.path}"


@dataclass(frozen=True)
class Deployment:
    """One deployment of one application, with the settings that shape its recovery (s)."""

    app: str
    name: str
    num_replicas: int
    health_check_period_s: float
    health_check_timeout_s: float
    graceful_shutdown_timeout_s: float

    @property
    def ref(self) -> str:
        return f"{self.app}/{self.name}"


def replicas_at_rest(deployment: dict[str, Any]) -> int:
    """Replicas a deployment settles at without load: ``num_replicas``, or with an
    ``autoscaling_config`` (or ``num_replicas: auto``) its ``min_replicas`` (Serve's
    ``AutoscalingConfig``, default 1: ``initial_replicas`` only sets the start)."""
    auto = deployment.get("autoscaling_config")
    if auto is None and deployment.get("num_replicas") != "auto":
        return int(deployment.get("num_replicas", 1))
    return int((auto or {}).get("min_replicas", 1))


@dataclass(frozen=True)
class AppSpec:
    """What is deployed and how it is reached.

    ``serve_config``: the Serve config (Serve's schema).  ``source``: where it came
    from.  ``app_dir``: local directory with the code it imports.  ``image``: on
    Kubernetes, an image holding the code (instead of ``app_dir``).  ``files``:
    ``{path: text}`` shipped in a ConfigMap on Kubernetes.  ``requests``: the
    traffic.  ``health_toggle``: the app answers the documented health toggle
    route.  ``bundled``: the name of one of our examples (scenarios may shape
    it, e.g. 3 replicas), empty for a user's app.
    """

    serve_config_json: str
    source: str
    app_dir: str | None = None
    image: str | None = None
    files: tuple[tuple[str, str], ...] = ()
    requests: tuple[RequestSpec, ...] = ()
    health_toggle: bool = False
    bundled: str = ""

    # ------------------------------------------------------------------ building
    @classmethod
    def of(cls, serve_config: dict[str, Any], source: str, **kw: Any) -> "AppSpec":
        config = copy.deepcopy(serve_config)
        config.setdefault("proxy_location", "EveryNode")
        config.setdefault("http_options", {"host": "0.0.0.0", "port": 8000})
        return cls(json.dumps(config, sort_keys=True), source, **kw)

    @classmethod
    def from_file(cls, path: str | Path, app_dir: str | None = None, image: str | None = None,
                  requests_file: str | None = None) -> "AppSpec":
        """A user's Serve config file, checked against Serve's schema (one line per mistake)."""
        path = Path(path)
        config = _load_yaml(path, "Serve config")
        if not isinstance(config, dict) or not isinstance(config.get("applications"), list) \
                or not config["applications"]:
            raise ConfigError(f"{path} is not a Serve config: it needs a non-empty `applications` list",
                              hint="write what `serve build` writes: applications: [{name, route_prefix, "
                                   "import_path, deployments}]")
        validate_serve_config(config, str(path))
        if app_dir is not None and not Path(app_dir).is_dir():
            raise ConfigError(f"--app-dir {app_dir} is not a directory", hint="pass the directory your import_path "
                                                                              "modules live in")
        files = tuple(sorted(_code_files(Path(app_dir)).items())) if app_dir else ()
        spec = cls.of(config, str(path), app_dir=str(Path(app_dir).resolve()) if app_dir else None, image=image,
                      files=files)
        return spec.with_requests(load_requests(requests_file) if requests_file else ())

    def with_requests(self, requests: tuple[RequestSpec, ...]) -> "AppSpec":
        return replace(self, requests=tuple(requests))

    def with_health_toggle(self, enabled: bool) -> "AppSpec":
        return replace(self, health_toggle=enabled)

    def with_image(self, image: str | None) -> "AppSpec":
        return replace(self, image=image)

    def with_options(self, target: str | None = None, **options: Any) -> "AppSpec":
        """The same app with deployment options set (on every deployment, or on ``app/deployment``)."""
        config = self.to_serve_config()
        for app in config["applications"]:
            for dep in app.get("deployments", []):
                if target is None or target == f"{app['name']}/{dep['name']}":
                    dep.update({k: v for k, v in options.items() if v is not None})
        return replace(self, serve_config_json=json.dumps(config, sort_keys=True))

    # ------------------------------------------------------------------ reading
    def to_serve_config(self) -> dict[str, Any]:
        return json.loads(self.serve_config_json)

    def deployments(self) -> list[Deployment]:
        out = []
        for app in self.to_serve_config()["applications"]:
            for dep in app.get("deployments", []):
                out.append(Deployment(
                    app=app["name"], name=dep["name"], num_replicas=replicas_at_rest(dep),
                    health_check_period_s=float(dep.get("health_check_period_s", SERVE_DEFAULT_HEALTH_CHECK_PERIOD_S)),
                    health_check_timeout_s=float(dep.get("health_check_timeout_s",
                                                         SERVE_DEFAULT_HEALTH_CHECK_TIMEOUT_S)),
                    graceful_shutdown_timeout_s=float(dep.get("graceful_shutdown_timeout_s",
                                                              SERVE_DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S))))
        return out

    def deployment(self, ref: str) -> Deployment:
        """The deployment ``app/deployment``; a ConfigError naming the ones there are."""
        found = self.deployments()
        for dep in found:
            if dep.ref == ref:
                return dep
        raise ConfigError(f"--deployment {ref!r} is not a deployment of {self.source}",
                          hint=f"use app/deployment, one of: {', '.join(d.ref for d in found)}")

    def recovery_settings(self, ref: str | None = None) -> dict[str, float]:
        """What shapes a replica's replacement (s): health-check period and timeout and the
        graceful shutdown timeout -- of ``ref``, or the slowest of every deployment."""
        deps = [self.deployment(ref)] if ref else self.deployments()
        return {"health_check_period_s": max(d.health_check_period_s for d in deps),
                "health_check_timeout_s": max(d.health_check_timeout_s for d in deps),
                "graceful_shutdown_timeout_s": max(d.graceful_shutdown_timeout_s for d in deps)}

    def code_id(self) -> str:
        """What the pods must carry for this app's imports: the image, or a digest of the
        shipped files (their directory locally).  A running cluster with other code cannot
        serve this app (new replicas would import the old code)."""
        if self.image:
            return f"image:{self.image}"
        import hashlib

        digest = hashlib.sha256(json.dumps(self.files).encode()).hexdigest()[:12]
        return f"files:{digest}"

    def shape(self) -> str:
        """The deployment settings that place replicas, for refusing an attach that differs."""
        return json.dumps([(d.ref, d.num_replicas) for d in self.deployments()])

    def desired_replicas(self) -> int:
        return sum(d.num_replicas for d in self.deployments())

    def routes(self) -> tuple[RequestSpec, ...]:
        """The traffic: the requests file's, else a GET of every application's route prefix."""
        if self.requests:
            return self.requests
        # Serve's default route prefix is "/"; an explicit null is an app not exposed over HTTP.
        return tuple(RequestSpec(name=app["name"], path=app.get("route_prefix", "/"))
                     for app in self.to_serve_config()["applications"] if app.get("route_prefix", "/") is not None)

    def health_toggle_path(self) -> str | None:
        """The toggle route of the first application that opts in (its route prefix + HEALTH_ROUTE)."""
        if not self.health_toggle:
            return None
        prefix = (self.to_serve_config()["applications"][0].get("route_prefix") or "/").rstrip("/")
        return prefix + HEALTH_ROUTE

    def label(self) -> str:
        return self.bundled or Path(self.source).name

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "app_dir": self.app_dir, "image": self.image, "bundled": self.bundled,
                "health_toggle": self.health_toggle, "serve_config": self.to_serve_config(),
                "requests": [r.model_dump() for r in self.routes()]}


def validate_serve_config(config: dict[str, Any], where: str) -> None:
    """Serve's own schema (``ray.serve.schema.ServeDeploySchema``: types, and unique
    application names and route prefixes), the first mistake as one line."""
    import warnings

    with warnings.catch_warnings():
        # Ray's own schema module trips pydantic deprecation warnings on import; they are Ray's.
        warnings.simplefilter("ignore")
        from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg")).removeprefix("Value error, ")
        raise ConfigError(f"{where} does not fit Serve's config schema: {loc}: {message}",
                          hint="compare with what `serve build` writes") from None


def load_requests(path: str | Path) -> tuple[RequestSpec, ...]:
    """A YAML list of requests (name, method, path, headers, body | json | form, expect_status, weight)."""
    data = _load_yaml(Path(path), "requests file")
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path} must be a non-empty YAML list of requests",
                          hint="e.g. - {method: GET, path: /hello, expect_status: 200}")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ConfigError(f"{path} item {i + 1} is not a mapping")
        try:
            out.append(RequestSpec(**item))
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ())) or "request"
            raise ConfigError(f"{path} item {i + 1}: {loc}: {str(first.get('msg')).removeprefix('Value error, ')}",
                              hint="fields: name, method, path, headers, body (text) | json (mapping or list) | "
                                   "form (mapping), expect_status, weight") from None
    labels = [r.label for r in out]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"{path}: two requests are both called {dupes[0]!r}", hint="give each a unique name")
    return tuple(out)


def _load_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read the {what} {path}: {err.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"the {what} {path} is not valid YAML{at}") from None


def _code_files(root: Path) -> dict[str, str]:
    """The Python files under ``root`` (relative path -> text), for a ConfigMap on Kubernetes."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.py"))
            if "__pycache__" not in p.parts}


def files_size(files: tuple[tuple[str, str], ...]) -> int:
    return sum(len(text.encode()) for _, text in files)


def bundled_files(*modules: str) -> tuple[tuple[str, str], ...]:
    """The bundled app modules with their packages' ``__init__.py``, at the paths they are
    imported from (``serve_chaos/runtime/app/<module>.py``: a pod mounts them on its ``PYTHONPATH``)."""
    sources = {"serve_chaos/__init__.py": PACKAGE / "__init__.py",
               "serve_chaos/runtime/__init__.py": REPO / "runtime" / "__init__.py",
               "serve_chaos/runtime/app/__init__.py": REPO / "runtime" / "app" / "__init__.py",
               **{f"serve_chaos/runtime/app/{m}.py": REPO / "runtime" / "app" / f"{m}.py" for m in modules}}
    return tuple(sorted((key, path.read_text()) for key, path in sources.items()))
