"""Who is who in a snapshot: lives of Serve actors and of pods, and the victims of a fault.

An actor's life is its actor id and PID: the id tells actors apart across pods
(each pod has its own PID namespace, so PIDs repeat), the PID tells a restart of
the same actor from its life before.  A pod's life is its UID and its restart
count: a recreated pod gets a new UID, a container restarted in place the same
UID and one more restart.
"""

from __future__ import annotations

from typing import Any, Iterable

from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import incarnation

ROLES = ("replica", "proxy", "controller")
#: A victim that is a deployment option's old value (an operator's change): gone once Serve runs the new one.
CONFIG = "config"


def actor_key(actor: dict[str, Any]) -> str:
    """One life of a Serve actor.  The actor id tells actors apart across pods (each
    pod has its own PID namespace, so PIDs repeat); the PID tells a restart of the
    same actor (Ray keeps its id) from the life before."""
    return f"{actor.get('actor_id')}:{actor.get('pid')}"


def replica_keys(snap: Snapshot, running_only: bool = True) -> frozenset[str]:
    return frozenset(
        actor_key(a)
        for a in snap.actors
        if a["role"] == "replica" and a.get("actor_id") and (not running_only or a.get("state") == "RUNNING")
    )


def role_keys(snap: Snapshot, role: str) -> frozenset[str]:
    return frozenset(actor_key(a) for a in snap.actors if a["role"] == role and a.get("actor_id"))


def pod_lives(snap: Snapshot) -> dict[str, str]:
    """Running pods by incarnation (UID and in-place restarts) -> pod name."""
    return {incarnation(p.get("uid", ""), p.get("restarts")): p["name"] for p in snap.pods
            if p.get("uid") and p.get("phase") in ("Running", None)}


def pod_roles(snapshots: Iterable[Snapshot]) -> dict[str, str]:
    """Pod name -> role, from every snapshot given."""
    return {p["name"]: p.get("role", "") for s in snapshots for p in s.pods if p.get("name")}


def victim_key(victim: dict[str, Any]) -> str | None:
    """What identifies a victim's life: a pod incarnation or an actor key."""
    if victim.get("role") == "pod":
        return incarnation(victim.get("uid", ""), victim.get("restarts")) if victim.get("uid") else None
    return actor_key(victim) if victim.get("actor_id") else None


def deployed_option(snap: Snapshot, app: str, deployment: str, path: str) -> tuple[bool, Any]:
    """``(known, value)`` of a deployment option as Serve deployed it (``path`` is dotted, e.g.
    ``ray_actor_options.runtime_env.env_vars.X``); not known while the app is not listed."""
    dep = ((snap.apps.get(app) or {}).get("deployments") or {}).get(deployment)
    if dep is None:
        return False, None
    value: Any = dep.get("config") or {}
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return True, value


def victim_present(snap: Snapshot, victim: dict[str, Any]) -> bool:
    """Whether the snapshot still shows this life of the victim (same actor id and PID,
    or same pod UID and restart count), or, for a ``config`` victim (an operator's change),
    whether Serve still runs the option's old value."""
    role = victim.get("role")
    if role == CONFIG:
        known, value = deployed_option(snap, victim["app"], victim["deployment"], victim["option"])
        return known and value != victim.get("new")
    if role in ROLES:
        for actor in snap.actors:
            if actor["role"] != role:
                continue
            if victim.get("actor_id"):
                if actor.get("actor_id") == victim["actor_id"] and (
                        not victim.get("pid") or actor.get("pid") == victim["pid"]):
                    return True
            elif victim.get("pid") and actor.get("pid") == victim["pid"] and actor.get("pod") == victim.get("pod"):
                return True
        return False
    if role == "pod":
        return victim_key(victim) in pod_lives(snap)
    return False


def victims_observable(snap: Snapshot, victims: list[dict[str, Any]]) -> bool:
    needs_actors = any(v.get("role") in ROLES for v in victims)
    needs_pods = any(v.get("role") == "pod" for v in victims)
    needs_serve = any(v.get("role") == CONFIG for v in victims)
    return (not needs_actors or snap.actors_ok) and (not needs_pods or snap.pods_ok) and (
        not needs_serve or snap.serve_ok)
