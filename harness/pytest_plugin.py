"""pytest plugin: ``--target``, ``--keep-cluster``, ``--report-dir``; a session cluster; scenario fixtures.

Installed, it loads through its ``pytest11`` entry point in any repository: experiment files named
``chaos_*.yaml`` are collected as tests (``harness/experiment``), and the ``chaos`` fixture runs an
experiment -- a file, its data, or a ``Scenario`` -- from a test of the user's own.

A scenario test marks itself with ``@pytest.mark.scenario(SCENARIO)`` and asks
for ``scenario_result``.  The run happens in that fixture's setup, so a cluster
that is not at steady state before the fault is a test *error*, while a
violated SLO fails the test body with one line per violation.

The strict xfail of a known Ray deviation is the plugin's: it marks the test once
the run says which Ray it ran against, and only when a deviation's range holds
that release (``harness/deviations.py``); a test's own ``xfail(raises=PromiseBroken)``
marker is dropped, since on a release outside the range the promise must hold.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from serve_chaos.harness.checks.testbed import doubt_line
from serve_chaos.harness.engine import Engine, RunResult, ScenarioSkipped
from serve_chaos.harness.outcome import PromiseBroken
from serve_chaos.harness.interrupts import interrupt_on_stop_signals
from serve_chaos.harness.scenario import Scenario
from serve_chaos.harness.options import RunOptions, parse_seed
from serve_chaos.harness.targets import TargetOptions, bring_up, build_cluster, check_app_fits
from serve_chaos.runtime.cluster import Cluster
from serve_chaos.runtime.errors import ClusterLost, ConfigError, EnvironmentProblem, ServeChaosError

RESULTS_KEY = pytest.StashKey[list]()
OPTIONS_KEY = pytest.StashKey[RunOptions]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("serve-chaos", "serve-chaos chaos scenarios")
    group.addoption("--target", default="local", help="where scenarios run: local (default), kind, or k8s (a real control "
                    "plane and the KubeRay operator on this machine)")
    group.addoption("--keep-cluster", action="store_true", default=False,
                    help="reuse a running cluster and leave it running afterwards")
    group.addoption("--report-dir", default="reports", help="where run artifacts go (default: reports/)")
    group.addoption("--seed", default=None, help="seed for victim choice (default: random, recorded)")
    group.addoption("--cluster-config", default=None, help="JSON file with LocalClusterConfig fields")
    group.addoption("--load-rate", default=None, help="requests/s per endpoint (overrides scenarios)")
    group.addoption("--load-workers", default="1", help="Locust worker processes sending the load (default 1)")
    group.addoption("--kube-context", default=None, help="kind target: kubeconfig context (default: current)")
    group.addoption("--allow-context", action="append", default=[],
                    help="kind target: also allow this non-kind-* context")
    group.addoption("--namespace", default="serve-chaos", help="kind target: namespace of our resources")
    group.addoption("--node-loss-hook", default=None,
                    help="kube target: command that removes node {node} (non-kind clusters)")
    group.addoption("--serve-url", default=None,
                    help="kube target off kind: where the Serve Service is reachable (e.g. http://10.0.0.5:30800)")
    group.addoption("--dashboard-url", default=None,
                    help="kube target off kind: the Ray dashboard (default: a port-forward to the head)")
    group.addoption("--app", "--chaos-app", dest="app", default=None,
                    help="your Serve config (default: the bundled SleepyPid)")
    group.addoption("--app-dir", "--chaos-app-dir", dest="app_dir", default=None, help="directory with the code --app imports")
    group.addoption("--image", default=None, help="kind: image with Ray 2.60 and your code (instead of --app-dir)")
    group.addoption("--requests", default=None, help="YAML list of requests the load sends")
    group.addoption("--locustfile", default=None, help="your Locust HttpUser whose tasks make the requests")
    group.addoption("--deployment", default=None, help="app/deployment that replica, pod and node faults aim at")
    group.addoption("--health-toggle", action="store_true", default=False,
                    help="your app answers POST <route_prefix>/-/chaos/health?mode=raise|hang|ok")
    group.addoption("--ray-version", default=None,
                    help="Ray release the cluster runs (2.40.0..2.60.0; default 2.60.0, or whatever runs already)")


def run_options(config: pytest.Config) -> RunOptions:
    """The session's options, validated once (the CLI builds the same RunOptions)."""
    cfg = config.getoption("--cluster-config")
    if cfg is not None and not Path(cfg).is_file():
        raise ConfigError(f"--cluster-config {cfg!r} is not a file; pass a JSON file of cluster settings")
    rate = config.getoption("--load-rate")
    try:
        rate_value = float(rate) if rate is not None else None
    except ValueError:
        raise ConfigError(f"--load-rate {rate!r} must be a number of requests/s in (0, 2000]") from None
    workers = config.getoption("--load-workers")
    if not str(workers).isdigit():
        raise ConfigError(f"--load-workers {workers!r} must be a whole number of Locust worker processes (1..16)")
    from serve_chaos.harness.app.options import app_spec, app_under_test

    spec = app_spec(config.getoption("--app"), config.getoption("--app-dir"), config.getoption("--image"),
                    config.getoption("--requests"), config.getoption("--health-toggle"))
    under_test = app_under_test(spec, config.getoption("--deployment"), config.getoption("--requests"),
                                config.getoption("--locustfile"))
    target = TargetOptions(target=config.getoption("--target"), config_file=cfg,
                           kube_context=config.getoption("--kube-context"),
                           allowed_contexts=tuple(config.getoption("--allow-context")),
                           namespace=config.getoption("--namespace"),
                           node_loss_hook=config.getoption("--node-loss-hook"),
                           serve_url=config.getoption("--serve-url"), dashboard_url=config.getoption("--dashboard-url"),
                           app=spec, ray_version=config.getoption("--ray-version"))
    return RunOptions.build(seed=parse_seed(config.getoption("--seed")), report_dir=Path(config.getoption("--report-dir")),
                            load_rate=rate_value, load_workers=int(workers),
                            keep_cluster=config.getoption("--keep-cluster"), target=target,
                            app=under_test)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(obj): the serve_chaos.harness.scenario.Scenario this test runs")
    config.addinivalue_line("markers", "k8s_in_ci: CI runs this scenario on the k8s target rather than the local "
                                       "one (-m k8s_in_ci --target k8s; -m 'not k8s_in_ci' locally): what it "
                                       "judges is KubeRay's pod, node and cluster replacement")
    config.addinivalue_line("markers", "nightly_only: CI leaves this scenario out (-m 'not nightly_only') to stay "
                                       "within its time: a sibling in CI judges the same mechanism; `run all`, "
                                       "`pytest scenarios/` and the nightly job run it")
    config.stash[RESULTS_KEY] = []
    try:
        config.stash[OPTIONS_KEY] = run_options(config)
    except ConfigError as err:
        raise pytest.UsageError(err.one_line()) from None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Run scenario tests in the catalogue's order (fewest redeploys and restarts); others first."""
    from serve_chaos.harness.catalog import ORDER

    rank = {name: i for i, name in enumerate(ORDER)}

    def key(item: Any) -> tuple[int, int]:
        marker = item.get_closest_marker("scenario")
        if marker is None or not marker.args or not isinstance(marker.args[0], Scenario):
            return (-1, 0)
        return (0, rank.get(marker.args[0].name, len(rank)))

    items.sort(key=key)
    for item in items:
        if key(item)[0] == 0:
            # The plugin decides per run whether a known deviation is in play (scenario_result).
            item.own_markers[:] = [m for m in item.own_markers
                                   if not (m.name == "xfail" and m.kwargs.get("raises") is PromiseBroken)]


