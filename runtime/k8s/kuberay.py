"""The KubeRay operator on the k8s target, installed as its helm chart installs it.

What ``helm install kuberay-operator kuberay/kuberay-operator --namespace kuberay-system``
renders with the chart's default values (``helm-chart/kuberay-operator``: templates
``deployment.yaml``, ``serviceaccount.yaml``, ``role.yaml``/``rolebinding.yaml``,
``leader_election_role*.yaml``, ``service.yaml``; ``values.yaml``), written out here because no
helm runs on our machines: the CRDs, the ClusterRole's rules and the leader-election Role's
come from the operator module's own ``config/`` (``config/crd/bases``, ``config/rbac/role.yaml``,
``config/rbac/leader_election_role.yaml``), downloaded with the operator from the Go module
proxy, the same rules the chart's ``role.consistentRules`` holds; the Deployment runs image
``quay.io/kuberay/operator:<version>`` -- the binary built here -- with the chart's
``/manager`` command, arguments, probes, resources and one replica, placed like ``kind up``
places it (next to the Ray head, ``--set-string nodeSelector...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from serve_chaos.runtime.k8s.build import Binaries
from serve_chaos.runtime.waiting import NotYet, wait_until

NAMESPACE = "kuberay-system"
NAME = "kuberay-operator"
#: The chart's default feature gates (values.yaml ``featureGates``, rendered by ``kuberay.featureGates``).
FEATURE_GATES = {"v1.6.2": "RayClusterStatusConditions=true,RayJobDeletionPolicy=true,RayMultiHostIndexing=true,"
                           "RayServiceIncrementalUpgrade=false,RayCronJob=false"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def crds(source: Path) -> list[dict[str, Any]]:
    return [doc for f in sorted((source / "config" / "crd" / "bases").glob("*.yaml")) for doc in _docs(f)]


def _labels(version: str) -> dict[str, str]:
    """The chart's ``kuberay-operator.labels``."""
    return {"app.kubernetes.io/name": NAME, "helm.sh/chart": f"{NAME}-{version.lstrip('v')}",
            "app.kubernetes.io/instance": NAME, "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/component": NAME}


def chart_objects(binaries: Binaries, node_selector: dict[str, str] | None) -> list[dict[str, Any]]:
    version = binaries.kuberay_version
    labels = _labels(version)
    rbac = binaries.kuberay_source / "config" / "rbac"
    cluster_role = _docs(rbac / "role.yaml")[0]
    election = _docs(rbac / "leader_election_role.yaml")[0]
    meta = {"labels": labels}
    args = ["--log-stdout-encoder", "json", "--log-file-encoder", "json", "--enable-leader-election=true",
            "--enable-metrics=true", "--reconcile-concurrency=1", "--qps=100", "--burst=200"]
    if version in FEATURE_GATES:
        args.append(f"--feature-gates={FEATURE_GATES[version]}")
    probe = {"httpGet": {"path": "/metrics", "port": "http"}, "initialDelaySeconds": 10, "periodSeconds": 5,
             "failureThreshold": 5}
    pod_spec: dict[str, Any] = {
        "serviceAccountName": NAME,
        "containers": [{
            "name": NAME, "image": f"quay.io/kuberay/operator:{version}", "imagePullPolicy": "IfNotPresent",
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "command": ["/manager"], "args": args,
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "livenessProbe": probe, "readinessProbe": probe,
            "resources": {"limits": {"cpu": "100m", "memory": "512Mi"}},
        }],
    }
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    selector = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": NAME}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": NAMESPACE, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": NAME, **meta}, "rules": cluster_role["rules"]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": NAME, **meta},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
         "roleRef": {"kind": "ClusterRole", "name": NAME, "apiGroup": "rbac.authorization.k8s.io"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": f"{NAME}-leader-election", "namespace": NAMESPACE, **meta}, "rules": election["rules"]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": f"{NAME}-leader-election", "namespace": NAMESPACE, **meta},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
         "roleRef": {"kind": "Role", "name": f"{NAME}-leader-election", "apiGroup": "rbac.authorization.k8s.io"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": NAMESPACE, **meta},
         "spec": {"type": "ClusterIP", "selector": selector,
                  "ports": [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, "namespace": NAMESPACE, **meta},
         "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": selector},
                  "template": {"metadata": {"labels": {**selector, "app.kubernetes.io/component": NAME}},
                               "spec": pod_spec}}},
    ]


def install(kubectl: Callable[..., str], apply: Callable[[list[dict[str, Any]]], None], binaries: Binaries,
            node_selector: dict[str, str] | None) -> None:
    """CRDs first (and established), then the chart's objects."""
    definitions = crds(binaries.kuberay_source)
    apply(definitions)

    def established() -> None:
        # ``kubectl wait --for=condition=Established`` fails on a CRD whose status has no conditions yet.
        for crd in definitions:
            name = crd["metadata"]["name"]
            state = kubectl("get", "crd", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Established")].status}')
            if state.strip() != "True":
                raise NotYet(f"CRD {name} is not established")

    wait_until(established, 60, 0.5, what="KubeRay's CRDs to be established", retry_on=(NotYet,))
    apply(chart_objects(binaries, node_selector))
