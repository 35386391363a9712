"""Experiments as files (YAML): what a scenario is, written by a user, validated against a JSON
Schema before anything runs, turned into the same ``Scenario`` the catalogue holds -- and any
catalogue scenario printed as one (``serve-chaos show NAME --yaml``)."""

from serve_chaos.harness.experiment.files import dump_scenario, is_experiment_file, load_experiment
from serve_chaos.harness.experiment.schema import experiment_schema

__all__ = ["dump_scenario", "experiment_schema", "is_experiment_file", "load_experiment"]
