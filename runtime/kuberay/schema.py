"""Validate generated custom resources against their CRD schemas (openAPIV3Schema): KubeRay
v1.7.0's (RayService, RayCluster) and Chaos Mesh v2.8.3's (StressChaos, NetworkChaos).

Kubernetes prunes (or, with strict field validation, rejects) fields a
structural schema does not declare, so validation here is strict: an object
schema that lists properties accepts no others unless it is marked
``x-kubernetes-preserve-unknown-fields``.  A typo in a field name fails.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_FILES = {"RayService": "ray.io_rayservices.yaml", "RayCluster": "ray.io_rayclusters.yaml",
             "StressChaos": "chaos-mesh.org_stresschaos.yaml", "NetworkChaos": "chaos-mesh.org_networkchaos.yaml",
             "PodChaos": "chaos-mesh.org_podchaos.yaml"}


def strict(schema: Any) -> Any:
    """Copy of an OpenAPI v3 schema with ``additionalProperties: false`` where Kubernetes would prune."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@lru_cache(maxsize=8)
def load_schema(crd_dir: str, kind: str, version: str = "v1") -> dict[str, Any]:
    crd = yaml.safe_load((Path(crd_dir) / CRD_FILES[kind]).read_text())
    for ver in crd["spec"]["versions"]:
        if ver["name"] == version:
            return strict(copy.deepcopy(ver["schema"]["openAPIV3Schema"]))
    raise KeyError(f"{kind} CRD has no version {version}")


def errors(obj: dict[str, Any], crd_dir: Path) -> list[str]:
    """Schema violations of one custom resource, as readable lines (empty when valid)."""
    kind = obj["kind"]
    version = obj["apiVersion"].split("/")[-1]
    validator = jsonschema.Draft7Validator(load_schema(str(crd_dir), kind, version))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))]
