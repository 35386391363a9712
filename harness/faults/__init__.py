"""The fault catalogue, one module per family (DESIGN.md "Faults come in families").

- ``base``: the Fault class, its plan, victim choice and records;
- ``actors``: Serve actors (replica, proxy, controller killed; health check failing; a frozen replica);
- ``pods``: pods and nodes (a pod deleted, a node lost, Redis held down);
- ``network``: a pod partitioned;
- ``gray``: gray failures (CPU starved, memory pressed, packets lost or delayed, a replica slowed);
- ``operator``: operator actions under load (in-place update, rolling update, scale-down);
- ``badversion``: bad rollouts (a version that cannot start, fails its checks, or fails reconfigure);
- node drain (preemption with notice) lives with the node faults in ``pods``;
- ``poison``: a query of death (a request that makes its replica exit);
- ``compound``: a fault injected while another is in effect (``During``);
- ``upgrade``: a RayService zero-downtime upgrade (a new Ray cluster behind the same Service).

A new fault goes into its family's module (or a new one) and into ``CATALOGUE``.
"""

from serve_chaos.harness.faults.actors import (ActorKill, ControllerKill, ControllerRestart, HealthFlap, HealthCheckFailure, MassReplicaKill, ProxyKill,
                                   ReplicaHang, ReplicaKill, replica_answering)
from serve_chaos.harness.faults.base import (DOWNSTREAM, DoesNotApply, Fault, FaultNotApplicable, FaultPlan, NoSuchDeployment, actor_victim,
                                 aimed, pick, pod_victim, pod_victims, record, serving_pods)
from serve_chaos.harness.faults.badversion import BadRollout
from serve_chaos.harness.faults.compound import During
from serve_chaos.harness.faults.crashloop import CrashLoop
from serve_chaos.harness.faults.loadshape import LoadBursts, LoadStep
from serve_chaos.harness.faults.gray import CpuStarvation, GrayFault, MemoryPressure, NetworkDelay, PacketLoss, ReplicaSlow
from serve_chaos.harness.faults.network import PodPartition, PodReject
from serve_chaos.harness.faults.operator import ConfigChange, InplaceUpdate, RollingUpdate, ScaleDown
from serve_chaos.harness.faults.poison import QueryOfDeath
from serve_chaos.harness.faults.pods import GcsCrash, IngressCrash, NodeDrain, NodeLoss, PodKill, RedisLoss
from serve_chaos.harness.faults.upgrade import RayServiceUpgrade

CATALOGUE: dict[str, type[Fault]] = {
    cls.name: cls for cls in (ReplicaKill, ProxyKill, ControllerKill, MassReplicaKill, PodKill, NodeLoss,
                              PodPartition, RedisLoss, HealthCheckFailure, ReplicaHang, InplaceUpdate,
                              RollingUpdate, ScaleDown, NodeDrain, CpuStarvation, MemoryPressure, PacketLoss,
                              NetworkDelay, ReplicaSlow, RayServiceUpgrade, BadRollout, ControllerRestart, QueryOfDeath,
                              GcsCrash, HealthFlap, CrashLoop, PodReject, LoadStep, IngressCrash, LoadBursts)
}

__all__ = ["ActorKill", "BadRollout", "CATALOGUE", "ConfigChange", "ControllerKill", "ControllerRestart", "CrashLoop", "During", "CpuStarvation", "DOWNSTREAM", "Fault",
           "DoesNotApply", "FaultNotApplicable", "GcsCrash", "FaultPlan", "GrayFault", "HealthCheckFailure", "HealthFlap", "IngressCrash", "InplaceUpdate", "LoadBursts", "LoadStep", "MassReplicaKill",
           "MemoryPressure", "NetworkDelay", "NoSuchDeployment", "NodeDrain", "NodeLoss", "PacketLoss", "PodKill",
           "PodPartition", "PodReject", "ProxyKill", "QueryOfDeath", "RayServiceUpgrade", "RedisLoss", "ReplicaHang", "ReplicaKill", "ReplicaSlow", "RollingUpdate",
           "ScaleDown", "actor_victim", "aimed", "pick", "pod_victim",
           "pod_victims", "record", "replica_answering", "serving_pods"]