def make_cluster(config: pytest.Config) -> Cluster:
    options = config.stash[OPTIONS_KEY]
    return build_cluster(options.target, owner_pid=None if options.keep_cluster else os.getpid())


@pytest.fixture(scope="session")
def chaos_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The cluster under test, brought up once per session (or reused with --keep-cluster)."""
    keep = request.config.stash[OPTIONS_KEY].keep_cluster
    # A CI timeout's SIGTERM then heals the fault in effect and tears down like Ctrl-C.
    interrupt_on_stop_signals()
    try:
        cluster = make_cluster(request.config)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        say = (lambda line: reporter.write_line(f"serve-chaos: {line}")) if reporter is not None else None
        bring_up(cluster, request.config.stash[OPTIONS_KEY].target, say)
        check_app_fits(cluster, request.config.stash[OPTIONS_KEY].app.base)
        cluster.lock("pytest " + " ".join(request.config.invocation_params.args))
    except ConfigError as err:
        pytest.exit(f"serve-chaos: {err.one_line()}", returncode=pytest.ExitCode.USAGE_ERROR)
    except EnvironmentProblem as err:
        # The machine cannot make this target (the k8s target without Go or the Go module proxy):
        # every scenario is skipped with that reason, never passed.
        pytest.skip(f"serve-chaos: the {request.config.stash[OPTIONS_KEY].target.target} target cannot run here: "
                    f"{err.one_line()}")
    except ServeChaosError as err:
        # Once for the session, not as an ERROR block repeated for every scenario.
        pytest.exit(f"serve-chaos: cluster bring-up failed: {err.one_line()}", returncode=pytest.ExitCode.INTERNAL_ERROR)
    try:
        yield cluster
    finally:
        cluster.unlock()
        # Delete a cluster only if this session created it (pytest-kind's rule).
        if not keep and cluster.created:
            cluster.down()


@pytest.fixture(scope="session")
def chaos_engine(request: pytest.FixtureRequest, chaos_cluster: Cluster) -> Engine:
    options = request.config.stash[OPTIONS_KEY]
    return Engine(chaos_cluster, options.report_dir, seed=options.seed, run_label=chaos_cluster.label,
                  app=options.app, load_workers=options.load_workers)


@pytest.fixture
def scenario_result(request: pytest.FixtureRequest) -> RunResult:
    """Run the test's scenario (marker ``scenario``) and return its result."""
    marker = request.node.get_closest_marker("scenario")
    if marker is None or not marker.args or not isinstance(marker.args[0], Scenario):
        raise pytest.UsageError(f"{request.node.nodeid} needs @pytest.mark.scenario(SCENARIO)")
    scenario: Scenario = marker.args[0]
    chaos_engine: Engine = request.getfixturevalue("chaos_engine")
    options = request.config.stash[OPTIONS_KEY]
    if options.load_rate is not None:
        scenario = replace(scenario, load=replace(scenario.load, rate=options.load_rate))
    result = _run(request, chaos_engine, scenario)
    if result.status == "inconclusive" and result.cluster_healthy:
        # The saturated host, not Ray, may have failed it: one more run judges it.
        first = result
        result = _run(request, chaos_engine, scenario)
        if result.status == "inconclusive" and result.cluster_healthy:
            pytest.fail(f"{scenario.name}: inconclusive twice ({first.run_dir.name}, {result.run_dir.name}): "
                        f"{doubt_line(result.evaluation.metrics['testbed'])}", pytrace=False)
    if not result.cluster_healthy:
        pytest.fail(f"{scenario.name}: {result.error}", pytrace=False)
    known = result.known_in_play()
    if known:
        # Evaluated at the call, since no xfail marker was there at setup.
        why = "; ".join(f"{name}: {text}" for name, text in sorted(known.items()))
        request.node.add_marker(pytest.mark.xfail(strict=True, raises=PromiseBroken,
                                                  reason=f"known deviation of Ray {result.ray_version}: {why}"))
    elif result.intermittent_seen():
        # A deviation that reproduces only sometimes: an xfail where it did (never strict: where it
        # did not, the test passes).  Anything else broken raises SLOViolation, which this does not catch.
        seen = result.intermittent_in_play()
        why = "; ".join(f"{name}: {seen[name]}" for name in sorted(result.intermittent_seen()))
        request.node.add_marker(pytest.mark.xfail(
            raises=PromiseBroken, reason=f"known Ray deviation reproduced (intermittent): {why}"))
    return result


