"""Snapshots are joined correctly from the dashboard's answers (shapes as Ray 2.60 returns them)."""

from serve_chaos.harness.observe.probe import actor_role, build_snapshot

SERVE = {
    "controller_info": {"node_id": "N1", "node_ip": "198.18.0.10", "actor_id": "C1"},
    "proxies": {
        "N1": {"node_id": "N1", "node_ip": "198.18.0.10", "actor_id": "P1", "status": "HEALTHY"},
        "N2": {"node_id": "N2", "node_ip": "198.18.0.20", "actor_id": "P2", "status": "DRAINING"},
    },
    "applications": {
        "sleepy": {
            "name": "sleepy", "status": "RUNNING", "route_prefix": "/",
            "deployments": {"SleepyPid": {"status": "HEALTHY", "replicas": [
                {"node_id": "N1", "node_ip": "198.18.0.10", "actor_id": "R1", "state": "RUNNING", "pid": 11,
                 "replica_id": "a", "log_file_path": "/serve/replica_sleepy_SleepyPid_a.log"},
                {"node_id": "N2", "node_ip": "198.18.0.20", "actor_id": "R2", "state": "STARTING"},
            ]}},
        },
        "composed": {
            "name": "composed", "status": "DEPLOYING", "route_prefix": "/c", "message": "",
            "deployment_topology": {"app_name": "composed", "ingress_deployment": "Ingress", "nodes": {
                "Ingress": {"name": "Ingress", "app_name": "composed", "is_ingress": True,
                            "outbound_deployments": [{"name": "Downstream", "app_name": "composed"}]},
                "Downstream": {"name": "Downstream", "app_name": "composed", "outbound_deployments": []}}},
            "deployments": {"Downstream": {"status": "HEALTHY", "replicas": [
                {"node_id": "N2", "node_ip": "198.18.0.20", "actor_id": "R3", "state": "RUNNING", "pid": 13,
                 "replica_id": "c", "log_file_path": "/serve/replica_composed_Downstream_c.log"}]}},
        },
    },
}
ACTORS = [
    {"actor_id": "C1", "class_name": "ServeController", "name": "SERVE_CONTROLLER_ACTOR", "pid": 5, "node_id": "N1"},
    {"actor_id": "P1", "class_name": "ProxyActor", "name": "SERVE_PROXY_ACTOR-N1", "pid": 6, "node_id": "N1"},
    {"actor_id": "P2", "class_name": "ProxyActor", "name": "SERVE_PROXY_ACTOR-N2", "pid": 7, "node_id": "N2"},
    {"actor_id": "R1", "class_name": "ServeReplica:sleepy:SleepyPid", "name": "SERVE_REPLICA::sleepy#SleepyPid#a",
     "pid": 11, "node_id": "N1"},
    {"actor_id": "R2", "class_name": "ServeReplica:sleepy:SleepyPid", "name": "SERVE_REPLICA::sleepy#SleepyPid#b",
     "pid": 12, "node_id": "N2"},
    {"actor_id": "R3", "class_name": "ServeReplica:composed:Downstream",
     "name": "SERVE_REPLICA::composed#Downstream#c", "pid": 13, "node_id": "N2"},
    {"actor_id": "X", "class_name": "SomethingElse", "name": "x", "pid": 99, "node_id": "N2"},
]
NODES = [{"node_id": "N1", "node_ip": "198.18.0.10", "state": "ALIVE", "is_head_node": True},
         {"node_id": "N2", "node_ip": "198.18.0.20", "state": "ALIVE", "is_head_node": False}]
PODS = [{"name": "head", "ip": "198.18.0.10", "uid": "u1", "phase": "Running"},
        {"name": "worker-1", "ip": "198.18.0.20", "uid": "u2", "phase": "Running"}]


def test_roles_from_class_names():
    assert actor_role("ServeReplica:app:Dep") == "replica"
    assert actor_role("ProxyActor") == "proxy"
    assert actor_role("ServeController") == "controller"
    assert actor_role("Other") is None
    # Serve's HAProxy ingress: each node's HAProxyManager is its proxy; the head's fallback is not.
    assert actor_role("HAProxyManager", "SERVE_PROXY_ACTOR-abc") == "proxy"
    assert actor_role("ProxyActor", "SERVE_PROXY_ACTOR-fallback-abc") is None


def test_snapshot_joins_serve_state_pids_and_pods():
    snap = build_snapshot(1.0, SERVE, ACTORS, NODES, PODS, {})
    assert snap.ok and snap.app_status == "DEPLOYING,RUNNING" and snap.replicas_running == 2
    by_id = {a["actor_id"]: a for a in snap.actors}
    assert set(by_id) == {"C1", "P1", "P2", "R1", "R2", "R3"}
    # Serve's details give no replica id or log file for R2: the actor's name gives the id.
    assert by_id["R2"] == {"role": "replica", "actor_id": "R2", "name": "SERVE_REPLICA::sleepy#SleepyPid#b",
                           "pid": 12, "node_id": "N2", "node_ip": "198.18.0.20", "pod": "worker-1",
                           "state": "STARTING", "app": "sleepy", "deployment": "SleepyPid", "replica_id": "b",
                           "ingress": None}
    # An application without deployment_topology (Ray < 2.60): which deployment is the ingress is unknown.
    assert by_id["R1"]["log_file"] == "/serve/replica_sleepy_SleepyPid_a.log" and by_id["R1"]["ingress"] is None
    assert snap.apps["sleepy"]["downstream"] is None
    assert by_id["R3"]["ingress"] is False and by_id["R3"]["deployment"] == "Downstream"
    assert snap.apps["composed"]["downstream"] == ["Downstream"] and snap.apps["composed"]["ingress"] == "Ingress"
    assert snap.apps["sleepy"]["ingress"] is None
    assert by_id["P2"]["state"] == "DRAINING"
    assert by_id["C1"]["pod"] == "head"
    assert [n["pod"] for n in snap.nodes] == ["head", "worker-1"]


def test_snapshot_when_the_dashboard_is_down():
    snap = build_snapshot(2.0, None, None, None, PODS, {"serve": "ConnectionError: refused"})
    assert not snap.ok and snap.pods_ok
    assert snap.actors == [] and snap.replicas_running is None
    assert snap.errors == {"serve": "ConnectionError: refused"}
