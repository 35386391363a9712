"""A pod's volumes, made on the node the way the kubelet's volume plugins make them
(``pkg/volume/{configmap,secret,projected,emptydir,downwardapi,hostpath}``, the CSI-less PVC
path through its bound PersistentVolume), read through the API with the node's own
credentials -- so the Node authorizer decides what it may read, as for a real kubelet.

Files are written once, when the pod starts (the kubelet also refreshes ConfigMaps, Secrets
and projected tokens later: serve-chaos's pods never change theirs while running, and a
token here lives an hour, longer than any scenario).
"""

from __future__ import annotations

import base64
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kubernetes.utils.quantity import parse_quantity

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.k8s.agent.rootfs import Mount

#: ``pkg/volume/util`` default file mode of ConfigMap, Secret, projected and downward-API files.
DEFAULT_MODE = 0o644
#: What a projected service-account token asks for when the pod does not say (the kubelet's
#: ``kube-api-access-*`` volume asks 3607 s).
TOKEN_SECONDS = 3607


class VolumeNotReady(ServeChaosError):
    """A volume's source is missing or not bound yet (the kubelet retries: ContainerCreating)."""


@dataclass
class PodVolumes:
    """Where each volume of a pod lives on the host: name -> (path, tmpfs size in bytes or None)."""

    root: Path
    paths: dict[str, tuple[Path, int | None]]

    def mounts(self, container: dict[str, Any]) -> list[Mount]:
        out = []
        for vm in container.get("volumeMounts") or []:
            name = vm["name"]
            if name not in self.paths:
                raise VolumeNotReady(f"volume {name} of container {container['name']} is not defined")
            path, tmpfs = self.paths[name]
            read_only = bool(vm.get("readOnly"))
            if tmpfs is not None and not vm.get("subPath"):
                out.append(Mount(vm["mountPath"], str(tmpfs), kind="tmpfs", read_only=read_only))
                continue
            source = path / vm["subPath"] if vm.get("subPath") else path
            if vm.get("subPath") and not source.exists():
                source.mkdir(parents=True)  # a subPath that does not exist is created as a directory
            out.append(Mount(vm["mountPath"], str(source), read_only=read_only))
        return out


def _write_items(target: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None, mode: int) -> None:
    chosen = {i["key"]: (i.get("path") or i["key"], i.get("mode")) for i in items} if items else \
        {k: (k, None) for k in data}
    for key, (rel, item_mode) in chosen.items():
        if key not in data:
            raise VolumeNotReady(f"key {key} is missing")
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data[key])
        dest.chmod(item_mode if item_mode is not None else mode)


def _field(pod: dict[str, Any], path: str) -> str:
    meta = pod.get("metadata") or {}
    if path.startswith("metadata.labels["):
        return (meta.get("labels") or {}).get(path[len("metadata.labels['"):-2], "")
    if path.startswith("metadata.annotations["):
        return (meta.get("annotations") or {}).get(path[len("metadata.annotations['"):-2], "")
    if path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("labels") or {}).items()))
    if path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("annotations") or {}).items()))
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
              "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
              "status.podIP": (pod.get("status") or {}).get("podIP"),
              "status.hostIP": (pod.get("status") or {}).get("hostIP")}
    return str(simple.get(path) or "")


