"""Both targets implement the whole Cluster protocol with the same signatures,
and everything the engine and the faults call on a cluster is declared in it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from serve_chaos.runtime.cluster import Cluster
from serve_chaos.runtime.kuberay.api import KubeApi
from serve_chaos.runtime.kuberay.cluster import KubeRayCluster, KubeTargetConfig
from serve_chaos.runtime.local.cluster import LocalCluster
from tests.kuberay_fake import FakeApiClient, Store

ROOT = Path(__file__).resolve().parents[1]


def protocol_members() -> dict[str, object]:
    return {name: member for name, member in vars(Cluster).items()
            if not name.startswith("_") and (callable(member) or isinstance(member, property))}


def targets() -> list[object]:
    store = Store()
    return [LocalCluster(), KubeRayCluster(KubeTargetConfig(), api=KubeApi(lambda: FakeApiClient(store)),
                                           context_name="kind-serve-chaos")]


@pytest.mark.parametrize("cluster", targets(), ids=["local", "kuberay"])
def test_target_implements_the_protocol_with_its_signatures(cluster):
    assert isinstance(cluster, Cluster)
    for attr in ("name", "label", "created"):
        assert hasattr(cluster, attr), attr
    for name, member in protocol_members().items():
        impl = getattr(type(cluster), name)
        if isinstance(member, property):
            assert isinstance(impl, property), name
            continue
        want = inspect.signature(member).parameters
        got = inspect.signature(impl).parameters
        for pname, param in want.items():
            assert pname in got, f"{type(cluster).__name__}.{name} lacks parameter {pname}"
            assert got[pname].default == param.default, f"{type(cluster).__name__}.{name}({pname}) default differs"


def calls_on(path: Path, receiver: str) -> set[str]:
    """Attribute names called on ``receiver`` (e.g. ``cluster`` or ``self.cluster``) in a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if owner == receiver:
                found.add(node.func.attr)
    return found


def calls_on_all(package: Path, receiver: str) -> set[str]:
    """``calls_on`` over every module of a package (the fault families)."""
    return set().union(*(calls_on(path, receiver) for path in sorted(package.glob("*.py"))))


def test_the_engine_and_faults_call_only_what_the_protocol_declares():
    declared = set(protocol_members())
    used = calls_on_all(ROOT / "harness" / "faults", "cluster") | calls_on_all(ROOT / "harness" / "engine",
                                                                                "self.cluster")
    assert used, "found no calls at all: the test is looking in the wrong place"
    assert used <= declared, f"called but not declared in Cluster: {sorted(used - declared)}"
