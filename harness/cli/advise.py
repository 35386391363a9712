"""``serve-chaos advise``: what the fault-tolerance guide says about a Serve config, before anything runs.

Nothing is started or touched: the config is checked against Serve's schema, the
target's settings are read from its config (GCS FT, workers, CPUs per pod), the
code under ``--app-dir`` is read with ``ast``.  Exit 0 whatever the findings (it
is advice); ``--strict`` exits 1 when a finding is severe; bad input is one line
on stderr and exit 1, as everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from serve_chaos.harness.cli.common import AppDir, AppFile, ConfigFile, Image, Target, console
from serve_chaos.runtime.errors import ConfigError

EXAMPLES = ("sleepy_pid", "composed", "chained")


def register(app: typer.Typer) -> None:
    app.command()(advise)


def advise(
    app: AppFile = None,
    app_dir: AppDir = None,
    image: Image = None,
    example: Optional[str] = typer.Option(None, help="a bundled example instead of --app: sleepy_pid or composed"),
    target: Target = "local",
    config: ConfigFile = None,
    workers: Optional[int] = typer.Option(None, help="worker pods (default: the target's, 2)"),
    gcs_ft: Optional[bool] = typer.Option(None, "--gcs-ft/--no-gcs-ft", help="GCS fault tolerance (default on)"),
    runs: list[Path] = typer.Option([], "--runs", help="earlier run directories: compare latency with shutdown"),
    strict: bool = typer.Option(False, help="exit 1 when a finding is severe"),
) -> None:
    """Read a Serve config against the fault-tolerance guide: one line per finding, with the
    setting to change, what we measured, and the scenario that shows it."""
    from serve_chaos.harness.app.advise import SEVERE, advise as findings_of, measured_p99_ms, tally

    spec = _app(app, app_dir, image, example)
    shape = target_shape(target, config, workers, gcs_ft)
    verdicts = _verdicts(runs)
    files = dict(spec.files)
    code_source = "it is in the image" if spec.image else "pass --app-dir with the code" if not files else "read"
    findings = findings_of(spec.to_serve_config(), shape, files, code_source, measured_p99_ms(verdicts),
                           len(verdicts))
    console.print(f"serve-chaos advise: {spec.label()} ({spec.source}) on the {shape.describe()}", markup=False,
                  highlight=False, soft_wrap=True)
    for finding in findings:
        console.print(finding.line(), markup=False, highlight=False, soft_wrap=True)
    console.print(tally(findings), markup=False, highlight=False)
    if strict and any(f.severity == SEVERE for f in findings):
        raise typer.Exit(1)


def _app(app: Optional[str], app_dir: Optional[str], image: Optional[str], example: Optional[str]):
    from serve_chaos.harness.app.options import app_spec
    from serve_chaos.runtime.app.serve_config import CHAINED_APP, COMPOSED_APP, SCENARIO_APP

    if example is not None:
        if app is not None:
            raise ConfigError("--example and --app both name the app; pass one of them")
        if example not in EXAMPLES:
            raise ConfigError(f"--example {example!r} is not a bundled example",
                              hint=f"use one of: {', '.join(EXAMPLES)}")
        return {"composed": COMPOSED_APP, "chained": CHAINED_APP}.get(example, SCENARIO_APP)
    return app_spec(app, app_dir, image) or SCENARIO_APP


def target_shape(target: str, config: Optional[str], workers: Optional[int], gcs_ft: Optional[bool]):
    """The cluster of ``target`` as ``up`` would make it (nothing is started)."""
    from serve_chaos.harness.app.advise import TargetShape
    from serve_chaos.harness.targets import TargetOptions

    TargetOptions(target=target)  # one line for an unknown target
    if workers is not None and not 1 <= workers <= 20:
        raise ConfigError(f"--workers {workers} must be between 1 and 20")
    if target == "local":
        from serve_chaos.runtime.local.cluster import load_config_file

        cfg = load_config_file(config)
        count = workers if workers is not None else cfg.workers
        nodes = (("head", float(cfg.head.num_cpus)),
                 *((f"worker-{i + 1}", float(cfg.worker.num_cpus)) for i in range(count)))
        return TargetShape("local", cfg.gcs_ft if gcs_ft is None else gcs_ft, nodes)
    if config is not None:
        raise ConfigError("--config holds local cluster settings; the kind target takes none",
                          hint="leave --config out with --target kind")
    from serve_chaos.runtime.kuberay.manifests import KubeRayConfig

    ray = KubeRayConfig()
    count = workers if workers is not None else ray.workers
    on = ray.gcs_ft != "off" if gcs_ft is None else gcs_ft
    nodes = (("head", float(ray.num_cpus)), *((f"worker-{i + 1}", float(ray.num_cpus)) for i in range(count)))
    return TargetShape("kind", on, nodes)


def _verdicts(runs: list[Path]) -> list[dict]:
    if not runs:
        return []
    from serve_chaos.harness.report import artifacts as report

    return [report.load_verdict(d) for d in report.collect_runs(runs)]