class VolumeMaker:
    """Makes one pod's volumes under ``root``.  ``api`` is the node's client facade
    (``read_configmap``, ``read_secret``, ``read_pvc``, ``read_pv``, ``token``)."""

    def __init__(self, api: Any, pod: dict[str, Any], root: Path, pod_ip: str, host_ip: str) -> None:
        self.api = api
        self.pod = pod
        self.ns = pod["metadata"]["namespace"]
        self.root = root
        # The downward API sees the addresses the pod will have.
        self.pod.setdefault("status", {}).update({"podIP": pod_ip, "hostIP": host_ip})

    def make(self) -> PodVolumes:
        self.root.mkdir(parents=True, exist_ok=True)
        paths: dict[str, tuple[Path, int | None]] = {}
        for volume in (self.pod.get("spec") or {}).get("volumes") or []:
            paths[volume["name"]] = self._one(volume)
        return PodVolumes(self.root, paths)

    def _one(self, volume: dict[str, Any]) -> tuple[Path, int | None]:
        target = self.root / volume["name"]
        makers: dict[str, Callable[[dict[str, Any], Path], int | None]] = {
            "configMap": self._configmap, "secret": self._secret, "projected": self._projected,
            "emptyDir": self._empty_dir, "downwardAPI": self._downward, "persistentVolumeClaim": self._pvc,
            "hostPath": self._host_path,
        }
        kind = next((k for k in makers if k in volume), None)
        if kind is None:
            raise VolumeNotReady(f"volume {volume['name']}: this node makes only "
                                 f"{', '.join(makers)} volumes, not {sorted(set(volume) - {'name'})}")
        if kind in ("persistentVolumeClaim", "hostPath"):
            return self._bound(kind, volume[kind], target)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        return target, makers[kind](volume[kind], target)

    def _bound(self, kind: str, spec: dict[str, Any], target: Path) -> tuple[Path, int | None]:
        path = self._pvc(spec, target) if kind == "persistentVolumeClaim" else self._host_path(spec, target)
        return Path(path), None

    def _configmap(self, spec: dict[str, Any], target: Path) -> None:
        cm = self.api.read_configmap(self.ns, spec["name"])
        if cm is None:
            if spec.get("optional"):
                return None
            raise VolumeNotReady(f'configmap "{spec["name"]}" not found')
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        _write_items(target, data, spec.get("items"), spec.get("defaultMode", DEFAULT_MODE))
        return None

    def _secret(self, spec: dict[str, Any], target: Path) -> None:
        secret = self.api.read_secret(self.ns, spec["secretName"])
        if secret is None:
            if spec.get("optional"):
                return None
            raise VolumeNotReady(f'secret "{spec["secretName"]}" not found')
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        _write_items(target, data, spec.get("items"), spec.get("defaultMode", DEFAULT_MODE))
        return None

    def _projected(self, spec: dict[str, Any], target: Path) -> None:
        mode = spec.get("defaultMode", DEFAULT_MODE)
        for source in spec.get("sources") or []:
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                token = self.api.token(self.ns, self.pod["spec"].get("serviceAccountName") or "default",
                                       self.pod["metadata"]["name"], self.pod["metadata"]["uid"],
                                       sat.get("audience"), sat.get("expirationSeconds") or TOKEN_SECONDS)
                _write_items(target, {sat["path"]: token.encode()}, None, mode)
            elif "configMap" in source:
                self._configmap({**source["configMap"], "defaultMode": mode}, target)
            elif "secret" in source:
                self._secret({**source["secret"], "secretName": source["secret"]["name"], "defaultMode": mode},
                             target)
            elif "downwardAPI" in source:
                self._downward({**source["downwardAPI"], "defaultMode": mode}, target)
        return None

    def _downward(self, spec: dict[str, Any], target: Path) -> None:
        data = {i["path"]: _field(self.pod, i["fieldRef"]["fieldPath"]).encode()
                for i in spec.get("items") or [] if "fieldRef" in i}
        _write_items(target, data, None, spec.get("defaultMode", DEFAULT_MODE))
        return None

    @staticmethod
    def _empty_dir(spec: dict[str, Any], target: Path) -> int | None:
        if spec.get("medium") != "Memory":
            return None
        # A memory-backed emptyDir is a tmpfs of its size limit, else of the node's memory
        # (``pkg/volume/emptydir/empty_dir.go`` mounts it with size= the limit).
        limit = spec.get("sizeLimit")
        return int(parse_quantity(limit)) if limit else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def _pvc(self, spec: dict[str, Any], target: Path) -> str:
        claim = self.api.read_pvc(self.ns, spec["claimName"])
        if claim is None:
            raise VolumeNotReady(f'persistentvolumeclaim "{spec["claimName"]}" not found')
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name or (claim.get("status") or {}).get("phase") != "Bound":
            raise VolumeNotReady(f'persistentvolumeclaim "{spec["claimName"]}" is not bound yet')
        pv = self.api.read_pv(volume_name)
        if pv is None:
            raise VolumeNotReady(f'persistentvolume "{volume_name}" not found')
        pv_spec = pv.get("spec") or {}
        source = (pv_spec.get("hostPath") or pv_spec.get("local") or {}).get("path")
        if not source:
            raise VolumeNotReady(f"persistentvolume {volume_name} is not a hostPath or local volume")
        Path(source).mkdir(parents=True, exist_ok=True)
        return source

    @staticmethod
    def _host_path(spec: dict[str, Any], target: Path) -> str:
        path = Path(spec["path"])
        if spec.get("type") == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            raise VolumeNotReady(f"hostPath {path} does not exist")
        return str(path)
