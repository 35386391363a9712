"""``schema`` (the experiment file's JSON Schema, or a file checked against it) and ``show`` (a
scenario, or an experiment file, as the experiment file that describes it)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from serve_chaos.harness.cli.common import console


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)
    app.command("show")(show)


def schema(files: Optional[list[str]] = typer.Argument(None, help="experiment files to check against it")) -> None:
    """Print the JSON Schema of experiment files (for editors), or check FILES against it."""
    from serve_chaos.harness.experiment import experiment_schema, load_experiment

    if not files:
        print(json.dumps(experiment_schema(), indent=2))
        return
    for path in files:
        scenario = load_experiment(path)  # one ConfigError line for the first mistake
        console.print(f"{path}: ok ({scenario.name}: {scenario.fault.describe()})", markup=False, highlight=False)


def show(name: str = typer.Argument(..., help="a scenario name (`serve-chaos list`) or an experiment file"),
         as_yaml: bool = typer.Option(True, "--yaml/--json", help="the experiment file (YAML) or its data (JSON)")) -> None:
    """A scenario as an experiment file: save it, change it, `serve-chaos run` it."""
    from serve_chaos.harness.catalog import select
    from serve_chaos.harness.experiment.files import dump_scenario, scenario_data

    from serve_chaos.runtime.errors import ConfigError

    if name == "all":
        raise ConfigError("show takes one scenario, not all", hint="`serve-chaos list` names them; show one at a time")
    (scenario,) = select([name])
    if as_yaml:
        print(dump_scenario(scenario), end="")
    else:
        print(json.dumps(scenario_data(scenario)[0], indent=2))
