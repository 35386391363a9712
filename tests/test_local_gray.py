"""The local target's gray-fault helpers on recorded text: what the raylet logs when Ray's memory
monitor kills workers (Ray 2.60.0, a worker pod at 95 % of its 2 GiB limit), what nft reports
of its counters, and the wrappers that give a pod its own temp dir and memory cgroup."""

from __future__ import annotations

from pathlib import Path

from serve_chaos.runtime.local import mounts
from serve_chaos.runtime.local.gray import KERNEL_OOM_LINE, RAY_OOM_LINE, RAY_OOM_VICTIM, _dropped

#: Lines of a real raylet.out (Ray 2.60.0, this machine), ids shortened.
RAYLET = """\
[2026-11-29 12:47:27,611 I 12356 12356] (raylet) node_manager.cc:3199: Killing 2 worker(s), kill details: Memory on the node (IP: 198.18.0.21, ID: 1960d27e) was 1.91GB used / 2.00GB limit (0.953959)
OOM kill reason: Memory usage 2045214720B exceeded threshold of 2040109440B (95.0% of 2147483648B limit)
Selected to kill: (Actor(2454f56ee1e3a526b751a78501000000): job ID=01000000, lease ID=0c00, task name=SERVE_PROXY_ACTOR-1960d27e:ProxyActor.__init__, required resources={}, pid=12934, actual memory used=0.10GB
Selected to kill: (Actor(a4efc3abac92d3f299c9714501000000): job ID=01000000, lease ID=0800, task name=SERVE_REPLICA::sleepy#SleepyPid#5ehjdmic:ServeReplica:sleepy:SleepyPid.__init__, required resources={}, pid=12754, actual memory used=0.10GB
"""


def test_the_memory_monitors_kills_are_read_from_the_raylet_log():
    rounds = [m.group(1) for m in map(RAY_OOM_LINE.search, RAYLET.splitlines()) if m]
    assert len(rounds) == 1 and "1.91GB used / 2.00GB limit" in rounds[0]
    victims = [m.groupdict() for m in map(RAY_OOM_VICTIM.search, RAYLET.splitlines()) if m]
    assert [(v["actor_id"][:8], v["task"].split(":")[0], v["pid"]) for v in victims] == [
        ("2454f56e", "SERVE_PROXY_ACTOR-1960d27e", "12934"), ("a4efc3ab", "SERVE_REPLICA", "12754")]
    assert victims[1]["task"].startswith("SERVE_REPLICA::sleepy#SleepyPid#5ehjdmic:ServeReplica")


def test_the_kernels_oom_kill_and_nfts_counters_are_read():
    line = "[  928.119359] Memory cgroup out of memory: Killed process 11329 (python) total-vm:67920kB"
    match = KERNEL_OOM_LINE.search(line)
    assert match and (match.group(1), match.group(2)) == ("11329", "python")
    listing = ("table inet serve_chaos_loss {\n chain input {\n  iif \"lo\" accept\n"
               "  numgen random mod 100 < 50 counter packets 140 bytes 9619 drop\n }\n}\n")
    assert _dropped(listing) == 140 and _dropped("table inet x {}") == 0


def test_a_pod_sees_its_own_temp_dir_and_memory_cgroup():
    cmd = mounts.pod_view(["ray", "start"], (Path("/tmp/sc/L/worker-1.4"), Path("/tmp/sc/L/ray")), memory=True)
    assert cmd[:5] == ["unshare", "--mount", "--propagation", "private", "--cgroup"]
    script = cmd[cmd.index("-c") + 1]
    assert script.startswith("mount --bind /tmp/sc/L/worker-1.4 /tmp/sc/L/ray && ")
    assert "mount -t cgroup -o memory" in script and script.endswith('exec "$@"')
    assert cmd[-2:] == ["ray", "start"]
    assert mounts.pod_view(["redis-server"], None, memory=False) == ["redis-server"]
    assert mounts.enter_prefix(42) == ["--mount=/proc/42/ns/mnt"]


def test_the_raylet_log_is_read_from_the_pods_own_session(tmp_path):
    # Ray links session_latest to the path the pod sees (the shared temp dir its mount
    # namespace overlays); from the host that path holds nothing of this pod's.
    from serve_chaos.runtime.local.kubelet import session_dir

    pod_dir = tmp_path / "worker-1.3"
    (pod_dir / "session_2026-11-29_17-10-11_1" / "logs").mkdir(parents=True)
    (pod_dir / "session_latest").symlink_to(tmp_path / "ray" / "session_2026-11-29_17-10-11_1")
    assert session_dir(pod_dir) == pod_dir / "session_2026-11-29_17-10-11_1"
    assert (session_dir(pod_dir) / "logs").is_dir()
    assert session_dir(tmp_path / "no-session-yet") == tmp_path / "no-session-yet" / "session_latest"
