"""Gray failures: a pod or replica that stays alive but gets worse (issue: "Gray failures").

CPU starvation, memory pressure, packet loss, latency and a slowed replica, each on a pod
hosting (aimed) replicas, for a set time, then lifted; recovery is judged from the lift.  No
victim is expected to go: what Serve and Ray do about it -- replace a replica, declare a node
dead, route around it -- is measured and reported (``replicas_replaced``, ``ray_node_dead_s``,
latency before and during per endpoint).  Each fault verifies from the target's own account
that it took effect (CFS throttling, the pod's memory peak, packets dropped, stop cycles).

Where Ray or Serve documents a promise it is judged (cited per scenario); where none exists the
scenario states the bound a user would call acceptable and says so.
"""

import pytest

from serve_chaos.harness.bounds import (PROBE_SLACK_S, REPLACE_SLACK_S, dead_proxy_replaced_s, front_door_lag_s,
                            lagging_front_door_bounds, replica_start_s)
from serve_chaos.harness.checks import SLO, front_door_drop, ray_node_death, replica_spread
from serve_chaos.harness.checks.gray import (latency_shift, memory_kills, ray_node_stayed_alive, replicas_on_pod_fate,
                                 slow_replica_share, traffic_shifted_away)
from serve_chaos.harness.faults import CpuStarvation, MemoryPressure, NetworkDelay, PacketLoss, ReplicaSlow
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.app.serve_config import PLANNED_APP

GRAY_LOAD = LoadSpec(rate=15.0, endpoints=("front", "role:head", "pods:worker"))
#: How long a gray fault lasts (s): longer than the front door's lag with a period to spare, so
#: what the readiness check does is seen; Ray's silent-node detection (65 s) is not waited for.
GRAY_S = 20.0
GRAY_METRICS = (latency_shift, replicas_on_pod_fate, ray_node_death, replica_spread)


def after_lift_bounds(settings: dict) -> dict:
    """After the lift (s): a replica Serve replaced meanwhile has started (the app's own start)
    and every proxy routes again."""
    return {"max_recovery_s": replica_start_s(settings) + REPLACE_SLACK_S}


def dead_proxy_bounds(settings: dict) -> dict:
    """A pod whose proxy died costs the front door at most its lag (s); recovery after the lift
    waits for a replaced replica and for a proxy killed up to the lift to be replaced -- whose
    health checks may time out rather than fail at once (a node Ray's memory monitor is pressing:
    measured 66 s from the proxy's kill to its replacement, and the pod's replacement replicas
    started only then: recovery 61 s after the lift, where the fast-failing bound said 46 s).  So
    the replicas' start follows the proxy's replacement."""
    proxy_then_replicas = dead_proxy_replaced_s(settings, checks_time_out=True) + replica_start_s(settings)
    recovery = max(after_lift_bounds(settings)["max_recovery_s"], proxy_then_replicas)
    return {**lagging_front_door_bounds(settings), "max_recovery_s": recovery}


def unresponsive_pod_bounds(settings: dict) -> dict:
    """A pod whose proxy stops answering in time fails its readiness check: the front door
    (a Service) drops it within its lag, failing requests only until then (s).  A starved proxy
    still answers now and then, slowly: one check may pass in time, so one readiness period more."""
    lag = front_door_lag_s(settings) + float(settings.get("readiness_period_s", 5.0))
    return {**after_lift_bounds(settings), "max_failure_span_s": lag, "max_longest_degraded_s": lag + 1.0,
            "max_front_door_drop_s": lag + PROBE_SLACK_S}


CPU_STARVATION = Scenario(
    name="cpu_starvation",
    title="hold one worker pod to 5 % of a core for 20 s under load",
    promise="No documented promise for a starved pod.  Kubernetes' readiness promise: its proxy stops passing "
            "/-/healthz in time, so the front door drops it within its lag and fails requests only until then; "
            "the other pods keep serving (>= 99.9 %, the bound a user would accept).  Reported: whether Serve's "
            "replica health checks (10 s period, 30 s timeout) or Ray's node health checks (10 s timeout) "
            "reacted, which replicas were replaced, latency through the starved pod.",
    fault=CpuStarvation(cpu_share=0.05, duration_s=GRAY_S),
    load=GRAY_LOAD,
    slo=SLO(other_pods_min_availability_during_fault=0.999, **unresponsive_pod_bounds({})),
    bounds=unresponsive_pod_bounds,
    expected_churn={"replica": "any", "proxy": "any", "controller": "none", "pod": "none"},
    extra_metrics=(*GRAY_METRICS, front_door_drop),
    deadline_s=120.0,
)

