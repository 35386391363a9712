"""Per-pod load endpoints as role slots that follow their pod across recreations.

The load names where it sends with endpoint names (``LoadSpec.endpoints``).
``pods:<role>`` becomes one *slot* per pod of that role when the load starts, named by
role and ordinal (``pods:worker#1``, ``pods:worker#2``; ready pods first, a pod not yet
ready holds a vacant slot until it is);
``pod:<name>`` one slot that starts on that pod.  A slot keeps its name for the
whole run, so the traffic of a recreated pod counts as the same slot's.

A slot is held by one pod *incarnation* (UID and restart count, ``PodInfo``).
When that incarnation goes -- the pod deleted, its node lost, its container
restarted -- the slot is **vacant** until a successor is ready: the pod recreated
under the same name (the local target keeps names, the address changes), or, when
no pod of that name exists any more (KubeRay names every new pod afresh), a ready
pod of the same role that no other slot holds.  A successor must be ready because
Serve runs a proxy only on nodes that host replicas: a pod that never passed its
readiness check would measure nothing but refusals.  The load records a send to a
vacant slot without sending it (``VACANT``), so a slot is judged from when its pod
is back; the incarnation that stays in place but stops answering (a partition) is
never vacated -- its failures are the fault's to answer for.

``front`` (the front door) and ``role:<role>`` (an address the target keeps on the
current pod of a role) are not slots; their addresses are refreshed as given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable

from serve_chaos.runtime.cluster import POD_ROLES, ROLE_ENDPOINT, Endpoints, PodInfo
from serve_chaos.runtime.errors import ConfigError

FRONT_DOOR = "front"
#: Prefix of the slots ``pods:<role>`` expands to (``pods:worker#1``).
SLOTS_PREFIX = "pods:"
#: Prefix of a slot that starts on one named pod (``pod:worker-1``).
POD_PREFIX = "pod:"
#: Error class of a send the load did not make because its slot had no pod (``serve_chaos.harness.load.locustfile``).
VACANT = "slot_vacant"


def slot_name(role: str, ordinal: int) -> str:
    """The endpoint name of the ``ordinal``-th (from 1) slot of ``role``."""
    return f"{SLOTS_PREFIX}{role}#{ordinal}"


@dataclass(frozen=True)
class Target:
    """Where one endpoint's share of the load goes now.

    ``url``: the base every request path is appended to, None while the slot is
    vacant; ``pod`` and ``incarnation``: the pod incarnation a slot aims at (for a
    vacant slot, ``pod`` names the last one, whose successor it waits for);
    ``follows``: a slot (it follows pods) rather than a fixed address; ``keepalive``: the
    address is a port-forward, so the load keeps connections to it open.
    """

    name: str
    url: str | None
    role: str = ""
    pod: str | None = None
    incarnation: str | None = None
    follows: bool = False
    keepalive: bool = False

    def to_dict(self) -> dict[str, Any]:
        """What the Locust process reads (``serve_chaos.harness.load.locustfile``)."""
        out = asdict(self)
        del out["follows"]
        return out


def _check_name(name: str) -> tuple[str, str]:
    kind, _, rest = name.partition(":")
    if name != FRONT_DOOR and (kind not in ("pod", "pods", "role") or not rest):
        raise ConfigError(f"unknown load endpoint {name!r}",
                          hint="use 'front', 'role:head', 'pods:worker' or 'pod:<pod name>'")
    if kind in ("pods", "role") and rest not in POD_ROLES:
        raise ConfigError(f"load endpoint {name!r} names no role", hint=f"roles are: {', '.join(POD_ROLES)}")
    return kind, rest


def check_endpoint_names(names: Iterable[str]) -> None:
    """One-line ConfigError for an endpoint name the load cannot resolve."""
    for name in names:
        _check_name(name)


class SlotTable:
    """The load's endpoints, fixed in number for the run (the load sends to them in turn),
    with the pod behind each slot kept current by ``update``."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets

    @classmethod
    def start(cls, names: Iterable[str], endpoints: Endpoints, roles: dict[str, str],
              ready: set[str] | None = None, incarnations: dict[str, str] | None = None) -> "SlotTable":
        """The endpoints when the load starts.  ``roles``: pod -> role; ``ready``: pods that
        pass their readiness check (None: all); ``incarnations``: pod -> incarnation (what
        a slot follows; without it a slot keeps its first address)."""
        incarnations = incarnations or {}
        out: list[Target] = []
        for name in names:
            kind, rest = _check_name(name)
            if name == FRONT_DOOR:
                out.append(Target(FRONT_DOOR, endpoints.front_door))
            elif kind == "role":
                if rest not in endpoints.roles:
                    raise ConfigError(f"this target offers no endpoint for the current {rest} pod",
                                      hint=f"roles with one: {', '.join(sorted(endpoints.roles)) or 'none'}")
                out.append(Target(name, endpoints.roles[rest], rest))
            elif kind == "pods":
                of_role = [p for p in sorted(endpoints.pods) if roles.get(p) == rest]
                pods = [p for p in of_role if ready is None or p in ready]
                out += [Target(slot_name(rest, i), endpoints.pods[p], rest, p, incarnations.get(p), True)
                        for i, p in enumerate(pods, start=1)]
                # A pod not ready yet (no replica on its node, so no proxy) gets a vacant slot that
                # its pod fills once ready: the run loads every pod of the role it names.
                out += [Target(slot_name(rest, i), None, rest, p, None, True)
                        for i, p in enumerate([p for p in of_role if p not in pods], start=len(pods) + 1)]
            else:
                if rest not in endpoints.pods:
                    raise ConfigError(f"no pod named {rest!r} to aim load at",
                                      hint=f"pods are: {', '.join(sorted(endpoints.pods))}")
                out.append(Target(name, endpoints.pods[rest], roles.get(rest, ""), rest, incarnations.get(rest), True))
        if endpoints.forwarded:
            # A port-forward costs a websocket setup per connection (benchmarks/portforward_cost.py).
            out = [t if t.name == FRONT_DOOR else replace(t, keepalive=True) for t in out]
        return cls(out)

    def dicts(self) -> list[dict[str, Any]]:
        return [t.to_dict() for t in self.targets]

    def update(self, pods: list[PodInfo], endpoints: Endpoints) -> bool:
        """Point every slot at its pod's current incarnation and address; True when anything changed."""
        new = list(self.targets)
        for i, target in enumerate(self.targets):
            if target.name == FRONT_DOOR:
                new[i] = replace(target, url=endpoints.front_door)
            elif target.name.startswith(ROLE_ENDPOINT):
                new[i] = replace(target, url=endpoints.roles.get(target.role, target.url))
            elif target.follows and not (target.incarnation is None and target.url is not None):
                # (A slot started without incarnations has nothing to follow by: it stays.)
                taken = {t.pod for j, t in enumerate(new) if j != i}
                new[i] = _follow(target, pods, endpoints, taken)
        changed = new != self.targets
        self.targets = new
        return changed


def _follow(slot: Target, pods: list[PodInfo], endpoints: Endpoints, taken: set[str | None]) -> Target:
    """The slot kept on its incarnation while it lives, else vacant or on its successor."""
    holder = next((p for p in pods if p.incarnation == slot.incarnation), None) if slot.incarnation else None
    if holder is not None:
        return replace(slot, url=endpoints.pods.get(holder.name, slot.url))
    successor = _successor(slot, pods, endpoints, taken)
    if successor is None:
        return replace(slot, url=None, incarnation=None)
    return replace(slot, url=endpoints.pods[successor.name], pod=successor.name, incarnation=successor.incarnation)


def _successor(slot: Target, pods: list[PodInfo], endpoints: Endpoints, taken: set[str | None]) -> PodInfo | None:
    """The pod recreated under the slot's pod name, else a pod of its role no other slot
    holds; only once it is Running, ready and reachable."""
    same_name = [p for p in pods if p.name == slot.pod]
    candidates = same_name or [p for p in pods if p.role == slot.role and p.name not in taken]
    ready = [p for p in candidates if p.ready and p.phase == "Running" and p.name in endpoints.pods]
    return min(ready, key=lambda p: p.name) if ready else None
