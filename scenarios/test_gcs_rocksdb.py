"""GCS fault tolerance on RocksDB (issue "Failures during change", item 10): the guide's head
scenarios with the GCS tables in RocksDB on the head's own persistent volume instead of Redis.

KubeRay v1.7.0 offers it as ``gcsFaultToleranceOptions.backend: rocksdb`` (alpha, behind the
``GCSFaultToleranceEmbeddedStorage`` feature gate): ``configureEmbeddedFT`` in
``controllers/ray/common/pod.go`` gives the head ``RAY_gcs_storage=rocksdb`` and
``RAY_gcs_storage_path`` on a PVC that outlives the head pod.  The local target keeps that
directory across head incarnations (``runtime/local/podspecs.py``); no Redis address is given.

Promise: as with Redis -- the workers keep serving while the head is away, their replicas keep
their PIDs (the restarted GCS reloaded the cluster's tables: without them it would be a new cluster
and KubeRay would restart every worker), the cluster heals.
"""

from dataclasses import replace

import pytest

from serve_chaos.harness.scenario import Scenario
from .test_gcs_crash import GCS_CRASH
from .test_head_failure_gcs_ft import HEAD_FAILURE_GCS_FT

HEAD_FAILURE_GCS_ROCKSDB: Scenario = replace(
    HEAD_FAILURE_GCS_FT,
    name="head_failure_gcs_rocksdb",
    title="delete the head pod with GCS FT on RocksDB (the head's own volume, no Redis) under load",
    promise="Workers keep serving without restarting; worker replica PIDs do not change; the head returns on "
            "the same RocksDB store and the cluster heals.",
    gcs_backend="rocksdb",
)

GCS_CRASH_ROCKSDB: Scenario = replace(
    GCS_CRASH,
    name="gcs_crash_rocksdb",
    title="SIGKILL gcs_server in the head pod, GCS FT on RocksDB, under load, then redeploy",
    gcs_backend="rocksdb",
)


@pytest.mark.scenario(HEAD_FAILURE_GCS_ROCKSDB)
def test_head_failure_gcs_rocksdb(scenario_result):
    scenario_result.assert_promises()


# Nightly: 4 runs of 5 kept (steady 22.2-44.1 s after the kill), but in the fifth (a fresh-clone CI run) one
# request through a worker's own proxy was answered 500 about 1 s after the kill though its replica had served
# it (Serve's access log); the proxy log was gone with the cluster, so the cause is not known (no upstream issue
# found) and the promise stays strict.  Request records now keep a 5xx answer's text (Serve's proxy puts the
# exception there).  head_failure_gcs_rocksdb (in CI) restarts the head on RocksDB too.
@pytest.mark.nightly_only
@pytest.mark.scenario(GCS_CRASH_ROCKSDB)
def test_gcs_crash_rocksdb(scenario_result):
    scenario_result.assert_promises()
