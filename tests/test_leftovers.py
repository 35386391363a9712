"""Leftovers of a killed run are found by their label and removed; live runs are never touched."""

import os
import subprocess
import sys
import time

import pytest

from serve_chaos.runtime.local import cgroups, leftovers, netns, procs
from serve_chaos.runtime.local.layout import RunLayout

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not netns.netns_supported()[0],
                                reason="creating namespaces and cgroups needs root on Linux")


def spawn_marked(label: str, role: str) -> subprocess.Popen:
    env = dict(os.environ, **{procs.RUN_ENV: label, procs.ROLE_ENV: role})
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], env=env)


@needs_root
def test_dead_run_is_reaped_and_live_run_is_kept(tmp_path):
    home = tmp_path
    dead, live = "a1b2c3", "d4e5f6"
    for label in (dead, live):
        RunLayout(home, label).root.mkdir(parents=True)
    dead_proc = spawn_marked(dead, "pod:worker")
    live_proc = spawn_marked(live, "supervisor")
    ns = f"sc-{dead}-worker-1-1"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    root = cgroups.cgroup2_root()
    group = cgroups.create(root / f"serve-chaos-{dead}") if root else None
    try:
        time.sleep(0.2)
        found = {item.label: item for item in leftovers.find(home)}
        assert live not in found
        item = found[dead]
        assert dead_proc.pid in item.pids and ns in item.netns and home / dead in item.dirs
        if group is not None:
            assert group in item.cgroups
        leftovers.clean(item)
        dead_proc.wait(timeout=10)
        assert not procs.alive(dead_proc.pid)
        assert ns not in netns.list_netns("sc-")
        assert not (home / dead).exists()
        assert group is None or not group.exists()
        assert live_proc.poll() is None and (home / live).exists()
    finally:
        for proc in (dead_proc, live_proc):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        netns.delete_netns(ns)
        if group is not None:
            cgroups.remove(group, timeout_s=1)
