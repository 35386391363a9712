"""A model of Chaos Mesh v2.8.3's controller manager on the fake API's store (test double).

Each behaviour names its file in chaos-mesh/chaos-mesh at tag v2.8.3:
- a chaos object gets the finalizer ``chaos-mesh/records`` and, when deleted, recovers
  every target before the finalizer goes (``controllers/common/finalizers/controller.go``);
- the records controller keeps one record per selected target in
  ``status.experiment.containerRecords`` -- id ``<ns>/<pod>`` (``<ns>/<pod>/<container>``
  for a container selector), ``selectorKey`` "." (and ".Target" for a NetworkChaos
  target), ``phase`` "Injected" / "Not Injected", ``injectedCount``, ``recoveredCount`` and
  events with a message when an injection failed (``controllers/common/records/controller.go``,
  ``api/v1alpha1/common_types.go`` Record);
- at the end of ``duration`` the desired phase is Stop and the targets are recovered
  (``controllers/common/desiredphase/controller.go``);
- conditions ``AllInjected`` / ``AllRecovered`` follow the records
  (``controllers/common/condition/controller.go``).
Only Running pods are injected; a pod listed in ``failing`` fails its injection with a message.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from tests.fake_apiserver import Store, iso

CRD_DIR = Path(__file__).resolve().parents[2] / "shared" / "chaos-mesh"

FINALIZER = "chaos-mesh/records"
KINDS = ("StressChaos", "NetworkChaos")


def _seconds(duration: str) -> float:
    found = re.fullmatch(r"(\d+)s", duration or "")
    return float(found[1]) if found else float("inf")


def _created(obj: dict[str, Any]) -> float:
    return datetime.strptime(obj["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc).timestamp()


class FakeChaosMesh:
    def __init__(self, store: Store, namespace: str = "serve-chaos") -> None:
        self.store = store
        self.ns = namespace
        #: pod -> why its injection fails (e.g. the kernel has no netem).
        self.failing: dict[str, str] = {}

    def install(self) -> None:
        """``helm install chaos-mesh``: its CRDs (the v2.8.3 copies in ../shared/chaos-mesh)."""
        for path in sorted(CRD_DIR.glob("chaos-mesh.org_*.yaml")):
            self.store.put(yaml.safe_load(path.read_text()))

    def _targets(self, obj: dict[str, Any]) -> list[tuple[str, str]]:
        """(record id, selector key) of every Running pod the object selects."""
        out = []
        spec = obj["spec"]
        keys = [(".", spec["selector"])] + ([(".Target", spec["target"]["selector"])] if spec.get("target") else [])
        for key, selector in keys:
            for name in (selector.get("pods") or {}).get(self.ns, []):
                pod = self.store.get("Pod", self.ns, name)
                if pod is None or pod["status"].get("phase") != "Running":
                    continue
                record = f"{self.ns}/{name}"
                if obj["kind"] == "StressChaos":
                    record += f"/{(spec.get('containerNames') or [pod['spec']['containers'][0]['name']])[0]}"
                out.append((record, key))
        return out

    def step(self) -> None:
        with self.store.lock:
            for kind in KINDS:
                for obj in self.store.list(kind, self.ns):
                    self._reconcile(obj)

    def _reconcile(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") and FINALIZER not in meta.get("finalizers", []):
            meta.setdefault("finalizers", []).append(FINALIZER)
        status = obj.setdefault("status", {"experiment": {"containerRecords": []}})
        experiment = status.setdefault("experiment", {})
        records = {r["id"]: r for r in experiment.get("containerRecords") or []}
        stop = bool(meta.get("deletionTimestamp")) or self.store.now() >= _created(obj) + _seconds(
            obj["spec"].get("duration", ""))
        experiment["desiredPhase"] = "Stop" if stop else "Run"
        for target, key in self._targets(obj):
            rec = records.setdefault(target, {"id": target, "selectorKey": key, "phase": "Not Injected",
                                              "injectedCount": 0, "recoveredCount": 0, "events": []})
            pod = target.split("/")[1]
            if not stop and rec["phase"] == "Not Injected" and rec["injectedCount"] == 0:
                if pod in self.failing:
                    rec["events"].append({"type": "Failed", "operation": "Apply", "message": self.failing[pod],
                                          "timestamp": iso(self.store.now())})
                    continue
                rec.update(phase="Injected", injectedCount=rec["injectedCount"] + 1)
                rec["events"].append({"type": "Succeeded", "operation": "Apply", "timestamp": iso(self.store.now())})
            elif stop and rec["phase"] == "Injected":
                rec.update(phase="Not Injected", recoveredCount=rec["recoveredCount"] + 1)
                rec["events"].append({"type": "Succeeded", "operation": "Recover", "timestamp": iso(self.store.now())})
        experiment["containerRecords"] = list(records.values())
        injected = bool(records) and all(r["phase"] == "Injected" for r in records.values())
        recovered = all(r["phase"] == "Not Injected" for r in records.values())
        status["conditions"] = [{"type": "Selected", "status": str(bool(records))},
                                {"type": "AllInjected", "status": str(injected)},
                                {"type": "AllRecovered", "status": str(recovered)}]
        if meta.get("deletionTimestamp") and recovered:
            self.store.finalize(obj["kind"], self.ns, meta["name"], FINALIZER)