MEMORY_PRESSURE = Scenario(
    name="memory_pressure",
    title="grow a memory hog in one worker pod up to its memory limit under load",
    promise="Ray's memory monitor (docs \"Out-Of-Memory Prevention\": RAY_memory_usage_threshold 0.95) kills "
            "workers before the kernel kills the raylet: the node stays alive, Serve replaces the killed "
            "replicas, the other pods keep serving.",
    # 128 MiB/s: from an idle worker's ~620 MiB to Ray's 95 % of 2 GiB in ~11 s, 8 monitor rounds
    # (250 ms) per 256 MiB; the hog is then held until the kernel or the lift ends it.
    fault=MemoryPressure(rate_bytes_s=128 * 2**20, duration_s=25.0),
    load=GRAY_LOAD,
    # What the memory monitor kills on the pod may include its proxy: the front door then
    # fails requests only until its readiness check drops the pod.
    slo=SLO(other_pods_min_availability_during_fault=0.999, **dead_proxy_bounds({})),
    bounds=dead_proxy_bounds,
    expected_churn={"replica": "any", "proxy": "any", "controller": "none", "pod": "none"},
    extra_checks=(ray_node_stayed_alive,),
    extra_metrics=(*GRAY_METRICS, memory_kills),
    deadline_s=150.0,
)


def loss_scenario(percent: float) -> Scenario:
    return Scenario(
        name=f"packet_loss_{percent:g}",
        title=f"drop {percent:g} % of one worker pod's packets, in and out, for 20 s under load",
        promise="No documented promise for partial loss: the other pods keep serving (>= 99.9 %); reported: "
                "whether Ray declares the node dead (5 missed checks of 10 s), the front door's availability "
                "and latency through the lossy pod.",
        fault=PacketLoss(percent=percent, duration_s=GRAY_S),
        load=GRAY_LOAD,
        slo=SLO(other_pods_min_availability_during_fault=0.999, **after_lift_bounds({})),
        bounds=after_lift_bounds,
        expected_churn={"replica": "any", "proxy": "any", "controller": "none", "pod": "none"},
        extra_metrics=GRAY_METRICS,
        deadline_s=150.0,
    )


PACKET_LOSS_20 = loss_scenario(20.0)
PACKET_LOSS_50 = loss_scenario(50.0)

NETWORK_LATENCY = Scenario(
    name="network_latency",
    title="delay one worker pod's packets by 200 ms +- 50 ms for 20 s under load",
    promise="No documented promise: the other pods keep serving (>= 99.9 %) and the front door's p99 stays within "
            "its 5 s request timeout; reported: latency through the slow pod and whether anything was replaced.",
    fault=NetworkDelay(delay_ms=200.0, jitter_ms=50.0, duration_s=GRAY_S),
    load=GRAY_LOAD,
    slo=SLO(other_pods_min_availability_during_fault=0.999, max_p99_ms=5000.0, **after_lift_bounds({})),
    bounds=after_lift_bounds,
    expected_churn={"replica": "any", "proxy": "any", "controller": "none", "pod": "none"},
    extra_metrics=GRAY_METRICS,
    deadline_s=120.0,
)

#: The slow replica is stopped 0.9 s of every 1 s (10x less time to run).  At 90 ms of every 100 ms
#: its requests are only a few tens of ms late and its in-flight count barely rises, so the
#: router (which compares in-flight counts, not latency) has nothing to steer by: measured here,
#: 15.6 % of 1222 requests against a fair 16.7 % (z = -1.0).  Stalls of 0.9 s show in the count.
SLOW_STOP_MS, SLOW_PERIOD_MS = 900.0, 1000.0
#: The longest SleepyPid's planned traffic asks a replica to work (ms).
WORK_MS = 250.0

REPLICA_SLOW = Scenario(
    name="replica_slow",
    title="slow one replica ~10x (stopped 0.9 s of every 1 s) for 20 s under load",
    promise="Serve's router prefers replicas with fewer requests in flight (\"power of two choices\"): traffic "
            "shifts away from the slow replica (significantly below its fair share), no request fails, and the "
            "front door's p99 stays within two stalls plus a request's work (2.3 s): only requests routed to it "
            "before the router noticed wait.",
    fault=ReplicaSlow(stopped_ms=SLOW_STOP_MS, period_ms=SLOW_PERIOD_MS, duration_s=GRAY_S),
    app=PLANNED_APP,
    load=LoadSpec(rate=40.0, endpoints=("front",)),
    slo=SLO(min_availability_during_fault=1.0, max_p99_ms=2 * SLOW_STOP_MS + WORK_MS + 250.0,
            max_recovery_s=REPLACE_SLACK_S),
    expected_churn={"replica": "none", "proxy": "none", "controller": "none", "pod": "none"},
    extra_checks=(traffic_shifted_away,),
    extra_metrics=(latency_shift, slow_replica_share),
    deadline_s=90.0,
)


@pytest.mark.scenario(CPU_STARVATION)
def test_cpu_starvation(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(MEMORY_PRESSURE)
def test_memory_pressure(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(PACKET_LOSS_20)
def test_packet_loss_20(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.nightly_only  # packet_loss_20 (the same fault at 20 %) runs in CI
@pytest.mark.scenario(PACKET_LOSS_50)
def test_packet_loss_50(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(NETWORK_LATENCY)
def test_network_latency(scenario_result):
    scenario_result.assert_promises()


@pytest.mark.scenario(REPLICA_SLOW)
def test_replica_slow(scenario_result):
    scenario_result.assert_promises()
