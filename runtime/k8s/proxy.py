"""What kube-proxy and cluster DNS do, from Services and EndpointSlices: pure functions.

**Service rules** (kube-proxy's nftables mode, ``pkg/proxy/nftables/proxier.go``): a packet
to a Service's ClusterIP and port -- or to any node's address at its NodePort -- is
DNAT-ed to one of the Service's ready endpoints, chosen at random (``numgen random``, as
kube-proxy's ``service-...`` chains do); a Service with no ready endpoint is refused by the
filter chain of ``serve_chaos.runtime.k8s.network``.  Endpoints come from EndpointSlices (label
``kubernetes.io/service-name``), ready ones only (``conditions.ready``; kube-proxy falls
back to serving-and-terminating ones only when none is ready, which we do too), the target
port looked up by the Service port's name in the slice (``pkg/proxy/endpointslicecache.go``).

**Names**: a Service's DNS name is its ClusterIP, or for a headless Service every ready
endpoint's address (all of them with ``publishNotReadyAddresses``); ``dns.py`` serves them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from serve_chaos.runtime.k8s.layout import CLUSTER_DOMAIN


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: str
    node_port: int | None
    #: (address, port) of every endpoint that takes traffic.
    endpoints: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    cluster_ip: str | None  # None: headless
    ports: tuple[ServicePort, ...]
    #: Addresses DNS gives for a headless Service.
    dns_addresses: tuple[str, ...] = ()

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{CLUSTER_DOMAIN}"

    def addresses(self) -> tuple[str, ...]:
        return (self.cluster_ip,) if self.cluster_ip else self.dns_addresses

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "cluster_ip": self.cluster_ip,
                "addresses": list(self.addresses()),
                "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in self.ports]}


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else default


def _endpoints(slices: list[dict[str, Any]], port_name: str) -> tuple[tuple[str, int], ...]:
    """Ready endpoints of ``port_name``; if none is ready, the serving ones (terminating included)."""
    ready: list[tuple[str, int]] = []
    serving: list[tuple[str, int]] = []
    for sl in slices:
        if _get(sl, "addressType", "IPv4") != "IPv4":
            continue
        ports = [p for p in (_get(sl, "ports") or []) if (_get(p, "name") or "") == port_name]
        if not ports or _get(ports[0], "port") is None:
            continue
        target = int(ports[0]["port"])
        for ep in _get(sl, "endpoints") or []:
            cond = _get(ep, "conditions") or {}
            for address in _get(ep, "addresses") or []:
                if cond.get("ready") is not False:
                    ready.append((address, target))
                elif cond.get("serving"):
                    serving.append((address, target))
    return tuple(sorted(set(ready or serving)))


def _dns_addresses(slices: list[dict[str, Any]], publish_not_ready: bool) -> tuple[str, ...]:
    found = set()
    for sl in slices:
        for ep in _get(sl, "endpoints") or []:
            cond = _get(ep, "conditions") or {}
            if publish_not_ready or cond.get("ready") is not False:
                found.update(_get(ep, "addresses") or [])
    return tuple(sorted(found))


def services(svc_objects: list[dict[str, Any]], slice_objects: list[dict[str, Any]]) -> list[Service]:
    """Services (API objects as dicts) joined with their EndpointSlices."""
    by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for sl in slice_objects:
        meta = sl.get("metadata") or {}
        owner = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if owner:
            by_service.setdefault((meta.get("namespace", ""), owner), []).append(sl)
    out = []
    for svc in svc_objects:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            continue
        slices = by_service.get((meta.get("namespace", ""), meta.get("name", "")), [])
        cluster_ip = spec.get("clusterIP")
        headless = not cluster_ip or cluster_ip == "None"
        ports = tuple(ServicePort(p.get("name") or "", int(p["port"]), p.get("protocol") or "TCP",
                                  p.get("nodePort"), _endpoints(slices, p.get("name") or ""))
                      for p in spec.get("ports") or [])
        out.append(Service(meta.get("namespace", ""), meta.get("name", ""), None if headless else cluster_ip, ports,
                           _dns_addresses(slices, bool(spec.get("publishNotReadyAddresses"))) if headless else ()))
    return sorted(out, key=lambda s: (s.namespace, s.name))


def _chain(service: Service, port: ServicePort) -> str:
    key = f"{service.namespace}/{service.name}:{port.name or port.port}"
    return "svc_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def render_rules(table: str, base: str, svcs: list[Service], node_ips: list[str]) -> str:
    """The whole nftables table, to load atomically (``nft -f``): ``base`` chains plus the Services'."""
    dispatch: list[str] = []
    chains: list[str] = []
    for svc in svcs:
        for port in svc.ports:
            if port.protocol != "TCP" or not port.endpoints:
                continue
            name = _chain(svc, port)
            if svc.cluster_ip:
                dispatch.append(f"    ip daddr {svc.cluster_ip} tcp dport {port.port} jump {name}")
            if port.node_port and node_ips:
                dispatch.append(f"    ip daddr {{ {', '.join(node_ips)} }} tcp dport {port.node_port} jump {name}")
            targets = [f"{i} : jump {name}_{i}" for i in range(len(port.endpoints))]
            chains.append(f"  chain {name} {{\n    numgen random mod {len(port.endpoints)} vmap "
                          f"{{ {', '.join(targets)} }}\n  }}")
            for i, (address, target) in enumerate(port.endpoints):
                chains.append(f"  chain {name}_{i} {{\n    meta l4proto tcp dnat ip to {address}:{target}\n  }}")
    services_chain = "  chain services {\n" + "\n".join(dispatch) + "\n  }"
    nat = ("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }\n"
           "  chain output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }")
    body = "\n".join([base.rstrip(), services_chain, *chains, nat])
    # Add, then delete, then define: one transaction that replaces whatever was there.
    return f"add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n{body}\n}}\n"


@dataclass(frozen=True)
class PodHosts:
    """A pod's hosts file as the kubelet writes it (``pkg/kubelet/kubelet_pods.go``
    managedHostsFileContent), with the cluster's names after it."""

    pod_ip: str
    hostname: str

    def render(self) -> str:
        lines = ["# Kubernetes-managed hosts file.",
                 "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes",
                 "fe00::2\tip6-allrouters", f"{self.pod_ip}\t{self.hostname}"]
        return "\n".join(lines) + "\n"


def service_env(svcs: list[dict[str, Any]], namespace: str, links: bool) -> dict[str, str]:
    """The Service variables the kubelet gives a container (``pkg/kubelet/envvars/envvars.go``
    FromServices): the API server's Service always, every Service of the pod's namespace when
    ``enableServiceLinks`` (the default)."""
    env: dict[str, str] = {}
    for svc in svcs:
        is_master = svc["namespace"] == "default" and svc["name"] == "kubernetes"
        if not svc.get("cluster_ip") or not (is_master or (links and svc["namespace"] == namespace)):
            continue
        prefix = svc["name"].upper().replace("-", "_")
        ip = svc["cluster_ip"]
        ports = svc.get("ports") or []
        if not ports:
            continue
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        first = ports[0]
        proto = first["protocol"].lower()
        env[f"{prefix}_PORT"] = f"{proto}://{ip}:{first['port']}"
        for p in ports:
            pre = f"{prefix}_PORT_{p['port']}_{p['protocol'].upper()}"
            env[pre] = f"{p['protocol'].lower()}://{ip}:{p['port']}"
            env[f"{pre}_PROTO"] = p["protocol"].lower()
            env[f"{pre}_PORT"] = str(p["port"])
            env[f"{pre}_ADDR"] = ip
    return env
