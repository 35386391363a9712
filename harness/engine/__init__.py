"""The experiment engine: gate -> load -> warm-up -> inject -> observe -> heal -> stop load -> check ->
store.

It knows the cluster only through the Cluster protocol, and the load and the probes through the
factories it is given (Locust and the dashboard prober by default; tests give it doubles). Healing
runs in ``finally`` -- after a failed check, an exception, an abort, a declined ``--step`` or Ctrl-C
-- *before* the load is drained, so a fault never outlives the run by a drain; the artifacts are
written even then."""

from serve_chaos.harness.app.selection import ScenarioSkipped
from serve_chaos.harness.engine.core import Engine
from serve_chaos.harness.engine.run import AbortPolicy, GateError
from serve_chaos.harness.outcome import PromiseBroken, RunResult, SLOViolation

__all__ = ["AbortPolicy", "Engine", "GateError", "PromiseBroken", "RunResult", "SLOViolation", "ScenarioSkipped"]
