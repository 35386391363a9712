"""The host-side controllers of the k8s target: what kube-proxy, cluster DNS and kind's volume
provisioner do, each fed by informers.

- ``ServiceProxy`` (identity ``system:kube-proxy``, the ``system:node-proxier`` role): on every
  Service or EndpointSlice change, renders the nftables table (``proxy.render_rules``) and loads
  it atomically when it changed, and keeps every Service with the addresses its name resolves
  to, for cluster DNS (``dns.py``) and, in ``services.json``, for the node agents (the Service
  variables of a container's environment).
- ``HostPathProvisioner``: kind's ``standard`` StorageClass is WaitForFirstConsumer with
  rancher's local-path provisioner (a hostPath PersistentVolume on the node the scheduler
  picked).  This does the same for claims of our class: once the scheduler has annotated a
  claim with its selected node (``volume.kubernetes.io/selected-node``), it creates a hostPath
  PV pinned to that node by node affinity and bound to the claim (``claimRef``); the PV
  binder of kube-controller-manager completes the binding.  A Released PV of ours is deleted
  with its directory (reclaim policy Delete).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from serve_chaos.runtime.k8s import network
from serve_chaos.runtime.k8s.informer import Informer
from serve_chaos.runtime.k8s.layout import K8sLayout
from serve_chaos.runtime.k8s.proxy import render_rules, services
from serve_chaos.runtime.local.commands import run

PROVISIONER = "serve-chaos.io/host-path"
STORAGE_CLASS = "standard"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ServiceProxy:
    def __init__(self, layout: K8sLayout, kubeconfig: str, node_ips: Callable[[], list[str]],
                 stop: threading.Event, log: Callable[[str], None]) -> None:
        self.layout = layout
        self.node_ips = node_ips
        self.log = log
        self.changed = threading.Event()
        self.svcs = Informer(kubeconfig, lambda c: client.CoreV1Api(c).list_service_for_all_namespaces,
                             self.changed.set, stop, "services", log)
        self.slices = Informer(kubeconfig, lambda c: client.DiscoveryV1Api(c).list_endpoint_slice_for_all_namespaces,
                               self.changed.set, stop, "endpointslices", log)
        self.stop = stop
        self.rules = ""
        self.names = ""
        #: Every Service with the addresses its name resolves to (``Service.to_dict``), for cluster DNS.
        self.records: list[dict[str, Any]] = []
        self.table = network.table_name(layout.label)
        self.base = network.base_rules(layout)

    def start(self) -> None:
        self.svcs.start()
        self.slices.start()
        threading.Thread(target=self._loop, daemon=True, name="service-proxy").start()

    def sync(self) -> None:
        svcs = services(self.svcs.items(), self.slices.items())
        rules = render_rules(self.table, self.base, svcs, self.node_ips())
        if rules != self.rules:
            run(["nft", "-f", "-"], input_text=rules, hint="nftables is needed for Service addresses")
            self.rules = rules
        self.records = [s.to_dict() for s in svcs]
        names = json.dumps(self.records, sort_keys=True)
        if names != self.names:
            write_atomic(self.layout.root / "services.json", names)
            self.names = names

    def _loop(self) -> None:
        while not self.stop.is_set():
            if not self.changed.wait(1.0):
                continue
            self.stop.wait(0.05)  # one sync for a burst of events
            self.changed.clear()
            if not (self.svcs.synced.is_set() and self.slices.synced.is_set()):
                continue
            try:
                self.sync()
            except Exception as err:  # noqa: BLE001 - retried at the next change
                self.log(f"service proxy: {type(err).__name__}: {str(err)[:300]}")
                self.changed.set()
                self.stop.wait(1.0)


class HostPathProvisioner:
    def __init__(self, layout: K8sLayout, kubeconfig: str, stop: threading.Event, log: Callable[[str], None]) -> None:
        self.layout = layout
        self.kubeconfig = kubeconfig
        self.log = log
        self.stop = stop
        self.changed = threading.Event()
        self.claims = Informer(kubeconfig,
                               lambda c: client.CoreV1Api(c).list_persistent_volume_claim_for_all_namespaces,
                               self.changed.set, stop, "claims", log)
        self.volumes = Informer(kubeconfig, lambda c: client.CoreV1Api(c).list_persistent_volume,
                                self.changed.set, stop, "volumes", log)
        self.core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))

    @property
    def root(self) -> Path:
        return self.layout.root / "volumes"

    def start(self) -> None:
        self.claims.start()
        self.volumes.start()
        threading.Thread(target=self._loop, daemon=True, name="provisioner").start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            if not self.changed.wait(1.0):
                continue
            self.changed.clear()
            try:
                self.sync()
            except ApiException as err:
                self.log(f"provisioner: {err.status} {err.reason}")
                self.changed.set()
                self.stop.wait(1.0)

    def sync(self) -> None:
        existing = {v["metadata"]["name"]: v for v in self.volumes.items()}
        for claim in self.claims.items():
            meta, spec = claim["metadata"], claim.get("spec") or {}
            annotations = meta.get("annotations") or {}
            if spec.get("storageClassName") != STORAGE_CLASS or spec.get("volumeName"):
                continue
            node = annotations.get("volume.kubernetes.io/selected-node")
            name = f"pvc-{meta['uid']}"
            if node and name not in existing:
                self.core.create_persistent_volume(self.volume(claim, name, node))
        for volume in existing.values():
            spec = volume.get("spec") or {}
            if spec.get("storageClassName") == STORAGE_CLASS and (volume.get("status") or {}).get("phase") == \
                    "Released" and spec.get("persistentVolumeReclaimPolicy") == "Delete":
                shutil.rmtree(self.root / volume["metadata"]["name"], ignore_errors=True)
                try:
                    self.core.delete_persistent_volume(volume["metadata"]["name"])
                except ApiException as err:
                    if err.status != 404:
                        raise

    def volume(self, claim: dict[str, Any], name: str, node: str) -> dict[str, Any]:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        path = self.root / name
        return {"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                "spec": {"capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {})
                                      .get("storage", "1Gi")},
                         "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Delete", "storageClassName": STORAGE_CLASS,
                         "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                         "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}


def storage_class() -> dict[str, Any]:
    """kind's default StorageClass (``standard``), with our provisioner's name."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}
