"""Loads the serve-chaos pytest plugin for everything under this directory."""

pytest_plugins = ["harness.pytest_plugin"]
