"""Against a real kube-apiserver (``tests/real_apiserver.py``): what the fake API server cannot settle.

Each test names the defect it guards against; each fails on the code before its fix."""

from __future__ import annotations

import pytest

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.kuberay.api import KubeApi, load_configuration
from serve_chaos.runtime.kuberay.lease import KubeLease
from serve_chaos.runtime.kuberay.manifests import KubeRayConfig, namespace
from tests import real_apiserver


@pytest.fixture(scope="module")
def apiserver():
    server = real_apiserver.start()
    yield server
    server.close()


@pytest.fixture
def api(apiserver) -> KubeApi:
    configuration, _ = load_configuration(apiserver.kubeconfig, None, (real_apiserver.context_of(apiserver.kubeconfig),))
    kube = KubeApi.from_configuration(configuration)
    config = KubeRayConfig()
    if kube.read("Namespace", config.namespace, "") is None:
        kube.apply(namespace(config))
    return kube


def test_two_harnesses_cannot_both_take_the_lock(api):
    # Issue 23 (10.6): the lock was a forced server-side apply with no resourceVersion precondition,
    # so a harness that read "free" and wrote after another had taken the lock took it as well.
    config = KubeRayConfig()
    first = KubeLease(api, config, host="host-a")
    second = KubeLease(api, config, host="host-b")
    raced = []

    def losing_the_race(read):
        def reader():
            answer = read()
            if not raced:
                raced.append(second.take("the other run"))  # between the first's read and its write
            return answer

        return reader

    # Whichever way the first harness reads the record before it writes, the second takes the lock then.
    first.read = losing_the_race(first.read)
    if hasattr(first, "_read_versioned"):
        first._read_versioned = losing_the_race(first._read_versioned)
    try:
        with pytest.raises(ServeChaosError, match="in use by PID .* on host-b"):
            first.take("this run")
        assert second.holder() is not None and second.holder().host == "host-b"
    finally:
        second.release()
        first._stop.set()
