"""``KubeRayCluster``: the Cluster protocol on Kubernetes, through the official client.

The cluster under test is the RayService's *active* RayCluster (``runtime/kuberay/status.py``):
its pods are found by KubeRay's labels and roles are read from them, so a head
recreated under a new name is still "the head".  A pod kill is a graceful (or
forced) delete; a node loss on kind cuts and kills the node's container and
deletes the Node object after the replacement delay, as the guide's
``kubectl delete node`` does; actor kills run ``ray.kill`` through exec into the
head pod; the Serve Service (KubeRay's, shaped by ``spec.serveService``) and
the dashboard are NodePorts kind maps to the host (elsewhere: ``--serve-url``, and
the dashboard through a port-forward unless ``--dashboard-url``); each pod, and
"the current head", is reachable through a port-forward.  Every mutating call first
checks the safety rules.

Planned disruptions: a Serve config changed through KubeRay (``runtime/kuberay/serveconfig.py``),
Ray's drain API by exec (``runtime/kuberay/drain.py``), a RayService upgrade.  Gray faults: Chaos
Mesh objects and a slowed process (``runtime/kuberay/grayfaults.py``).  Every fault in effect is
leased in the lease ConfigMap (``runtime/kuberay/lease.py``) with what undoing it needs; ``heal``
undoes this harness's, ``reclaim`` (the next command) a dead harness's, through one
table of healers (``_heal_fault``).
"""

from __future__ import annotations

from serve_chaos.runtime.kuberay.cluster.faults import KubeRayFaults
from serve_chaos.runtime.kuberay.cluster.healing import KubeRayHealing
from serve_chaos.runtime.kuberay.cluster.lifecycle import KubeRayLifecycle
from serve_chaos.runtime.kuberay.cluster.pods import KubeRayPods
from serve_chaos.runtime.kuberay.cluster.readiness import KubeRayReadiness
from serve_chaos.runtime.kuberay.cluster.serving import KubeRayServing
from serve_chaos.runtime.kuberay.cluster.targetconfig import KubeTargetConfig

__all__ = ["KubeRayCluster", "KubeTargetConfig"]


class KubeRayCluster(KubeRayLifecycle, KubeRayPods, KubeRayServing, KubeRayFaults, KubeRayHealing,
                     KubeRayReadiness):
    """The RayService under test on a Kubernetes cluster: one class per concern (``base``,
    ``lifecycle``, ``pods``, ``serving``, ``faults``, ``healing``, ``readiness``)."""
