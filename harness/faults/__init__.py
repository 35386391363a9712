"""The fault catalogue, one module per family (DESIGN.md "Faults come in families").

- ``base``: the Fault class, its plan, victim choice and records;
- ``actors``: Serve actors (replica, proxy, controller killed; health check failing; a frozen replica);
- ``pods``: pods and nodes (a pod deleted, a node lost, Redis held down);
- ``network``: a pod partitioned.

A new fault goes into its family's module (or a new one) and into ``CATALOGUE``.
"""

from harness.faults.actors import (ActorKill, ControllerKill, HealthCheckFailure, MassReplicaKill, ProxyKill,
                                   ReplicaHang, ReplicaKill, replica_answering)
from harness.faults.base import (DOWNSTREAM, Fault, FaultNotApplicable, FaultPlan, NoSuchDeployment, actor_victim,
                                 aimed, pick, pod_victim, pod_victims, record, serving_pods)
from harness.faults.network import PodPartition
from harness.faults.pods import NodeLoss, PodKill, RedisLoss

CATALOGUE: dict[str, type[Fault]] = {
    cls.name: cls for cls in (ReplicaKill, ProxyKill, ControllerKill, MassReplicaKill, PodKill, NodeLoss,
                              PodPartition, RedisLoss, HealthCheckFailure, ReplicaHang)
}

__all__ = ["ActorKill", "CATALOGUE", "ControllerKill", "DOWNSTREAM", "Fault", "FaultNotApplicable", "FaultPlan",
           "HealthCheckFailure", "MassReplicaKill", "NoSuchDeployment", "NodeLoss", "PodKill", "PodPartition",
           "ProxyKill", "RedisLoss", "ReplicaHang", "ReplicaKill", "actor_victim", "aimed", "pick", "pod_victim",
           "pod_victims", "record", "replica_answering", "serving_pods"]
