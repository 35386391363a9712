"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler: their certificates,
kubeconfigs and command lines, set up as kubeadm sets up kind's control plane
(``cmd/kubeadm/app/phases/controlplane/manifests.go``), with the differences this
machine asks for: the API server listens on the cluster bridge's host address, etcd on
loopback ports picked free, nothing serves metrics or profiling, and nobody elects a leader
(one of each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from serve_chaos.runtime.k8s.build import Binaries
from serve_chaos.runtime.k8s.layout import API_SERVICE_IP, CLUSTER_DOMAIN, CONTEXT, SERVICE_CIDR, K8sLayout, NodeSpec
from serve_chaos.runtime.k8s.pki import CertificateAuthority, CertPair, kubeconfig, service_account_keys
from serve_chaos.runtime.ports import free_port

#: The admission plugins kind's API server runs beyond the defaults (kubeadm enables NodeRestriction):
#: a node may change only itself and the pods bound to it.
ADMISSION = "NodeRestriction"


@dataclass(frozen=True)
class Component:
    """One control-plane process: its name (its log file and role marker) and command line."""

    name: str
    argv: list[str]


@dataclass(frozen=True)
class ControlPlane:
    layout: K8sLayout
    binaries: Binaries
    etcd_client_port: int
    etcd_peer_port: int

    @classmethod
    def plan(cls, layout: K8sLayout, binaries: Binaries) -> "ControlPlane":
        return cls(layout, binaries, free_port(), free_port())

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.layout.pki)

    def prepare(self, nodes: list[NodeSpec]) -> None:
        """Certificates and kubeconfigs for every component, the admin and each node."""
        ca = self.ca
        names = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "localhost")
        ca.issue("apiserver", "kube-apiserver", server=True, dns=names,
                 ips=(API_SERVICE_IP, self.layout.gateway, "127.0.0.1"))
        ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",), client=True)
        service_account_keys(self.layout.pki)
        users = {"admin": ("kubernetes-admin", ("system:masters",)),
                 "controller-manager": ("system:kube-controller-manager", ()),
                 "scheduler": ("system:kube-scheduler", ()),
                 # kube-proxy's identity: the bootstrap binding gives it system:node-proxier.
                 "kube-proxy": ("system:kube-proxy", ())}
        for user, (common, orgs) in users.items():
            self._write_kubeconfig(user, ca.issue(user, common, orgs, client=True))
        for node in nodes:
            ip = self.layout.node_ip(node.index)
            ca.issue(f"node-{node.name}-serving", f"system:node:{node.name}", ("system:nodes",), server=True,
                     dns=(node.name,), ips=(ip,))
            self._write_kubeconfig(f"node-{node.name}",
                                   ca.issue(f"node-{node.name}", f"system:node:{node.name}", ("system:nodes",),
                                            client=True))

    def _write_kubeconfig(self, user: str, pair: CertPair) -> None:
        path = self.layout.kubeconfig(user)
        path.write_text(yaml.safe_dump(kubeconfig(self.layout.api_url, self.ca.pair.cert, pair, user, CONTEXT)))
        path.chmod(0o600)

    def node_serving(self, node: str) -> CertPair:
        return CertPair(self.layout.pki / f"node-{node}-serving.crt", self.layout.pki / f"node-{node}-serving.key")

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_client_port}"

    def etcd(self) -> Component:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return Component("etcd", [
            str(self.binaries.path("etcd")), "--name=serve-chaos", f"--data-dir={self.layout.etcd_dir}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=serve-chaos={peer}", "--initial-cluster-state=new",
            # A test cluster's data dies with it: no fsync (what KubeRay's and kind's CI would gain from tmpfs).
            "--unsafe-no-fsync=true", "--log-level=warn", "--listen-metrics-urls=",
        ])

    def apiserver(self) -> Component:
        pki = self.layout.pki
        return Component("kube-apiserver", [
            str(self.binaries.path("kube-apiserver")),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={self.layout.gateway}", f"--advertise-address={self.layout.gateway}",
            f"--secure-port={self.layout.api_port}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC", f"--enable-admission-plugins={ADMISSION}",
            "--allow-privileged=true", "--profiling=false", "--v=1",
        ])

    def controller_manager(self) -> Component:
        pki = self.layout.pki
        config = self.layout.kubeconfig("controller-manager")
        return Component("kube-controller-manager", [
            str(self.binaries.path("kube-controller-manager")),
            f"--kubeconfig={config}", f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            f"--root-ca-file={pki / 'ca.crt'}", f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            # Each controller acts as its own service account under its bootstrap role, as kubeadm sets it.
            "--use-service-account-credentials=true",
            # Every default controller (garbage collector, PodGC, EndpointSlice, Job, node lifecycle,
            # Deployment, ReplicaSet, namespace, service account, PV binder, ...); no cloud, no node IPAM.
            "--controllers=*", "--leader-elect=false", "--profiling=false", "--v=1",
        ])

    def scheduler(self) -> Component:
        config = self.layout.kubeconfig("scheduler")
        return Component("kube-scheduler", [
            str(self.binaries.path("kube-scheduler")),
            f"--kubeconfig={config}", f"--authentication-kubeconfig={config}", f"--authorization-kubeconfig={config}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            "--leader-elect=false", "--profiling=false", "--v=1",
        ])
