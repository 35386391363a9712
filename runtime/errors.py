"""Errors that reach a user: each says what went wrong, why, and how to fix it."""

from __future__ import annotations


class ServeChaosError(Exception):
    """A user-facing error; the CLI prints ``str(err)`` on one line and exits non-zero.

    ``hint`` says how to fix it; ``evidence`` points at logs or output that show why.
    """

    def __init__(self, what: str, hint: str = "", evidence: str = "") -> None:
        self.what = what
        self.hint = hint
        self.evidence = evidence
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.what.rstrip(".")]
        if self.evidence:
            parts.append(f"evidence: {self.evidence}")
        if self.hint:
            parts.append(f"Hint: {self.hint}")
        return ". ".join(parts)


class ConfigError(ServeChaosError):
    """Bad input from the user: an option, a scenario name, a config value."""


class EnvironmentProblem(ServeChaosError):
    """The machine lacks something the cluster needs (redis-server, Linux, a free port)."""


class InfrastructureError(ServeChaosError):
    """The system under test did not come up or could not be operated."""


class ClusterLost(InfrastructureError):
    """The cluster went away under a run (``down --force``, its supervisor killed): the run
    ends as interrupted, not as a failure of Ray."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the cluster is gone: {why}", hint="bring one up again with `serve-chaos up`")
