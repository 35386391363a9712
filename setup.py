"""Packaging: one top-level import name.  ``harness/``, ``runtime/`` and ``scenarios/`` install as
``serve_chaos.harness``, ``serve_chaos.runtime`` and ``serve_chaos.scenarios`` (the folders stay where
they are); everything else is in pyproject.toml."""

from setuptools import find_packages, setup

MAPPED = ("harness", "runtime", "scenarios")

setup(
    packages=["serve_chaos"] + [f"serve_chaos.{p}" for p in find_packages(include=[f"{m}*" for m in MAPPED])],
    package_dir={"serve_chaos": "serve_chaos", **{f"serve_chaos.{m}": m for m in MAPPED}},
)
