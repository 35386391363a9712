"""Operator actions under load -- planned disruptions: an in-place update, a rolling update and a
scale-down of the Serve config, as an operator (or a CD pipeline) applies them.

Each changes one option of the aimed deployments (every deployment when not aimed), read from
what Serve deployed (the probe's ``deployment_config``) so ``--dry-run`` names the change, and
written into the config the cluster keeps desired (``Cluster.update_serve_config``: leased,
and healed by putting the original config back).  The option's old value is a victim of kind
``config``: the change took effect, and the rollout is complete, once Serve runs the new one.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from serve_chaos.harness.faults.base import Fault, FaultPlan, NoSuchDeployment, actor_victim, aimed, record
from serve_chaos.harness.observe.history import FaultRecord
from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.runtime.cluster import Cluster, PodInfo

#: The env var a rolling update sets in the replicas' runtime_env (a new version of nothing else).
ROLLOUT_ENV = "SERVE_CHAOS_ROLLOUT"
#: Added to a dict ``user_config`` by an in-place update: an app's ``reconfigure`` gets a new config.
REVISION_KEY = "serve_chaos_revision"


@dataclass(frozen=True)
class Change:
    """One option of one deployment: from ``old`` to ``new`` (``option`` is a dotted path)."""

    app: str
    deployment: str
    option: str
    old: Any
    new: Any

    def victim(self, **extra: Any) -> dict[str, Any]:
        return {"role": "config", "app": self.app, "deployment": self.deployment, "option": self.option,
                "old": self.old, "new": self.new, **extra}

    def text(self) -> str:
        return f"{self.app}/{self.deployment} {self.option}: {self.old!r} -> {self.new!r}"


def deployed(snap: Snapshot) -> list[tuple[str, str, dict[str, Any]]]:
    """``(app, deployment, {config, target_num_replicas})`` of everything Serve deployed."""
    return [(app, name, dep) for app, info in sorted(snap.apps.items())
            for name, dep in sorted((info.get("deployments") or {}).items())]


def set_option(config: dict[str, Any], change: Change) -> None:
    """Write ``change.new`` into the Serve config (Serve's schema) at the deployment's option,
    adding the deployment's entry when the config left it to the code's defaults."""
    app = next((a for a in config.get("applications", []) if a.get("name", "default") == change.app), None)
    if app is None:
        raise NoSuchDeployment(f"the desired Serve config has no application {change.app}")
    deps = app.setdefault("deployments", [])
    dep = next((d for d in deps if d.get("name") == change.deployment), None)
    if dep is None:
        dep = {"name": change.deployment}
        deps.append(dep)
    *parents, leaf = change.option.split(".")
    node = dep
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = copy.deepcopy(change.new)


@dataclass(frozen=True)
class ConfigChange(Fault):
    """Base of the operator actions: change one option of the aimed deployments."""

    requires: ClassVar[tuple[str, ...]] = ("update_serve_config",)
    aimable: ClassVar[bool] = True
    heal_after_recovery: ClassVar[bool] = True
    #: Whether the old replicas of the changed deployments are expected to go (a rolling update).
    replaces_replicas: ClassVar[bool] = False

    def change_of(self, app: str, name: str, dep: dict[str, Any], rng: random.Random) -> Change | None:
        raise NotImplementedError

    def targets(self, snap: Snapshot) -> list[tuple[str, str, dict[str, Any]]]:
        found = deployed(snap)
        if self.deployment is not None and "/" in self.deployment:
            app, _, name = self.deployment.partition("/")
            found = [d for d in found if (d[0], d[1]) == (app, name)]
            if not found:
                raise NoSuchDeployment(f"the app has no deployment {self.deployment}")
        return found

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        changes = [c for app, name, dep in self.targets(snap) if (c := self.change_of(app, name, dep, rng))]
        if not changes:
            raise NoSuchDeployment(f"no deployment of the app can take a {self.name.replace('_', ' ')}")
        victims = [c.victim() for c in changes]
        if self.replaces_replicas:
            changed = {(c.app, c.deployment) for c in changes}
            # Replaced on purpose, on every pod: their pods are not struck (``endpoints.hit_pods``).
            victims += [{**actor_victim(a), "replaced_by_change": True} for a in aimed(snap, None)
                        if (a.get("app"), a.get("deployment")) in changed]
        return FaultPlan(self.name, f"{self.summary}: " + "; ".join(c.text() for c in changes), victims,
                         {"changes": [c.victim() for c in changes], **self.extra_params(snap, changes)})

    def extra_params(self, snap: Snapshot, changes: list[Change]) -> dict[str, Any]:
        return {}

    def inject(self, cluster: Cluster, plan: FaultPlan) -> FaultRecord:
        config = copy.deepcopy(cluster.serve_config())
        changes = [Change(c["app"], c["deployment"], c["option"], c["old"], c["new"]) for c in plan.params["changes"]]
        for change in changes:
            set_option(config, change)
        action = cluster.update_serve_config(config, "; ".join(c.text() for c in changes))
        return record(plan, action)


@dataclass(frozen=True)
class InplaceUpdate(ConfigChange):
    """A lightweight update (Serve's "Updating Applications In-Place"): ``user_config`` where the
    deployment has one (its ``reconfigure`` gets it), else ``max_ongoing_requests`` + 1."""

    name: ClassVar[str] = "inplace_update"
    summary: ClassVar[str] = "update a lightweight option in place"

    def change_of(self, app: str, name: str, dep: dict[str, Any], rng: random.Random) -> Change | None:
        config = dep.get("config") or {}
        user = config.get("user_config")
        if isinstance(user, dict):
            revision = int(user.get(REVISION_KEY, 0)) + 1
            return Change(app, name, "user_config", user, {**user, REVISION_KEY: revision})
        current = int(config.get("max_ongoing_requests") or 5)
        return Change(app, name, "max_ongoing_requests", current, current + 1)


@dataclass(frozen=True)
class RollingUpdate(ConfigChange):
    """A change that needs new replicas: an env var in the deployments' ``runtime_env``, as a
    new version of an image or of the code would (``version.py`` ``requires_actor_restart``)."""

    name: ClassVar[str] = "rolling_update"
    summary: ClassVar[str] = "roll out a new version (an env var in ray_actor_options.runtime_env)"
    replaces_replicas: ClassVar[bool] = True

    def change_of(self, app: str, name: str, dep: dict[str, Any], rng: random.Random) -> Change:
        option = f"ray_actor_options.runtime_env.env_vars.{ROLLOUT_ENV}"
        env = (((dep.get("config") or {}).get("ray_actor_options") or {}).get("runtime_env") or {}).get("env_vars") or {}
        return Change(app, name, option, env.get(ROLLOUT_ENV), f"v{rng.randrange(10**6):06d}")

    def extra_params(self, snap: Snapshot, changes: list[Change]) -> dict[str, Any]:
        batch = {}
        for change in changes:
            dep = snap.apps[change.app]["deployments"][change.deployment]
            config = dep.get("config") or {}
            target = int(dep.get("target_num_replicas") or config.get("num_replicas") or 1)
            # Ray 2.60 deployment_state.py _rollout_size: max(int(pct * target), 1) at a time.
            pct = float(config.get("rolling_update_percentage") or 0.2)
            batch[f"{change.app}/{change.deployment}"] = {
                "target": target, "batch": max(int(pct * target), 1),
                "max_surge_percent": config.get("max_surge_percent") or 0,
                # Where a new replica may go while its predecessor still holds a place (the bound).
                "max_replicas_per_node": config.get("max_replicas_per_node"),
                "nodes": sum(n.get("state") == "ALIVE" for n in snap.nodes) or None}
        return {"rollout": batch}


@dataclass(frozen=True)
class ScaleDown(ConfigChange):
    """``num_replicas`` down to about a third (6 -> 2) of every aimed deployment that does not
    autoscale."""

    name: ClassVar[str] = "scale_down"
    summary: ClassVar[str] = "scale down to about a third of the replicas"

    def change_of(self, app: str, name: str, dep: dict[str, Any], rng: random.Random) -> Change | None:
        config = dep.get("config") or {}
        if config.get("autoscaling_config"):
            return None
        old = int(dep.get("target_num_replicas") or config.get("num_replicas") or 1)
        new = max(1, round(old / 3))
        return Change(app, name, "num_replicas", old, new) if new < old else None

    def plan(self, snap: Snapshot, pods: list[PodInfo], rng: random.Random) -> FaultPlan:
        plan = super().plan(snap, pods, rng)
        for victim in plan.victims:
            victim["removed"] = int(victim["old"]) - int(victim["new"])
        total = sum(int(d.get("target_num_replicas") or 0) for _, _, d in deployed(snap))
        plan.params["desired_replicas"] = total - sum(v["removed"] for v in plan.victims)
        return plan
