"""The cluster network on this host: one bridge, the nodes' addresses on it, and the
nftables table that does what kube-proxy and the CNI's host rules do.

- The bridge (the local target's ``scb<label>``) holds the host's address (``.1``: the API
  server and every pod's default gateway) and each node's address (its kubelet endpoint and
  its NodePorts).
- Pods get a network namespace with a veth on the bridge (``serve_chaos.runtime.local.netns``) and a
  default route through the host, so they reach Service IPs.
- Service IPs (``10.96.0.0/16``) are routed onto the bridge, so a Service without endpoints
  is refused here and never leaves the machine; pods may reach nothing beyond the bridge
  (the forward hook drops it), and the host forwards only between pods.
- Forwarding between pods through a Service needs ``net.ipv4.ip_forward``; its old value is
  written back at teardown.

The Service rules themselves are rendered by ``serve_chaos.runtime.k8s.proxy`` into the same table.
"""

from __future__ import annotations

from pathlib import Path

from serve_chaos.runtime.k8s.layout import SERVICE_CIDR, K8sLayout
from serve_chaos.runtime.local import netns
from serve_chaos.runtime.local.commands import run

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def table_name(label: str) -> str:
    return f"serve_chaos_k8s_{label}"


def setup(layout: K8sLayout, node_indices: list[int]) -> str:
    """Create the bridge with the host's and the nodes' addresses; returns ip_forward's old value."""
    bridge = layout.run.bridge
    prefix = layout.network.prefixlen
    netns.create_bridge(bridge, layout.gateway, prefix)
    for index in node_indices:
        add_node_address(layout, index)
    run(["ip", "route", "replace", str(SERVICE_CIDR), "dev", bridge, "src", layout.gateway])
    old = IP_FORWARD.read_text().strip()
    IP_FORWARD.write_text("1")
    return old


def add_node_address(layout: K8sLayout, index: int) -> None:
    run(["ip", "addr", "replace", f"{layout.node_ip(index)}/{layout.network.prefixlen}", "dev", layout.run.bridge])


def teardown(layout: K8sLayout, ip_forward: str | None) -> None:
    run(["nft", "delete", "table", "ip", table_name(layout.label)], check=False)
    netns.delete_link(layout.run.bridge)
    if ip_forward is not None and ip_forward in ("0", "1"):
        try:
            IP_FORWARD.write_text(ip_forward)
        except OSError:
            pass


def base_rules(layout: K8sLayout) -> str:
    """The filter and masquerade chains (kube-proxy's ``--masquerade-all`` for traffic between pods:
    a pod talking to a Service whose endpoint sits on the same bridge must get its answers back
    through the host, where the connection's NAT is undone; pkg/proxy/nftables/proxier.go
    ``masquerading``)."""
    bridge = layout.run.bridge
    return f"""
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{bridge}" oifname != "{bridge}" drop
    oifname "{bridge}" iifname != "{bridge}" drop
    ip daddr {SERVICE_CIDR} ct status != dnat reject with icmp type port-unreachable
  }}
  chain output_filter {{
    type filter hook output priority filter; policy accept;
    ip daddr {SERVICE_CIDR} ct status != dnat reject with icmp type port-unreachable
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    iifname "{bridge}" oifname "{bridge}" ct status dnat masquerade
  }}
"""
