"""Serve's own HAProxy ingress (issue "Failures during change", item 10): the guide's proxy and head
scenarios with ``RAY_SERVE_ENABLE_HA_PROXY=1`` on every Ray pod.

With it (Ray 2.60 ``serve/_private/haproxy.py``) each node's proxy is an ``HAProxyManager`` actor
that runs HAProxy as a child process on the Serve port and sends requests straight to the ingress
replicas' own HTTP ports (direct ingress); the head also keeps a Python ProxyActor as HAProxy's
fallback.  The manager's ``check_health`` is whether its HAProxy still runs, so Serve's proxy health
checks (10 s period, 3 failures) replace a manager whose HAProxy died.

- ``ingress_crash``: HAProxy SIGKILLed on a worker pod.  Promise (read in the source, no doc yet):
  the other pods keep serving (100 %), Serve replaces that pod's manager (a new HAProxy) within its
  proxy health checks and a start, the replicas stay.
- ``head_failure_haproxy``: the head pod deleted with GCS FT on, as ``head_failure_gcs_ft``: the
  workers' HAProxies keep sending to their replicas while the head is away.
"""

from dataclasses import replace

import pytest

from serve_chaos.harness.checks import SLO
from serve_chaos.harness.faults import IngressCrash
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from .test_head_failure_gcs_ft import HEAD_FAILURE_GCS_FT

INGRESS_CRASH = Scenario(
    name="ingress_crash",
    title="SIGKILL Serve's HAProxy on a worker pod (HAProxy ingress) under load",
    promise="Other pods keep serving; Serve replaces the pod's HAProxyManager (its health check fails without "
            "HAProxy) and the pod serves again; replica PIDs do not change.",
    fault=IngressCrash(),
    ingress="haproxy",
    load=LoadSpec(rate=15.0, endpoints=("front", "role:head", "pods:worker")),
    slo=SLO(
        other_pods_min_availability_during_fault=1.0,
        # Serve's proxy health checks: 10 s period x 3 failures, then a new manager starts its HAProxy.
        max_recovery_s=60.0,
    ),
    expected_churn={"proxy": "victims", "replica": "none", "controller": "none", "pod": "none"},
    deadline_s=120.0,
)

HEAD_FAILURE_HAPROXY: Scenario = replace(
    HEAD_FAILURE_GCS_FT,
    name="head_failure_haproxy",
    title="delete the head pod with GCS FT on, Serve's HAProxy ingress, under load",
    promise="Workers keep serving through their HAProxies without restarting; worker replica PIDs do not change; "
            "the head returns on the same Redis and the cluster heals.",
    ingress="haproxy",
    # Not the Python proxy's deviation (the restarted head's proxy ready before it routes): the front
    # door kept 100 % here, so that floor holds again.  The rest as with Serve's proxies.
    known_intermittent={k: v for k, v in HEAD_FAILURE_GCS_FT.known_intermittent.items()
                        if k not in ("pods.serve_when_ready", "front.availability_during_fault")},
)


@pytest.mark.scenario(INGRESS_CRASH)
def test_ingress_crash(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(HEAD_FAILURE_HAPROXY)
def test_head_failure_haproxy(scenario_result):
    scenario_result.assert_promises()
