"""A container's environment and command line, resolved as the kubelet resolves them
(``pkg/kubelet/kubelet_pods.go`` makeEnvironmentVariables, ``third_party/forked/golang/expansion``).

Order: the Service variables (``proxy.service_env``), then ``envFrom`` sources, then ``env``
entries in order, each value with ``$(VAR)`` expanded against what came before it
(``$$`` is a literal ``$``; an unknown ``$(VAR)`` stays as written).  The image's own
variables (``PATH``, ``HOME``) come first, as the runtime merges them under the pod's.
Command and args are expanded against the final environment.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from serve_chaos.runtime.k8s.agent.volumes import VolumeNotReady, _field

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _REF.sub(sub, text)


def _resource(container: dict[str, Any], ref: dict[str, Any], node_cpu: int, node_memory: int) -> str:
    """``resourceFieldRef``: a limit (or request) in the divisor's units, rounded up (limits
    default to the node's allocatable, ``pkg/api/v1/resource/helpers.go`` ExtractContainerResourceValue)."""
    kind, name = ref["resource"].split(".", 1)
    resources = (container.get("resources") or {}).get(kind) or {}
    default = node_cpu if name == "cpu" else node_memory
    value = parse_quantity(resources[name]) if name in resources else default
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(value / divisor))


def container_env(api: Any, pod: dict[str, Any], container: dict[str, Any], base: dict[str, str],
                  node_cpu: int, node_memory: int) -> dict[str, str]:
    ns = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        if "configMapRef" in source:
            obj = api.read_configmap(ns, source["configMapRef"]["name"])
            data = (obj or {}).get("data") or {}
        else:
            obj = api.read_secret(ns, source["secretRef"]["name"])
            data = {k: base64.b64decode(v).decode() for k, v in ((obj or {}).get("data") or {}).items()}
        if obj is None and not (source.get("configMapRef") or source.get("secretRef") or {}).get("optional"):
            raise VolumeNotReady(f"envFrom source of container {container['name']} not found")
        env.update({prefix + k: v for k, v in data.items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(item.get("value") or "", env)
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            env[name] = _field(pod, ref["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in ref:
            env[name] = _resource(container, ref["resourceFieldRef"], node_cpu, node_memory)
        elif "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            data = ((api.read_configmap(ns, key["name"]) or {}).get("data") or {})
            if key["key"] not in data and not key.get("optional"):
                raise VolumeNotReady(f"configmap {key['name']} has no key {key['key']} (env {name})")
            if key["key"] in data:
                env[name] = data[key["key"]]
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            data = ((api.read_secret(ns, key["name"]) or {}).get("data") or {})
            if key["key"] not in data and not key.get("optional"):
                raise VolumeNotReady(f"secret {key['name']} has no key {key['key']} (env {name})")
            if key["key"] in data:
                env[name] = base64.b64decode(data[key["key"]]).decode()
    return env


def command_line(container: dict[str, Any], image_entrypoint: list[str], env: dict[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded (the image's entrypoint when no command is given)."""
    command = [expand(c, env) for c in container.get("command") or image_entrypoint]
    return command + [expand(a, env) for a in container.get("args") or []]
