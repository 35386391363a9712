"""The planned placement of the Ray pods: one Ray pod per node, each on a node of its role where the
nodes carry roles, and Redis never beside a worker.

A node scenario's verdict means what it says only from this placement: a worker node
loss that takes two workers at once (both stacked on the survivor of an earlier loss), or
takes Redis with a worker, is another fault.  The Ray pods' required anti-affinity
(``manifests.one_ray_pod_per_node``), the node selectors (kind) or Redis's affinity to the
head (any other cluster) keep it; a cluster made without them -- or a scheduler that did not
honour them -- is refused, never silently run.  A pure function of what the API says.
"""

from __future__ import annotations

from serve_chaos.runtime.cluster import PodInfo


def placement_problem(pods: list[PodInfo], node_roles: dict[str, str], by_role: bool = True) -> str | None:
    """Why the Ray pods (head, workers) do not stand one per node on nodes of their role, or None.

    ``node_roles`` maps each Ready node to its ``serve-chaos/role`` label ("" without one);
    ``by_role`` False: only one-per-node is asked for.  Pods not yet bound, Terminating, or
    on a node that is lost or gone (PodGC will take them) are not judged.
    """
    by_node: dict[str, list[str]] = {}
    worker_nodes = {p.node for p in pods if p.role == "worker" and p.node and p.phase != "Terminating"}
    for pod in pods:
        if pod.role == "redis" and pod.node in worker_nodes and pod.node in node_roles:
            return f"Redis pod {pod.name} shares node {pod.node} with a Ray worker: losing that node would lose both"
        if pod.role not in ("head", "worker") or not pod.node or pod.phase == "Terminating" \
                or pod.node not in node_roles:
            continue
        by_node.setdefault(pod.node, []).append(pod.name)
        role = node_roles[pod.node]
        if by_role and role != pod.role:
            return f"{pod.role} pod {pod.name} runs on node {pod.node} (role {role or 'none'}), not on a {pod.role} node"
    for node, names in sorted(by_node.items()):
        if len(names) > 1:
            return (f"Ray pods {', '.join(sorted(names))} share node {node}; the planned placement is one Ray "
                    "pod per node")
    return None
