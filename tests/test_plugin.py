"""The pytest plugin's options: bad values stop the run with one line."""

import pytest

from tests.kube_server import dead_kubeconfig

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("args, words", [
    (["--target", "mars"], "--target 'mars' is not a target"),
    (["--seed", "abc"], "--seed 'abc' is not an integer"),
    (["--load-rate", "0"], "--load-rate 0.0 must be in (0, 2000]"),
    (["--cluster-config", "/nope.json"], "--cluster-config '/nope.json' is not a file"),
])
def test_bad_options_are_usage_errors(pytester, args, words):
    pytester.makeconftest('# the plugin loads through its pytest11 entry point')
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(words in line for line in result.errlines), result.errlines


def test_scenario_marker_is_required(pytester):
    pytester.makeconftest('# the plugin loads through its pytest11 entry point')
    pytester.makepyfile("def test_x(scenario_result):\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*needs @pytest.mark.scenario(SCENARIO)*"])


def test_a_failed_bring_up_is_reported_once_not_per_test(pytester, tmp_path, monkeypatch):
    """A kind context whose API server does not answer: one line for the session, not an ERROR per test."""
    for name, value in dead_kubeconfig(tmp_path).items():
        monkeypatch.setenv(name, value)
    pytester.makeconftest('# the plugin loads through its pytest11 entry point')
    pytester.makepyfile("\n".join(f"def test_{i}(chaos_cluster):\n    pass\n" for i in range(5)))
    result = pytester.runpytest_subprocess("--target", "kind")
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR, text
    assert text.count("does not answer") == 1, text
    assert "Traceback" not in text
