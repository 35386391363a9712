"""Pod networking in namespace mode: a bridge of our own, one netns + veth per pod.

Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking range), which exists
only on our bridge, so no packet of ours can reach anything else.  A partition
is an nftables table inside the pod's namespace that drops every IP packet but
loopback: ARP still answers, so peers see silence, not refusals.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from serve_chaos.runtime.local.commands import run

NETNS_DIR = Path("/run/netns")
SUBNET_BASE = ipaddress.ip_network("198.18.0.0/15")
PARTITION_TABLE = "serve_chaos_partition"


@dataclass(frozen=True)
class PodNet:
    """One pod's network: its namespace, host-side veth and address."""

    netns: str
    host_if: str
    ip: str
    prefix: int

    @property
    def netns_path(self) -> str:
        return str(NETNS_DIR / self.netns)


def netns_supported() -> tuple[bool, str]:
    """Whether this process can create namespaces, and if not why (one line)."""
    if os.uname().sysname != "Linux":
        return False, "network namespaces need Linux"
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    for tool in ("ip", "nsenter"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]):
            return False, f"{tool} is missing (apt-get install iproute2 util-linux)"
    return True, ""


def nft_available() -> bool:
    return any(Path(d, "nft").exists() for d in ("/usr/sbin", "/sbin", "/usr/bin"))


def used_subnets() -> set[ipaddress.IPv4Network]:
    """The /24s of 198.18.0.0/15 that some interface of this host already uses."""
    out = run(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    used: set[ipaddress.IPv4Network] = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" not in parts:
            continue
        iface = ipaddress.ip_interface(parts[parts.index("inet") + 1])
        if iface.ip in SUBNET_BASE:
            used.add(ipaddress.ip_network(f"{iface.ip}/24", strict=False))
    return used


def pick_subnet() -> ipaddress.IPv4Network:
    """A /24 in 198.18.0.0/15 that no interface here uses yet."""
    used = used_subnets()
    for net in SUBNET_BASE.subnets(new_prefix=24):
        if net not in used:
            return net
    raise RuntimeError("no free /24 left in 198.18.0.0/15")


def create_bridge(name: str, gateway: str, prefix: int) -> None:
    run(["ip", "link", "add", name, "type", "bridge"])
    run(["ip", "addr", "add", f"{gateway}/{prefix}", "dev", name])
    run(["ip", "link", "set", name, "up"])


def delete_link(name: str) -> None:
    run(["ip", "link", "del", name], check=False)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def create_pod_net(bridge: str, net: PodNet) -> None:
    """Make ``net.netns`` with a veth to ``bridge``; inside it the pod sees ``eth0`` + ``lo``."""
    peer = net.host_if[:-1] + "n"
    delete_pod_net(net)
    run(["ip", "netns", "add", net.netns])
    run(["ip", "link", "add", net.host_if, "type", "veth", "peer", "name", peer])
    run(["ip", "link", "set", peer, "netns", net.netns])
    run(["ip", "link", "set", net.host_if, "master", bridge, "up"])
    run(["ip", "-n", net.netns, "link", "set", peer, "name", "eth0"])
    run(["ip", "-n", net.netns, "addr", "add", f"{net.ip}/{net.prefix}", "dev", "eth0"])
    run(["ip", "-n", net.netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", net.netns, "link", "set", "lo", "up"])


def delete_pod_net(net: PodNet) -> None:
    delete_link(net.host_if)
    delete_netns(net.netns)


def delete_netns(name: str) -> None:
    if (NETNS_DIR / name).exists():
        run(["ip", "netns", "del", name], check=False)


def list_netns(prefix: str) -> list[str]:
    if not NETNS_DIR.exists():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def list_links(prefix: str) -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix))


def partition_rules(reject: bool = False) -> str:
    """The nftables ruleset that cuts a namespace off, loopback aside: every packet dropped silently
    (no RST, no ICMP), or with ``reject`` refused both ways -- a TCP reset for TCP, ICMP unreachable
    for the rest -- as a peer sees a firewall that rejects or a restarting sidecar: a connection
    error at once, not a timeout."""
    policy, refuse = ("accept", " meta l4proto tcp reject with tcp reset; reject;") if reject else ("drop", "")
    # The resets and unreachables the input chain answers with leave through the output chain:
    # let them out, or the peer sees silence (a reject never answers an RST or an ICMP error).
    answers = (" tcp flags & rst == rst accept; icmp type destination-unreachable accept;"
               " icmpv6 type destination-unreachable accept;") if reject else ""
    return f"""
table inet {PARTITION_TABLE} {{
  chain input {{ type filter hook input priority -300; policy {policy}; iif "lo" accept;{refuse} }}
  chain output {{ type filter hook output priority -300; policy {policy}; oif "lo" accept;{answers}{refuse} }}
}}
"""


def partition(netns: str, reject: bool = False) -> None:
    run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input_text=partition_rules(reject),
        hint="install nftables (apt-get install nftables)")


def unpartition(netns: str) -> None:
    run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", PARTITION_TABLE], check=False)


def nsenter_prefix(net: PodNet, *more: str) -> list[str]:
    """Command prefix that runs a program inside the pod's network namespace (and whatever
    other namespaces ``more`` options of nsenter name).

    nsenter (not ``ip netns exec``) because the latter remounts /sys, and we
    want the process to stay in the cgroup it joined before entering.
    """
    return ["nsenter", f"--net={net.netns_path}", *more, "--"]
