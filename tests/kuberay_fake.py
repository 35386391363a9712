"""A model of the KubeRay v1.7.0 operator and of the Ray dashboard it talks to (test doubles only).

It acts on the fake API server's store (``tests/fake_apiserver.py``) next to Kubernetes'
own controllers (``tests/fake_kubernetes.py``), one ``reconcile()`` at a time.  Each
behaviour names the file it imitates, under ``ray-operator/controllers/ray/`` at tag v1.7.0
of ray-project/kuberay unless said otherwise.

The RayService controller (``rayservice_controller.go``):
- (g) adds the finalizer ``ray.io/rayservice-finalizer`` first (Reconcile); a deleted
  RayService deletes its RayClusters at once and drops the finalizer when none is left
  (cleanUpRayClusterInstance with ``rayServiceIsDeleted``).
- names clusters ``<rayservice>-<5 chars>`` (``utils/util.go`` GenerateRayClusterName) and
  prepares a pending one when none exists or the ``rayClusterConfig`` hash changed
  (shouldPrepareNewCluster, set in calculateStatus, created by reconcileRayCluster the next
  reconcile); (a) the hash leaves out every worker group's Replicas, MinReplicas,
  MaxReplicas and WorkersToDelete, the templates' tolerations and scheduling gates, the
  upgrade strategy and ``suspend`` (``utils/util.go`` GenerateHashWithoutReplicasAndWorkersToDelete;
  rayClusterSpecForHashing), so a new replica count alone changes nothing (shouldUpdateCluster).
- copies the RayService's labels and annotations onto the RayCluster
  (constructRayClusterForRayService).
- (f) submits ``serveConfigV2`` (a PUT to the dashboard) when nothing is cached for that
  cluster, when the dashboard reports no application (a head restarted without GCS FT), or
  when the config differs from the cached one (checkIfNeedSubmitServeApplications); only
  once the head pod is Running and Ready (reconcileServe).  A PUT the dashboard refuses is a
  Warning event ``FailedToUpdateServeApplications`` on the RayService carrying the
  dashboard's answer (updateServeDeployment, ``utils/dashboardclient/dashboard_httpclient.go``
  UpdateDeployments) and ends the reconcile before the status is written.
- sets the head pod's ``ray.io/serve`` from its proxy's health (updateHeadPodServeLabel).
- points the head and Serve Services at the pending cluster once its Serve applications
  are all RUNNING, else at the active one when it is (reconcileServicesToReadyCluster;
  a Service is only rewritten when the cluster changes: reconcileServices), then promotes
  the cluster the Services point to (reconcilePromotionAndServingStatus).
- deletes a cluster that is neither active nor pending ``RayClusterDeletionDelayDuration``
  (60 s, or ``spec.rayClusterDeletionDelaySeconds``) after it first saw it
  (cleanUpRayClusterInstance).
- (c) is Ready while the Serve Service's EndpointSlices hold a ready endpoint
  (calculateNumServeEndpointsFromSlices, calculateConditions); ``UpgradeInProgress`` while
  both clusters exist; ``observedGeneration`` is written by calculateStatus only.
The RayCluster controller (``raycluster_controller.go``):
- (d) with GCS FT -- ``gcsFaultToleranceOptions`` or the legacy annotation
  ``ray.io/ft-enabled: "true"`` (``utils/util.go`` IsGCSFaultToleranceEnabled) -- adds the
  finalizer ``ray.io/gcs-ft-redis-cleanup-finalizer``; a deleted cluster deletes its pods,
  waits for the head to be gone, runs the Redis cleanup Job (a pod built from the head pod,
  ``ray.io/node-type=redis-cleanup``: buildRedisCleanupJob) and drops the finalizer when the
  Job finished, Complete or Failed, or once the deletion is 300 s old (rayClusterReconcile,
  forceRemoveGCSFTFinalizer).
- a RayService whose active cluster has no head pod ends its reconcile before writing the
  status (reconcileServe fails to get the head pod).
- (b) reconcilePods counts every pod of a group, Terminating ones too, so a replacement is
  created only once the old pod is gone from the API; it creates the head when there is
  none; a worker group gets ``replicas`` clamped to [minReplicas, maxReplicas]
  (``utils/util.go`` GetWorkerGroupDesiredReplicas).
- pods are ``<cluster>-head-<5>`` / ``<cluster>-<group>-worker-<5>`` (``utils/util.go``
  PodName), labelled by ``common/pod.go`` labelPod (template labels may not override
  ``ray.io/node-type``, ``ray.io/group``, ``ray.io/cluster``) and BuildPod (``ray.io/serve``:
  "true" on workers, "false" on the head until its proxy is healthy), owned by the RayCluster.
The kubelet restarts a crashed Ray container in place (shouldDeletePod leaves such a pod alone).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import yaml

from tests.fake_apiserver import FakeApiClient, Store, label_selector_matches, selects  # noqa: F401 (re-exported)
from tests.fake_kubernetes import FakeKubernetes, is_ready, rand5

RAYSERVICE_FINALIZER = "ray.io/rayservice-finalizer"
GCS_FT_FINALIZER = "ray.io/gcs-ft-redis-cleanup-finalizer"
#: ``utils/constant.go`` RAYCLUSTER_GCS_FT_DELETION_TIMEOUT_DEFAULT (s).
GCS_FT_DELETION_TIMEOUT_S = 300.0


def job_finished(job: dict[str, Any]) -> bool:
    """``utils/util.go`` IsJobFinished: a Complete or Failed condition that is True."""
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])
HASH_KEY = "ray.io/hash-without-replicas-and-workers-to-delete"
NUM_GROUPS_KEY = "ray.io/num-worker-groups"


def cluster_hash(spec: dict[str, Any]) -> str:
    """``utils/util.go`` GenerateHashWithoutReplicasAndWorkersToDelete over rayClusterSpecForHashing."""
    spec = copy.deepcopy(spec)
    spec.pop("suspend", None)
    spec.pop("upgradeStrategy", None)
    for template in [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec.get("workerGroupSpecs", [])]:
        template.get("spec", {}).pop("tolerations", None)
        template.get("spec", {}).pop("schedulingGates", None)
    for group in spec.get("workerGroupSpecs", []):
        for key in ("replicas", "minReplicas", "maxReplicas"):
            group.pop(key, None)
        group.get("scaleStrategy", {}).pop("workersToDelete", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def gcs_ft(cluster: dict[str, Any]) -> bool:
    annotations = cluster["metadata"].get("annotations") or {}
    return annotations.get("ray.io/ft-enabled", "").lower() == "true" or \
        cluster["spec"].get("gcsFaultToleranceOptions") is not None


@dataclass
class FakeDashboard:
    """The Ray dashboard of one RayCluster as KubeRay and the harness see it: the Serve REST API
    (``PUT``/``GET /api/serve/applications/``) over the applications Serve runs.

    ``reject``: Serve refuses the next PUTs with this 400 body (a config it cannot validate).
    Applications start ``DEPLOYING``; the test says when they run (``run``) or fail (``fail``).
    """

    applications: dict[str, dict[str, Any]] = field(default_factory=dict)
    reject: str | None = None
    #: ``(application, message)``: Serve accepts the next config but cannot deploy that application (once).
    fail_next: tuple[str, str] | None = None
    puts: list[dict[str, Any]] = field(default_factory=list)

    def put(self, config: dict[str, Any]) -> tuple[int, str]:
        self.puts.append(config)
        if self.reject is not None:
            return 400, self.reject
        names = {app.get("name", "default") for app in config.get("applications", [])}
        for name in list(self.applications):
            if name not in names:
                del self.applications[name]
        for app in config.get("applications", []):
            name = app.get("name", "default")
            current = self.applications.get(name)
            if current is None or current["deployed_app_config"] != app:
                self.applications[name] = {"status": "DEPLOYING", "message": "", "deployed_app_config": app,
                                           "route_prefix": app.get("route_prefix"), "deployments": {}}
        if self.fail_next is not None:
            self.fail(*self.fail_next)
            self.fail_next = None
        return 200, ""

    def run(self) -> None:
        for app in self.applications.values():
            if app["status"] == "DEPLOY_FAILED":
                continue
            app["status"] = "RUNNING"
            app["deployments"] = {d["name"]: {"status": "HEALTHY", "replicas": [
                {"state": "RUNNING"} for _ in range(int(d.get("num_replicas", 1)))]}
                for d in app["deployed_app_config"].get("deployments", [])}

    def fail(self, name: str, message: str) -> None:
        self.applications[name].update(status="DEPLOY_FAILED", message=message)

    def details(self) -> dict[str, Any]:
        return {"applications": copy.deepcopy(self.applications), "controller_info": {"actor_id": "c"}}


class FakeKubeRay:
    """KubeRay v1.7.0's RayService and RayCluster controllers on the store, and the dashboards.

    Time is the store's clock; ``store.advance`` moves it.  Pods start Pending; the kubelet
    starts them (``run_pods``); the test says when a head's proxy is healthy
    (``proxy_healthy``) and when Serve runs the applications (``serve_ready``), since no
    Ray runs here.
    """

    DELETION_DELAY_S = 60.0  # rayservice_controller.go RayClusterDeletionDelayDuration

    def __init__(self, store: Store, namespace: str = "serve-chaos", kube: FakeKubernetes | None = None) -> None:
        self.store = store
        self.ns = namespace
        self.kube = kube or FakeKubernetes(store, namespace)
        self.lag = False
        self.delete_at: dict[str, float] = {}
        self.healthy_heads: set[str] = set()
        self.serve_cache: dict[str, str] = {}
        self.dashboards: dict[str, FakeDashboard] = {}
        #: Other controllers of the cluster (Chaos Mesh's), stepped with every reconcile.
        self.others: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ reading
    def rayservice(self) -> dict[str, Any] | None:
        found = self.store.list("RayService", self.ns)
        return found[0] if found else None

    def clusters(self) -> list[dict[str, Any]]:
        return self.store.list("RayCluster", self.ns)

    def pods(self, cluster: str | None = None) -> list[dict[str, Any]]:
        pods = self.store.list("Pod", self.ns)
        if cluster is None:
            return pods
        return [p for p in pods if p["metadata"]["labels"].get("ray.io/cluster") == cluster]

    def head(self, cluster: str) -> dict[str, Any] | None:
        heads = [p for p in self.pods(cluster) if p["metadata"]["labels"].get("ray.io/node-type") == "head"]
        return heads[0] if heads else None

    def dashboard(self, cluster: str | None) -> FakeDashboard:
        return self.dashboards.setdefault(cluster or "", FakeDashboard())

    def serving(self) -> dict[str, Any]:
        """What the dashboard NodePort answers: the dashboard of the head it selects."""
        svc = self.store.get("Service", self.ns, "serve-chaos-dashboard-nodeport")
        selector = (svc or {}).get("spec", {}).get("selector") or {}
        for pod in self.pods():
            if selects(selector, pod["metadata"]["labels"]) and pod["status"].get("phase") == "Running":
                return self.dashboard(pod["metadata"]["labels"]["ray.io/cluster"]).details()
        raise ConnectionError("the dashboard Service has no Running head")

    # ------------------------------------------------------------------ what the test says happened
    def run_pods(self, cluster: str | None = None) -> None:
        """The kubelets started every bound Pending pod (of ``cluster``) and their probes pass."""
        self.kube.schedule()
        self.kube.start(self.pods(cluster))
        self.kube.endpoint_slices()

    def proxy_healthy(self, cluster: str) -> None:
        self.healthy_heads.add(cluster)

    def serve_ready(self, cluster: str) -> None:
        self.dashboard(cluster).run()

    def restart_container(self, pod_name: str) -> None:
        self.kube.restart_container(pod_name)

    # ------------------------------------------------------------------ pods (common/pod.go, utils/util.go)
    def _pod(self, cluster: dict[str, Any], node_type: str, group: str, template: dict[str, Any]) -> dict[str, Any]:
        name = cluster["metadata"]["name"]
        prefix = f"{name}-head" if node_type == "head" else f"{name}-{group}-worker"
        labels = {key: value for key, value in (template.get("metadata", {}).get("labels") or {}).items()
                  if key not in ("ray.io/node-type", "ray.io/group", "ray.io/cluster")}
        labels.update({"ray.io/is-ray-node": "yes", "ray.io/cluster": name, "ray.io/node-type": node_type,
                       "ray.io/group": "headgroup" if node_type == "head" else group,
                       "ray.io/identifier": f"{name}-{node_type}", "app.kubernetes.io/name": "kuberay",
                       "app.kubernetes.io/created-by": "kuberay-operator",
                       "ray.io/serve": "false" if node_type == "head" else "true"})
        return self.kube.new_pod(f"{prefix}-{rand5(self.store)}", labels, template["spec"], owner=cluster)

    def _reconcile_cluster(self, cluster: dict[str, Any]) -> None:
        name = cluster["metadata"]["name"]
        meta = cluster["metadata"]
        if gcs_ft(cluster) and not meta.get("deletionTimestamp") and GCS_FT_FINALIZER not in meta.get("finalizers", []):
            meta.setdefault("finalizers", []).append(GCS_FT_FINALIZER)
            return
        if meta.get("deletionTimestamp"):
            self._redis_cleanup(cluster)
            return
        pods = self.pods(name)
        spec = cluster["spec"]
        if not [p for p in pods if p["metadata"]["labels"]["ray.io/node-type"] == "head"]:
            self.store.put(self._pod(cluster, "head", "headgroup", spec["headGroupSpec"]["template"]))
        for group in spec["workerGroupSpecs"]:
            have = [p for p in pods if p["metadata"]["labels"].get("ray.io/group") == group["groupName"]
                    and p["metadata"]["labels"].get("ray.io/node-type") == "worker"]
            want = min(max(group.get("replicas", 0), group.get("minReplicas", 0)), group.get("maxReplicas", 2**31))
            for _ in range(want - len(have)):
                self.store.put(self._pod(cluster, "worker", group["groupName"], group["template"]))

    def _redis_cleanup(self, cluster: dict[str, Any]) -> None:
        name = cluster["metadata"]["name"]
        ray_pods = [p for p in self.pods(name) if p["metadata"]["labels"].get("ray.io/node-type") in ("head", "worker")]
        for pod in ray_pods:
            if not pod["metadata"].get("deletionTimestamp"):
                self.store.delete("Pod", self.ns, pod["metadata"]["name"])
        if any(p["metadata"]["labels"]["ray.io/node-type"] == "head" for p in ray_pods):
            return  # wait for the head to be gone before cleaning its storage namespace
        job_name = f"{name}-redis-cleanup"
        job = self.store.get("Job", self.ns, job_name)
        if job is None:
            head = self._pod(cluster, "head", "headgroup", cluster["spec"]["headGroupSpec"]["template"])
            labels = {**head["metadata"]["labels"], "ray.io/node-type": "redis-cleanup"}
            spec = {**head["spec"], "restartPolicy": "Never"}
            self.store.put({"apiVersion": "batch/v1", "kind": "Job",
                            "metadata": {"name": job_name, "namespace": self.ns, "labels": labels},
                            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": spec}}})
        elif job_finished(job) or self._deleting_for(cluster) >= GCS_FT_DELETION_TIMEOUT_S:
            # IsJobFinished: Complete or Failed; or forceRemoveGCSFTFinalizer once the deletion is
            # RAYCLUSTER_GCS_FT_DELETION_TIMEOUT_DEFAULT (300 s) old.
            self.store.finalize("RayCluster", self.ns, name, GCS_FT_FINALIZER)

    def _deleting_for(self, cluster: dict[str, Any]) -> float:
        """Seconds since the cluster's deletion was asked for (0 when it was not)."""
        from tests.fake_apiserver import parse_iso

        stamp = cluster["metadata"].get("deletionTimestamp")
        return self.store.now() - parse_iso(stamp) if stamp else 0.0

    def _update_head_serve_label(self, cluster: str) -> None:
        """rayservice_controller.go updateHeadPodServeLabel: true iff the head's proxy is healthy."""
        head = self.head(cluster)
        if head is not None:
            head["metadata"]["labels"]["ray.io/serve"] = str(cluster in self.healthy_heads).lower()

    # ------------------------------------------------------------------ services (common/service.go)
    def _services_to(self, rs: dict[str, Any], cluster: str) -> None:
        rs_name = rs["metadata"]["name"]
        origin = {"ray.io/originated-from-cr-name": rs_name, "ray.io/originated-from-crd": "RayService"}
        head_selector = {"ray.io/cluster": cluster, "ray.io/node-type": "head",
                         "ray.io/identifier": f"{cluster}-head", "app.kubernetes.io/name": "kuberay",
                         "app.kubernetes.io/created-by": "kuberay-operator"}
        # Headless, with not-ready addresses published (common/service.go BuildServiceForHeadPod, which
        # BuildHeadServiceForRayService calls; ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE unset).
        self._service(f"{rs_name}-head-svc", {**origin, "ray.io/node-type": "head",
                                              "ray.io/identifier": f"{rs_name}-head"}, head_selector,
                      [{"name": "dashboard", "port": 8265}, {"name": "serve", "port": 8000}], None, headless=True)
        user = copy.deepcopy(rs["spec"].get("serveService") or {})
        labels = {**(user.get("metadata", {}).get("labels") or {}), **origin, "ray.io/serve": f"{rs_name}-serve"}
        self._service(self.serve_service_name(rs), labels, {"ray.io/cluster": cluster, "ray.io/serve": "true"},
                      user.get("spec", {}).get("ports") or [{"name": "serve", "port": 8000}],
                      user.get("spec", {}).get("type"))

    @staticmethod
    def serve_service_name(rs: dict[str, Any]) -> str:
        return (rs["spec"].get("serveService") or {}).get("metadata", {}).get("name") \
            or f"{rs['metadata']['name']}-serve-svc"

    def _service(self, name: str, labels: dict[str, str], selector: dict[str, str], ports: list[dict[str, Any]],
                 svc_type: str | None, headless: bool = False) -> None:
        existing = self.store.get("Service", self.ns, name)
        if existing is not None and existing["spec"]["selector"].get("ray.io/cluster") == selector["ray.io/cluster"]:
            return  # rayservice_controller.go reconcileServices: only updated when the cluster switches
        spec: dict[str, Any] = {"selector": selector, "ports": ports, "type": svc_type or "ClusterIP"}
        if headless:
            spec.update(clusterIP="None", publishNotReadyAddresses=True)
        self.store.put({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": self.ns, "labels": labels}, "spec": spec})

    # ------------------------------------------------------------------ the RayService controller
    def _new_cluster(self, rs: dict[str, Any], name: str) -> None:
        labels = {**(rs["metadata"].get("labels") or {}), "ray.io/originated-from-cr-name": rs["metadata"]["name"],
                  "ray.io/originated-from-crd": "RayService"}
        config = rs["spec"]["rayClusterConfig"]
        annotations = {**(rs["metadata"].get("annotations") or {}), HASH_KEY: cluster_hash(config),
                       NUM_GROUPS_KEY: str(len(config.get("workerGroupSpecs", []))),
                       "ray.io/kuberay-version": "v1.7.0"}
        self.store.put({"apiVersion": "ray.io/v1", "kind": "RayCluster",
                        "metadata": {"name": name, "namespace": self.ns, "labels": labels,
                                     "annotations": annotations,
                                     "ownerReferences": [{"apiVersion": "ray.io/v1", "kind": "RayService",
                                                          "name": rs["metadata"]["name"],
                                                          "uid": rs["metadata"]["uid"], "controller": True}]},
                        "spec": copy.deepcopy(config)})

    def _submit(self, rs: dict[str, Any], cluster: str) -> bool:
        """reconcileServe: submit serveConfigV2 when needed; whether the cluster's Serve is ready.
        Raises RuntimeError (the reconcile's error) when the dashboard refused the config."""
        head = self.head(cluster)
        if head is None or head["status"].get("phase") != "Running" or not is_ready(head):
            return False
        dashboard = self.dashboard(cluster)
        wanted = rs["spec"].get("serveConfigV2", "")
        cached = self.serve_cache.get(cluster, "")
        if not cached or not dashboard.applications or cached != wanted:
            status, body = dashboard.put(yaml.safe_load(wanted) or {})
            if status != 200:
                self.store.event(rs, "Warning", "FailedToUpdateServeApplications",
                                 f"Failed to update serve applications to the RayCluster {self.ns}/{cluster}: "
                                 "fail to create / update Serve applications. If you observe this error "
                                 "consistently, please check \"Issue 5: Fail to create / update Serve "
                                 "applications.\" in https://docs.ray.io/en/master/cluster/kubernetes/"
                                 "troubleshooting/rayservice-troubleshooting.html#kuberay-raysvc-troubleshoot "
                                 f"for more details. err: UpdateDeployments fail: {status} Bad Request {body}")
                raise RuntimeError(body)
            self.serve_cache[cluster] = wanted
            self.store.event(rs, "Normal", "UpdatedServeApplications",
                             f"Updated serve applications to the RayCluster {self.ns}/{cluster}")
        apps = dashboard.applications
        return bool(apps) and all(app["status"] == "RUNNING" for app in apps.values())

    def _cleanup_clusters(self, rs: dict[str, Any], active: str | None, pending: str | None) -> bool:
        deleted = bool(rs["metadata"].get("deletionTimestamp"))
        delay = rs["spec"].get("rayClusterDeletionDelaySeconds", self.DELETION_DELAY_S)
        left = False
        for cluster in self.clusters():
            name = cluster["metadata"]["name"]
            if not deleted and name in (active, pending):
                continue
            left = True
            when = self.delete_at.setdefault(name, self.store.now() + (0 if deleted else delay))
            if deleted or self.store.now() >= when:
                self.store.delete("RayCluster", self.ns, name)
                self.store.event(rs, "Normal", "DeletedRayCluster", f"Deleted the RayCluster {self.ns}/{name}")
        return left

    def _reconcile_rayservice(self, rs: dict[str, Any]) -> None:
        meta = rs["metadata"]
        status = rs.setdefault("status", {})
        active = (status.get("activeServiceStatus") or {}).get("rayClusterName")
        pending = (status.get("pendingServiceStatus") or {}).get("rayClusterName")
        left = self._cleanup_clusters(rs, active, pending)
        if meta.get("deletionTimestamp"):
            if not left:
                self.store.finalize("RayService", self.ns, meta["name"], RAYSERVICE_FINALIZER)
            return
        if RAYSERVICE_FINALIZER not in meta.get("finalizers", []):
            meta.setdefault("finalizers", []).append(RAYSERVICE_FINALIZER)
            return
        if pending and self.store.get("RayCluster", self.ns, pending) is None:
            self._new_cluster(rs, pending)
        for name in (active, pending):
            if name and self.head(name) is not None:
                self._update_head_serve_label(name)
        if active and not pending and self.head(active) is None:
            # rayservice_controller.go: getting the active cluster's head pod fails while it has none
            # (reconcileServe -> GetRayClusterHeadPod), and the reconcile returns before the status.
            return
        wanted = cluster_hash(rs["spec"]["rayClusterConfig"])
        try:
            pending_ready = bool(pending) and self._submit(rs, pending)
            active_ready = bool(active) and not pending and self._hash(active) == wanted and self._submit(rs, active)
        except RuntimeError:
            return  # the reconcile failed: no status is written (observedGeneration lags)
        if pending_ready:
            self._services_to(rs, pending)
        elif active_ready:
            self._services_to(rs, active)
        serve = self.store.get("Service", self.ns, self.serve_service_name(rs))
        points_to = (serve or {}).get("spec", {}).get("selector", {}).get("ray.io/cluster")
        if pending and points_to == pending:  # promotion
            active, pending = pending, None
        base = pending or active
        if base is None or (self._hash(base) != wanted and not pending):
            pending = f"{meta['name']}-{rand5(self.store)}"
        self._write_status(rs, active, pending)

    def _hash(self, cluster: str) -> str | None:
        obj = self.store.get("RayCluster", self.ns, cluster)
        return obj["metadata"]["annotations"].get(HASH_KEY) if obj else None

    def _write_status(self, rs: dict[str, Any], active: str | None, pending: str | None) -> None:
        status = rs["status"]
        status["activeServiceStatus"] = {"rayClusterName": active} if active else {}
        status["pendingServiceStatus"] = {"rayClusterName": pending} if pending else {}
        endpoints = {ep["targetRef"]["uid"] for s in self.store.list(
            "EndpointSlice", self.ns, f"kubernetes.io/service-name={self.serve_service_name(rs)}")
            for ep in s.get("endpoints", []) if ep["conditions"].get("ready")}
        status["numServeEndpoints"] = len(endpoints)
        was_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        ready = "True" if endpoints else "False"
        reason = "NonZeroServeEndpoints" if endpoints else ("ZeroServeEndpoints" if was_ready else "Initializing")
        status["conditions"] = [
            {"type": "Ready", "status": ready, "reason": reason},
            {"type": "UpgradeInProgress", "status": "True" if active and pending else "False"},
        ]
        if not self.lag:
            status["observedGeneration"] = rs["metadata"]["generation"]

    def reconcile(self) -> None:
        """One pass: Kubernetes' controllers, the RayService controller, the RayCluster controller,
        then Kubernetes' again (so the pods created now are scheduled and their endpoints listed;
        the RayService's view of them is the next pass's, as KubeRay's requeue 2 s later sees it)."""
        with self.store.lock:
            self.kube.step()
            rs = self.rayservice()
            if rs is not None:
                self._reconcile_rayservice(rs)
            for cluster in self.clusters():
                self._reconcile_cluster(cluster)
            self.kube.step()
            for step in self.others:
                step()

    def settle(self, rounds: int = 6) -> None:
        """Reconcile until nothing is left to do for the state the test set."""
        for _ in range(rounds):
            self.reconcile()

    @contextmanager
    def running(self, period_s: float = 0.02, advance_s: float = 2.0, serve: bool = True) -> Iterator[None]:
        """The operator and the kubelets at work in the background while the harness waits:
        every ``period_s`` (real) one reconcile, the clock ``advance_s`` on (KubeRay's 2 s requeue),
        new pods started, heads healthy and (``serve``) Serve running what was submitted."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(period_s):
                with self.store.lock:
                    self.store.advance(advance_s)
                    self.reconcile()
                    self.kube.start()
                    for cluster in self.clusters():
                        self.proxy_healthy(cluster["metadata"]["name"])
                        if serve and not self.dashboard(cluster["metadata"]["name"]).reject:
                            self.dashboard(cluster["metadata"]["name"]).run()

        thread = threading.Thread(target=loop, daemon=True, name="fake-operator")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)
