"""Soak mode: random faults from the catalogue at random intervals, for a set duration.

Each fault keeps the SLOs, churn expectations and known deviations of the
scenario it comes from, so a soak run is judged fault by fault with the same
checks as the single-fault scenarios.  The load speaks of roles, as scenarios
do: the front door, the current head, and a slot per worker pod that follows
its pod when it is recreated (``serve_chaos.harness.load.slots``).  Each fault is judged from the
previous one's recovery, and what the cluster still holds of it (a lost node)
is healed before the next (``serve_chaos.harness.engine``), so what one fault left behind is
never charged to the next.
"""

from __future__ import annotations

import math
import random

from typing import Any

from serve_chaos.harness.bounds import POD_JOIN_S, node_loss_bounds
from serve_chaos.harness.catalog import load_scenarios
from serve_chaos.harness.faults import NodeLoss
from serve_chaos.harness.load.spec import LoadSpec
from serve_chaos.harness.scenario import Bounds, Followup, Scenario
from serve_chaos.runtime.errors import ConfigError

#: Faults a soak may draw.  The controller kill is left out: the proxies it
#: leaves subscribed to a dead controller (ray-project/ray#63784) would poison
#: every later fault until they are restarted at the end.
SOAK_FAULTS = (
    "replica_failure",
    "proxy_failure",
    "worker_pod_failure",
    "health_check_raise_default",
    "network_partition",
    "gcs_store_lost",
    "worker_node_failure",
)
#: Scenarios that may never join a soak, and why.
EXCLUDED = {
    "controller_failure": "it leaves the proxies subscribed to a dead controller (ray-project/ray#63784), "
                          "which would poison every later fault until they are restarted",
    "head_failure_no_gcs_ft": "it switches GCS fault tolerance off and restarts the whole cluster",
    **{name: "it needs a cluster of its own (GCS FT on RocksDB, or Serve's HAProxy ingress): Ray restarts for it"
       for name in ("gcs_crash_rocksdb", "head_failure_gcs_rocksdb", "ingress_crash", "head_failure_haproxy")},
    "strict_spreading": "its promise needs max_replicas_per_node=1 and 3 replicas; the soak's app has 2 per node",
}
MAX_FAULTS = 200
#: Faults a soak of an app without the health toggle leaves out.
NEEDS_TOGGLE = ("health_check_raise_default",)


def soak_faults(health_toggle: bool) -> tuple[str, ...]:
    """The default faults of a soak of an app (with or without the documented health toggle)."""
    return SOAK_FAULTS if health_toggle else tuple(n for n in SOAK_FAULTS if n not in NEEDS_TOGGLE)


def soak_bounds(scenario: Scenario) -> Bounds | None:
    """A scenario's bounds as they hold in a soak, whose app is one for every fault.

    A node loss: the soak's app may cap replicas per node (the bundled one runs 2 per node),
    so the lost node's replicas may have nowhere to go but the replacement pod -- its recovery
    bound then includes that pod's return (``strict_spreading``'s), whatever the scenario's own
    app (``worker_node_failure`` runs Serve's soft spreading).  The looser of the two holds.
    """
    fault = scenario.fault
    if not isinstance(fault, NodeLoss) or scenario.bounds is None:
        return scenario.bounds
    own = scenario.bounds

    def bounds(settings: dict[str, Any]) -> dict[str, float]:
        placed = node_loss_bounds(settings, fault.replacement_delay_s, needs_replacement_pod=True)
        return {k: max(v, placed.get(k, v)) for k, v in own(settings).items()}

    return bounds


def soak_deadline_s(scenario: Scenario) -> float:
    """How long (s) a soak waits for the scenario's fault to recover: a node loss may wait for
    the replacement pod to join as well (see ``soak_bounds``)."""
    return scenario.deadline_s + (POD_JOIN_S if isinstance(scenario.fault, NodeLoss) else 0.0)


def build_soak(duration_s: float, seed: int, min_interval_s: float = 20.0, max_interval_s: float = 60.0,
               names: tuple[str, ...] = SOAK_FAULTS, rate: float = 15.0) -> Scenario:
    """A scenario whose phases are faults drawn with ``seed``; time between them uniform in the bounds (s)."""
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ConfigError(f"soak duration must be a finite number > 0 seconds, got {duration_s}")
    if not (math.isfinite(min_interval_s) and math.isfinite(max_interval_s)) or not 0 <= min_interval_s <= max_interval_s:
        raise ConfigError(f"soak intervals must satisfy 0 <= min ({min_interval_s}) <= max ({max_interval_s})")
    catalogue = load_scenarios()
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise ConfigError(f"unknown soak fault(s): {', '.join(unknown)}", hint=f"choose from: {', '.join(SOAK_FAULTS)}")
    excluded = [n for n in names if n in EXCLUDED]
    if excluded:
        raise ConfigError(f"{', '.join(excluded)} cannot join a soak: {EXCLUDED[excluded[0]]}",
                          hint=f"choose from: {', '.join(SOAK_FAULTS)}")
    # Every fault keeps its scenario's SLOs, and those bounds follow from the app's
    # settings: a scenario that reshapes the app cannot join a soak of one app.
    clash = [n for n in names if catalogue[n].app_options or catalogue[n].on_user_app == "skip"
             or (catalogue[n].app is not None and catalogue[n].app.bundled != "sleepy_pid")]
    if clash:
        raise ConfigError(f"soak fault(s) {', '.join(clash)} need another app or other deployment settings than "
                          "the soak's", hint=f"choose from: {', '.join(SOAK_FAULTS)}")
    rng = random.Random(f"soak:{seed}")
    count = min(MAX_FAULTS, max(1, math.ceil(duration_s / max(min_interval_s, 1.0)) + 1))
    picks = [catalogue[rng.choice(names)] for _ in range(count)]
    first, rest = picks[0], picks[1:]
    known = dict(first.known_broken)
    intermittent = dict(first.known_intermittent)
    followups = []
    for i, sc in enumerate(rest, start=2):
        name = f"{i:02d}_{sc.name}"
        followups.append(Followup(
            name=name, fault=sc.fault, slo=sc.slo, expected_churn=sc.expected_churn,
            extra_checks=sc.extra_checks, extra_metrics=sc.extra_metrics,
            min_observe_s=sc.min_observe_s, deadline_s=soak_deadline_s(sc), bounds=soak_bounds(sc),
            delay_s=round(rng.uniform(min_interval_s, max_interval_s), 1),
        ))
        known.update({f"{name}.{check}": why for check, why in sc.known_broken.items()})
        intermittent.update({f"{name}.{check}": why for check, why in sc.known_intermittent.items()})
    return Scenario(
        name="soak",
        title=f"soak: random faults every {min_interval_s:g}-{max_interval_s:g} s for {duration_s:g} s (seed {seed})",
        promise="Every fault keeps the promise of the scenario it comes from.",
        fault=first.fault,
        slo=first.slo,
        expected_churn=first.expected_churn,
        extra_checks=first.extra_checks,
        extra_metrics=first.extra_metrics,
        needs=tuple(dict.fromkeys(n for sc in picks for n in sc.needs)),
        extra_requires=tuple(dict.fromkeys(c for sc in picks for c in sc.extra_requires)),
        bounds=soak_bounds(first),
        load=LoadSpec(rate=rate, endpoints=("front", "role:head", "pods:worker")),
        followups=tuple(followups),
        known_broken=known,
        known_intermittent=intermittent,
        min_observe_s=first.min_observe_s,
        deadline_s=soak_deadline_s(first),
        stop_after_s=duration_s,
    )
