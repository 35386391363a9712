"""Cluster DNS on the k8s target: what CoreDNS answers in kind, from the Service proxy's view.

kubeadm's Corefile (``cmd/kubeadm/app/phases/addons/dns/manifests.go``), which kind runs:
``kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure ... ttl 30 }`` and ``cache 30``.
So here:
- ``<svc>.<ns>.svc.cluster.local`` is the Service's ClusterIP, or for a headless Service the
  addresses of its endpoints (ready ones; all with ``publishNotReadyAddresses``);
- ``a-b-c-d.<ns>.pod.cluster.local`` is ``a.b.c.d`` (``pods insecure``);
- records live 30 s, and an answer is cached for up to 30 s, as CoreDNS's cache plugin does --
  a Service whose endpoints changed may be answered with the old addresses that long;
- any other name is NXDOMAIN at once (kind forwards it to the host's resolver; our machines
  have no network to forward to), and AAAA queries for cluster names have no answer (IPv4 only).
Served with ``dnslib`` on the host's address on the cluster bridge, UDP and TCP port 53;
pods' ``resolv.conf`` points there (kind's kubelet points at the kube-dns Service instead).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from serve_chaos.runtime.k8s.layout import CLUSTER_DOMAIN

TTL_S = 30
CACHE_S = 30.0


def lookup(name: str, services: list[dict[str, Any]]) -> list[str] | None:
    """The IPv4 addresses of a cluster name, [] for a cluster name without addresses, None for a
    name outside the cluster."""
    name = name.rstrip(".").lower()
    suffix = f".svc.{CLUSTER_DOMAIN}"
    if name.endswith(suffix):
        parts = name[: -len(suffix)].split(".")
        if len(parts) == 2:
            svc, ns = parts
            for s in services:
                if s["name"] == svc and s["namespace"] == ns:
                    return list(s.get("addresses") or [])
        return None
    pod_suffix = f".pod.{CLUSTER_DOMAIN}"
    if name.endswith(pod_suffix):
        parts = name[: -len(pod_suffix)].split(".")
        if len(parts) == 2 and parts[0].count("-") == 3:
            return [parts[0].replace("-", ".")]
    return None


class ClusterResolver(BaseResolver):
    def __init__(self, services: Callable[[], list[dict[str, Any]]]) -> None:
        self.services = services
        self.cache: dict[str, tuple[float, list[str] | None]] = {}
        self.lock = threading.Lock()

    def _cached(self, name: str) -> list[str] | None:
        now = time.monotonic()
        with self.lock:
            hit = self.cache.get(name)
            if hit is not None and now - hit[0] < CACHE_S:
                return hit[1]
        found = lookup(name, self.services())
        with self.lock:
            self.cache[name] = (now, found)
        return found

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname)
        found = self._cached(qname.lower())
        if found is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype in (QTYPE.A, QTYPE.ANY):
            for address in found:
                reply.add_answer(RR(qname, QTYPE.A, rdata=A(address), ttl=TTL_S))
        return reply


def serve(address: str, services: Callable[[], list[dict[str, Any]]]) -> list[DNSServer]:
    """Start UDP and TCP servers on ``address``:53 (threads); stop them with ``server.stop()``."""
    resolver = ClusterResolver(services)
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [DNSServer(resolver, address=address, port=53, tcp=tcp, logger=quiet) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    return servers
