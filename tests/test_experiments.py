"""Experiment files: the schema, one-line errors, steps in time order, and the catalogue printed as
files that load back to the same plan."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from serve_chaos.harness.catalog import load_scenarios, select
from serve_chaos.harness.experiment import dump_scenario, experiment_schema, load_experiment
from serve_chaos.harness.experiment.files import scenario_data
from serve_chaos.harness.faults import During, NodeLoss, RollingUpdate
from serve_chaos.runtime.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "experiments"
MINIMAL = {"name": "mine", "faults": [{"fault": "replica_kill"}], "slo": {"max_recovery_s": 30},
           "expected_churn": {"replica": "victims"}}


def write(tmp_path: Path, data: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_schema_is_a_valid_json_schema_and_knows_every_fault():
    schema = experiment_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    step = schema["properties"]["faults"]["items"]
    assert "node_loss" in step["properties"]["fault"]["enum"] and "ingress_crash" in step["properties"]["fault"]["enum"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_shipped_example_is_its_catalogue_scenario(path):
    loaded = load_experiment(path)
    assert loaded.describe() == load_scenarios()[loaded.name].describe()
    assert path.read_text() == dump_scenario(load_scenarios()[loaded.name]), "regenerate with serve-chaos show"


def test_three_examples_ship():
    assert len(list(EXAMPLES.glob("*.yaml"))) >= 3


def test_a_scenario_printed_and_loaded_gives_the_same_plan_unless_it_says_what_stays_in_python(tmp_path):
    for name, sc in load_scenarios().items():
        data, left = scenario_data(sc)
        back = load_experiment(write(tmp_path, data, f"{name}.yaml"))
        if not left:
            assert back.describe() == sc.describe(), name
        else:
            assert "built in Python, not in this file" in dump_scenario(sc), name


def test_overlapping_steps_become_nested_faults_in_time_order(tmp_path):
    data = {**MINIMAL, "faults": [{"fault": "node_loss", "at_s": 20}, {"fault": "rolling_update"},
                                  {"fault": "replica_kill", "at_s": 35}]}
    fault = load_experiment(write(tmp_path, data)).fault
    # During waits from its first fault's start -- the first step's, nested -- so each delay is its at_s.
    assert isinstance(fault, During) and fault.after_s == 35
    assert isinstance(fault.first, During) and fault.first.after_s == 20
    assert isinstance(fault.first.first, RollingUpdate) and isinstance(fault.first.second, NodeLoss)


@pytest.mark.parametrize("change, words", [
    ({"faults": [{"fault": "replica_kil"}]}, "faults[0].fault: 'replica_kil' is not one of"),
    ({"faults": [{"fault": "pod_kill", "with": {"colour": 1}}]}, "faults[0].with: Additional properties"),
    ({"faults": [{"fault": "pod_kill", "with": {"graceful": "yes"}}]}, "faults[0].with.graceful: 'yes' is not of type"),
    ({"slo": {"max_recovery": 3}}, "slo: Additional properties are not allowed ('max_recovery'"),
    ({"load": {"rate": 0}}, "load.rate: 0 is less than or equal to the minimum"),
    ({"faults": [{"fault": "replica_kill", "at_s": 5}]}, "faults[0].at_s: the first fault starts at 0 s"),
    ({"faults": [{"fault": "load_step", "with": {"rate": 9000}}]}, "faults[0]: a load step needs a rate"),
    ({"checks": ["nowhere.at_all:check"]}, "nowhere.at_all:check cannot be imported"),
    ({"checks": ["harness.checks.extra:ray_node_death"]}, "names serve-chaos's code by its old import name"),
    ({"expected_churn": {"replica": "sometimes"}}, "unknown churn expectation 'sometimes'"),
    ({"cluster": {"ingress": "nginx"}}, "cluster.ingress: 'nginx' is not one of"),
    ({"slo": {"min_availability": 1.5}}, "min_availability"),
    ({"faults": [{"fault": "rolling_update"}, {"fault": "load_step", "at_s": 10}]},
     "faults[1]: a load shape (load_step) can only be the first fault"),
])
def test_every_mistake_is_one_line_naming_its_key(tmp_path, change, words):
    with pytest.raises(ConfigError) as err:
        load_experiment(write(tmp_path, {**MINIMAL, **change}))
    assert words in err.value.what and "\n" not in err.value.what


def test_a_missing_key_and_bad_yaml_are_one_line_too(tmp_path):
    with pytest.raises(ConfigError, match="the file: 'slo' is a required property"):
        load_experiment(write(tmp_path, {k: v for k, v in MINIMAL.items() if k != "slo"}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfaults: [\n")
    with pytest.raises(ConfigError, match="not YAML"):
        load_experiment(bad)


def test_run_and_select_take_experiment_files_beside_scenario_names(tmp_path):
    path = write(tmp_path, {**MINIMAL, "app_options": {"health_check_period_s": 1.0}, "needs": ["health_toggle"],
                            "known_intermittent": {"recovery_s": {"why": "slow here", "since": "2.60.0"}}})
    mine, theirs = select([str(path), "replica_failure"])
    assert (mine.name, theirs.name) == ("mine", "replica_failure")
    assert mine.app_options == {"health_check_period_s": 1.0} and mine.needs == ("health_toggle",)
    assert mine.known_intermittent["recovery_s"].since == "2.60.0"


def test_the_github_action_is_composite_and_names_only_inputs_it_declares():
    import re

    action = yaml.safe_load((EXAMPLES.parent.parent / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    used = set(re.findall(r"inputs\.([\w-]+)", (EXAMPLES.parent.parent / "action.yml").read_text()))
    assert used and used <= set(action["inputs"]), used - set(action["inputs"])
    # Inputs reach shell steps through env, never pasted into the script (script injection).
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")


def test_three_steps_are_injected_at_their_own_times(monkeypatch):
    """With stand-in faults: each step strikes at its at_s after the first (not after the one before)."""
    import time as clock
    from dataclasses import dataclass

    from serve_chaos.harness.faults import Fault, FaultPlan
    from serve_chaos.harness.observe.history import FaultRecord

    now = [100.0]
    monkeypatch.setattr(clock, "time", lambda: now[0])
    monkeypatch.setattr(clock, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    struck = []

    @dataclass(frozen=True)
    class Mark(Fault):
        name = "mark"
        label: str = ""

        def inject(self, cluster, plan):
            struck.append((self.label, now[0] - 100.0))
            return FaultRecord("mark", now[0], now[0], [])

    fault = During(first=During(first=Mark(label="a"), second=Mark(label="b"), after_s=1.0),
                   second=Mark(label="c"), after_s=2.5)
    plan = FaultPlan("x", "x", [], {"during": {k: {"fault": "mark", "description": "", "victims": [], "params": p}
                                              for k, p in (("first", {"during": {
                                                  k2: {"fault": "mark", "description": "", "victims": [], "params": {}}
                                                  for k2 in ("first", "second")}}), ("second", {}))}})
    fault.inject(None, plan)
    assert struck == [("a", 0.0), ("b", 1.0), ("c", 2.5)]


def test_integers_written_as_floats_and_odd_files_are_taken_or_refused_in_one_line(tmp_path):
    data = {**MINIMAL, "faults": [{"fault": "load_bursts", "with": {"bursts": 2.0, "rate": 5}}]}
    assert load_experiment(write(tmp_path, data)).fault.bursts == 2
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_experiment(bad)


def test_show_takes_one_scenario():
    from typer.testing import CliRunner

    from serve_chaos.harness.cli import app

    result = CliRunner().invoke(app, ["show", "all"])
    assert result.exit_code != 0
