"""`serve-chaos advise`: a Serve config read against the fault-tolerance guide, before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve_chaos.harness.app.advise import (INFO, SEVERE, WARN, TargetShape, advise, drain_findings, graceful_findings,
                                health_findings, measured_p99_ms, placement_findings, replica_findings,
                                rollout_findings)
from serve_chaos.harness.app.settings import deployment_settings
from serve_chaos.harness.bounds import unhealthy_kill_bound_s
from serve_chaos.harness.app.handlecalls import modules_of, scan, scan_source

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "two-apps"
THREE = TargetShape("local", True, (("head", 1.0), ("worker-1", 1.0), ("worker-2", 1.0)))


def config(*deployments: dict, http: dict | None = None, name: str = "app") -> dict:
    return {"http_options": http or {}, "applications": [{"name": name, "route_prefix": "/", "import_path": "m:app",
                                                          "deployments": list(deployments)}]}


# ---------------------------------------------------------------------- handle calls, read with ast
CODE = '''
import asyncio
from ray import serve
from ray.serve.handle import DeploymentHandle


@serve.deployment
class Front:
    def __init__(self, scorer: DeploymentHandle, ranker, size: int):
        self.scorer = scorer
        self.ranker = ranker
        self.other = serve.get_app_handle("other")

    async def __call__(self, request):
        a = await asyncio.wait_for(self.scorer.remote(1), timeout=2)
        b = await self.scorer.score.remote(2)
        pending = self.ranker.options(method_name="rank").remote(3)
        c = await asyncio.wait_for(pending, 5)
        async with asyncio.timeout(3):
            d = await self.other.remote(4)
        e = self.scorer.remote(5).result(timeout_s=1)
        f = self.scorer.remote(6).result()
        return a, b, c, d, e, f


class NotServe:
    def __init__(self, actor):
        self.actor = actor

    def go(self):
        return self.actor.remote()
'''


def test_each_handle_call_and_its_timeout():
    calls = {c.line: c for c in scan_source("front.py", CODE)}
    assert {line: (c.timeout, c.how, c.assumed) for line, c in calls.items()} == {
        15: (True, "asyncio.wait_for", False),
        16: (False, "", False),
        17: (True, "asyncio.wait_for", True),  # bounded where the response is awaited
        20: (True, "asyncio.timeout(...)", False),
        21: (True, ".result(timeout_s=...)", False),
        22: (False, "", False),
    }
    assert calls[16].code == "self.scorer.score.remote(2)" and calls[16].cls == "Front"
    assert scan_source("broken.py", "def (") is None


def test_the_modules_an_import_path_loads():
    files = {"pkg/__init__.py": "", "pkg/app.py": "from .helpers import h\nimport pkg.models\n",
             "pkg/helpers.py": "", "pkg/models.py": "", "unrelated.py": "x = 1\n"}
    assert sorted(modules_of("pkg.app:app", files)) == ["pkg/app.py", "pkg/helpers.py", "pkg/models.py"]
    assert modules_of("missing:app", files) == []


def test_the_examples_handle_calls_have_no_timeout():
    files = {str(p.relative_to(EXAMPLE / "src")): p.read_text() for p in (EXAMPLE / "src").rglob("*.py")}
    (call,) = scan(files).without_timeout
    assert (call.where, call.cls, call.code) == ("pipeline.py:26", "Frontend", "self.scorer.remote(text)")


# ---------------------------------------------------------------------- findings
def test_no_gcs_ft_is_severe_and_names_its_scenario():
    off = TargetShape("kind", False, THREE.nodes)
    (finding,) = [f for f in advise(config({"name": "d", "num_replicas": 3, "max_replicas_per_node": 1}), off, {},
                                    "read") if f.where == "cluster"]
    assert finding.severity == SEVERE and "GCS fault tolerance is off on the kind target" in finding.line()
    assert "because we measured: without it a lost head restarted the whole cluster" in finding.line()
    assert finding.line().endswith("(shown by `serve-chaos run head_failure_no_gcs_ft`)")


@pytest.mark.parametrize("deployment, severity, words", [
    ({"name": "d"}, SEVERE, "it may run a single replica (num_replicas unset (Serve's default: 1))"),
    ({"name": "d", "num_replicas": 1}, SEVERE, "it may run a single replica (num_replicas=1)"),
    ({"name": "d", "num_replicas": "auto"}, SEVERE, "autoscaling_config.min_replicas is 1"),
    ({"name": "d", "autoscaling_config": {"min_replicas": 0, "max_replicas": 4}}, WARN, "scale it to zero"),
])
def test_a_deployment_that_may_run_one_replica(deployment, severity, words):
    (finding,) = replica_findings(deployment_settings(config(deployment)))
    assert finding.severity == severity and words in finding.what and finding.scenario == "replica_failure"
    assert not replica_findings(deployment_settings(config({"name": "d", "num_replicas": 2})))


def test_replicas_that_can_all_land_on_one_node():
    # num_cpus 0 and no max_replicas_per_node: one node can hold all of them.
    (loose,) = placement_findings(deployment_settings(config(
        {"name": "d", "num_replicas": 3, "ray_actor_options": {"num_cpus": 0}})), THREE)
    assert loose.severity == WARN and loose.scenario == "strict_spreading"
    assert "all 3 replicas may land on one node (max_replicas_per_node unset (Serve's default: soft spreading) " \
           "and num_cpus=0, so one node can hold any number)" in loose.what
    # Serve's default 1 CPU per replica on 1-CPU pods spreads them; so does max_replicas_per_node.
    assert not placement_findings(deployment_settings(config({"name": "d", "num_replicas": 3})), THREE)
    assert not placement_findings(deployment_settings(config(
        {"name": "d", "num_replicas": 6, "max_replicas_per_node": 2, "ray_actor_options": {"num_cpus": 0}})), THREE)
    (tight,) = placement_findings(deployment_settings(config(
        {"name": "d", "num_replicas": 4, "max_replicas_per_node": 1, "ray_actor_options": {"num_cpus": 0}})), THREE)
    assert tight.severity == SEVERE and "4 replicas do not fit on the 3 nodes" in tight.what


def test_a_drained_node_whose_replicas_have_nowhere_to_go():
    # A user's app as issue 25 tried it: 3 replicas, at most 1 per node, over 3 nodes.
    (spread,) = drain_findings(deployment_settings(config(
        {"name": "d", "num_replicas": 3, "max_replicas_per_node": 1, "ray_actor_options": {"num_cpus": 0}})), THREE)
    assert spread.severity == WARN and spread.scenario == "node_drain" and spread.remedy.key == "drain_room"
    assert "without it the other nodes hold 2 of 3 (max_replicas_per_node=1, num_cpus=0)" in spread.what
    # Measured: 2 per node over 3 nodes left no room for 6 (ray-facts.md); 3 per node did.
    assert drain_findings(deployment_settings(config(
        {"name": "d", "num_replicas": 6, "max_replicas_per_node": 2, "ray_actor_options": {"num_cpus": 0}})), THREE)
    assert not drain_findings(deployment_settings(config(
        {"name": "d", "num_replicas": 6, "max_replicas_per_node": 3, "ray_actor_options": {"num_cpus": 0}})), THREE)
    # Serve's default 1 CPU per replica on 1-CPU pods: one node's worth is the whole margin.
    assert drain_findings(deployment_settings(config({"name": "d", "num_replicas": 3})), THREE)
    assert not drain_findings(deployment_settings(config({"name": "d", "num_replicas": 2})), THREE)
    # What does not fit at all is placement's finding, not the drain's; a head alone has no worker to drain.
    assert not drain_findings(deployment_settings(config(
        {"name": "d", "num_replicas": 4, "max_replicas_per_node": 1, "ray_actor_options": {"num_cpus": 0}})), THREE)
    assert not drain_findings(deployment_settings(config({"name": "d", "num_replicas": 3})),
                              TargetShape("local", True, (("head", 4.0),)))


def test_a_rollout_that_leaves_a_third_or_more_of_a_deployment_out():
    (few,) = rollout_findings(deployment_settings(config({"name": "d", "num_replicas": 3})))
    assert few.severity == WARN and few.remedy.key == "surge" and "stops 1 of its 3 replicas" in few.what
    assert "2 of 3 serve meanwhile" in few.what and "until the next deploy" in few.what
    # 6 replicas lose 1 at a time (a sixth); surge keeps the old ones; one replica is replica_findings'.
    assert not rollout_findings(deployment_settings(config({"name": "d", "num_replicas": 6})))
    assert not rollout_findings(deployment_settings(config({"name": "d", "num_replicas": 3, "max_surge_percent": 34})))
    assert not rollout_findings(deployment_settings(config({"name": "d", "num_replicas": 1})))
    # A larger batch is the user's own setting: half of 10 out at once.
    (half,) = rollout_findings(deployment_settings(config({"name": "d", "num_replicas": 10,
                                                           "rolling_update_percentage": 0.5})))
    assert "stops 5 of its 10 replicas" in half.what and "rolling_update_percentage=0.5" in half.what


def test_health_check_bounds_come_from_the_deployments_own_settings():
    (slow,) = health_findings(deployment_settings(config({"name": "d", "num_replicas": 2})))
    defaults = {"health_check_period_s": 10.0, "health_check_timeout_s": 30.0, "graceful_shutdown_timeout_s": 20.0}
    raising, hanging = unhealthy_kill_bound_s(defaults, "raise"), unhealthy_kill_bound_s(defaults, "hang")
    assert f"stopped up to {raising:.0f} s after its check starts failing, {hanging:.0f} s when the check" in slow.what
    assert slow.scenario == "health_check_raise_default"
    fast = {"name": "d", "health_check_period_s": 1.0, "health_check_timeout_s": 2.0}
    assert not health_findings(deployment_settings(config(fast)))


def test_graceful_shutdown_against_the_latency_earlier_runs_measured():
    deps = deployment_settings(config({"name": "d", "graceful_shutdown_timeout_s": 2.0},
                                      {"name": "e", "graceful_shutdown_timeout_s": 30.0}))
    (cut,) = graceful_findings(deps, p99_ms=4000.0, runs=3)  # 30 s is not far above 4 s
    assert cut.severity == WARN and cut.where == "app/d" and "shorter than the p99 latency 4000 ms" in cut.what
    (slack,) = graceful_findings(deps, p99_ms=40.0, runs=3)
    assert slack.severity == INFO and slack.where == "app/e" and slack.scenario == "replica_hang"
    (unknown,) = graceful_findings(deps, p99_ms=None, runs=0)
    assert unknown.severity == INFO and "--runs" in unknown.what
    verdicts = [{"metrics": {"endpoints": {"front": {"latency": {"p99_ms": 12.0}}}}},
                {"metrics": {"endpoints": {"front": {"latency": {"p99_ms": 40.0}}}}}, {"metrics": {}}]
    assert measured_p99_ms(verdicts) == 40.0


def test_a_composed_app_without_its_code_says_what_it_could_not_check():
    two = config({"name": "a", "num_replicas": 2}, {"name": "b", "num_replicas": 2})
    infos = [f for f in advise(two, THREE, {}, "it is in the image") if f.severity == INFO and f.where == "app"]
    assert any("its code is not readable here (it is in the image)" in f.what for f in infos)


# ---------------------------------------------------------------------- the command
def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serve_chaos.harness.cli", "advise", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)})


def test_advise_on_the_two_application_config():
    proc = cli("--app", str(EXAMPLE / "serve_config.yaml"), "--app-dir", str(EXAMPLE / "src"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("serve-chaos advise: serve_config.yaml") and \
        lines[0].endswith("on the local target, GCS FT on, 3 nodes (1 CPU each)")
    assert any(ln.startswith("warn   pipeline pipeline.py:26: handle call `self.scorer.remote(text)` in Frontend "
                             "has no timeout") for ln in lines)
    assert any(ln.startswith("warn   pipeline/Frontend: all 2 replicas may land on one node") for ln in lines)
    assert not any(ln.startswith("warn   greeter/Greeter: all") for ln in lines)  # max_replicas_per_node: 1
    # ... which leaves a drained node's replica nowhere to go (3 replicas, 1 per node, 3 nodes).
    assert any(ln.startswith("warn   greeter/Greeter: a drained worker node's replicas have nowhere to go") and
               "(shown by `serve-chaos run node_drain`)" in ln for ln in lines)
    # 3, 2 and 3 replicas, max_surge_percent 0: a rollout takes a third or more of each out.
    assert sum("a rolling update stops 1 of its" in ln for ln in lines) == 3
    assert lines[-1] == "12 finding(s): 0 severe, 10 warn, 2 info"


def test_advise_on_the_bundled_examples_and_strict_exit_codes():
    sleepy = cli()
    assert sleepy.returncode == 0 and "sleepy_pid (bundled SleepyPid" in sleepy.stdout
    composed = cli("--example", "composed")
    assert composed.returncode == 0
    assert "warn   composed serve_chaos/runtime/app/composed.py:37: handle call `self.downstream.remote(1)`" in composed.stdout
    no_ft = cli("--example", "composed", "--no-gcs-ft", "--strict")
    assert no_ft.returncode == 1 and "severe cluster: GCS fault tolerance is off" in no_ft.stdout
    assert cli("--example", "composed", "--strict").returncode == 0  # warnings only