def _run(request: pytest.FixtureRequest, engine: Engine, scenario: Scenario) -> RunResult:
    """One run of ``scenario``, recorded for the summary; a skip, a lost cluster or a usage
    error ends the test the way it should."""
    try:
        result = engine.run(scenario)
    except ScenarioSkipped as err:
        pytest.skip(err.one_line())
    except ClusterLost as err:
        pytest.exit(f"serve-chaos: {scenario.name} interrupted: {err.one_line()}",
                    returncode=pytest.ExitCode.INTERRUPTED)
    except ServeChaosError as err:
        pytest.fail(f"{scenario.name}: {err.one_line()}", pytrace=False)
    request.config.stash[RESULTS_KEY].append(result)
    return result


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The summary line, the shared settings, the verdict table and what explains each run
    that is not kept -- in the words every report uses (a known deviation is never "fail")."""
    from serve_chaos.harness.report.text import explanation_lines, plain_table
    from serve_chaos.harness.report.view import view
    from serve_chaos.harness.report.verdicts import SHARED_SETTINGS_LABEL, settings_text

    results: list[RunResult] = config.stash.get(RESULTS_KEY, [])
    if not results:
        return
    tr = terminalreporter
    report = view([res.verdict for res in results])
    tr.section("serve-chaos verdicts")
    tr.write_line(report.summary.line(), bold=True)
    if report.settings.shared:
        tr.write_line(f"{SHARED_SETTINGS_LABEL}: {settings_text(report.settings.shared)}")
    for line in plain_table(report):
        tr.write_line(line)
    for line in explanation_lines(report):
        tr.write_line(f"  {line}")
    tr.write_line(f"artifacts: {Path(config.getoption('--report-dir')).resolve()}/<run-id>/ (verdict.json, requests.jsonl, probes.jsonl)")


# ---------------------------------------------------------------------- experiments in a user's repository
EXPERIMENT_GLOB = "chaos_*.y*ml"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """``chaos_*.yaml`` files are experiments: one test each, judged like a catalogue scenario."""
    if file_path.match(EXPERIMENT_GLOB) and file_path.suffix in (".yaml", ".yml"):
        return ExperimentFile.from_parent(parent, path=file_path)
    return None


def _judge_experiment(scenario_result: RunResult) -> None:
    try:
        scenario_result.assert_promises()
    except PromiseBroken as err:
        # Only deviations the file accepts raise it (known_broken is already a strict xfail).
        pytest.xfail(f"a deviation the experiment accepts reproduced: {err}")


class ExperimentFile(pytest.File):
    """An experiment file: validated at collection (a mistake is one line, as a collection error)."""

    def collect(self) -> Iterator[pytest.Item]:
        from serve_chaos.harness.experiment import load_experiment

        try:
            scenario = load_experiment(self.path)
        except ConfigError as err:
            raise self.CollectError(err.one_line()) from None
        item = pytest.Function.from_parent(self, name=scenario.name, callobj=_judge_experiment)
        item.add_marker(pytest.mark.scenario(scenario))
        yield item


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> Any:
    """``chaos(experiment)`` runs an experiment -- a file path, the data of one (a dict, as the file
    holds it) or a ``Scenario`` -- on the session's cluster and returns its ``RunResult``
    (``result.assert_promises()`` fails the test with one line per broken promise)."""
    from serve_chaos.harness.experiment.files import scenario_from, validate
    from serve_chaos.harness.experiment import load_experiment

    engine: Engine = request.getfixturevalue("chaos_engine")

    def run(experiment: Any) -> RunResult:
        if isinstance(experiment, (str, Path)):
            scenario = load_experiment(experiment)
        elif isinstance(experiment, dict):
            validate(experiment, f"{request.node.name}'s experiment")
            scenario = scenario_from(experiment, f"{request.node.name}'s experiment", Path(str(request.path)).parent)
        else:
            scenario = experiment
        try:
            result = engine.run(scenario)
        except ScenarioSkipped as err:
            pytest.skip(err.one_line())
        except ServeChaosError as err:
            pytest.fail(f"{scenario.name}: {err.one_line()}", pytrace=False)
        request.config.stash[RESULTS_KEY].append(result)
        return result

    return run
