"""The scenario catalogue: every ``Scenario`` object defined in ``scenarios/test_*.py``."""

from __future__ import annotations

import importlib
import pkgutil

from serve_chaos.harness.scenario import Scenario
from serve_chaos.runtime.errors import ConfigError

#: Run order (``all`` and ``pytest scenarios/``): scenarios sharing the app config
#: and GCS FT setting run back to back, so the cluster is redeployed or restarted
#: as rarely as possible; the whole-cluster restarts (without GCS FT, on RocksDB, with HAProxy) come last.
ORDER = (
    # SleepyPid, 2 replicas per node, Serve's default health check
    "replica_failure",
    "proxy_failure",
    "controller_restart",
    "controller_failure",
    "worker_pod_failure",
    "pod_delete_long_requests",
    "inplace_update",
    "scale_down",
    "replica_slow",
    "cpu_starvation",
    "packet_loss_20",
    "packet_loss_50",
    "network_latency",
    "memory_pressure",
    "rolling_update",
    "controller_restart_during_rollout",
    "query_of_death",
    "crash_loop",
    # ... with a 2 s constructor and an autoscaling_config
    "autoscaling_step",
    "autoscaling_redeploy",
    "autoscaling_bursts",
    # ... with a 2 s constructor (a bad rollout waits for 18 failed starts)
    "bad_rollout_constructor",
    "bad_rollout_health",
    "bad_rollout_reconfigure",
    # ... with a fast health check
    "health_check_raise_fast",
    "health_check_flap",
    "health_check_reject",
    "health_fail_during_inplace",
    "health_check_hang_fast",
    "replica_hang",
    # ... with Serve's default health check again
    "health_check_raise_default",
    "network_partition",
    "gcs_crash",
    "gcs_store_lost",
    "head_failure_gcs_ft",
    # the composed example
    "downstream_replica_failure",
    "downstream_all_replicas_kill",
    "downstream_replica_hang",
    "rolling_update_composed",
    "node_drain_composed",
    # the chained example
    "chained_embed_failure",
    "chained_score_failure",
    # a new Ray cluster behind the Serve Service (kind; skipped locally)
    "rayservice_upgrade",
    # SleepyPid with room for a drain, then soft and strict spreading
    "node_drain",
    "node_loss_during_rollout",
    "replica_kill_during_drain",
    "worker_node_failure",
    "strict_spreading",
    "head_failure_no_gcs_ft",
    # GCS FT on RocksDB, then Serve's HAProxy ingress: each a restarted cluster, last so that no
    # scenario after them needs a restart back
    "head_failure_gcs_rocksdb",
    "gcs_crash_rocksdb",
    "ingress_crash",
    "head_failure_haproxy",
)


def load_scenarios() -> dict[str, Scenario]:
    from serve_chaos import scenarios
    found: dict[str, Scenario] = {}
    for info in pkgutil.iter_modules(scenarios.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"serve_chaos.scenarios.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Scenario):
                found[value.name] = value
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def select(names: list[str]) -> list[Scenario]:
    """Scenarios by name, or experiment files (``*.yaml``); ``all`` means every one.  Unknown names:
    one-line ConfigError."""
    catalogue = load_scenarios()
    if not names or names == ["all"]:
        return list(catalogue.values())
    chosen = []
    for name in names:
        if name.endswith((".yaml", ".yml")):
            from serve_chaos.harness.experiment import load_experiment

            chosen.append(load_experiment(name))
            continue
        if name not in catalogue:
            raise ConfigError(f"unknown scenario {name!r}",
                              hint=f"choose from: all, {', '.join(catalogue)} (see `serve-chaos list`)")
        chosen.append(catalogue[name])
    return chosen
