"""One pod on the node, from binding to deletion: the kubelet's pod worker (``pkg/kubelet/pod_workers.go``)
with its sync (``kubelet.go`` SyncPod / SyncTerminatingPod) and status (``kubelet_pods.go``
generateAPIPodStatus) in small form.

- **Start**: the sandbox (network, cgroups), the volumes, the hosts file; then the init
  containers one by one, each to a successful exit; then every container.
- **Run**: exits restart by the pod's ``restartPolicy`` with back-off; probes run; a failed
  liveness probe kills and restarts the container; a failed startup probe too.
- **Status**: phase, conditions (PodReadyToStartContainers, Initialized, ContainersReady,
  Ready), addresses and container statuses, patched whenever they change.
- **Delete** (a ``deletionTimestamp``): every container stopped with the pod's grace period
  (preStop, SIGTERM, SIGKILL), the sandbox removed, the final status written, and the pod
  deleted for good with grace 0 and its UID as a precondition -- the kubelet's last word.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.k8s.agent import envs, images, rootfs, sandbox
from serve_chaos.runtime.k8s.agent.containers import ContainerRun, Launch, rfc3339
from serve_chaos.runtime.k8s.agent.probes import ProbeWorker
from serve_chaos.runtime.k8s.agent.volumes import PodVolumes, VolumeMaker, VolumeNotReady
from serve_chaos.runtime.k8s.proxy import PodHosts, service_env

TICK_S = 0.5
DEFAULT_GRACE_S = 30.0


class PodWorker(threading.Thread):
    def __init__(self, node: Any, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(daemon=True, name=f"pod-{meta['namespace']}/{meta['name']}")
        self.node = node  # the Agent: api, children, layout, ips, services, ...
        self.latest = pod
        self.uid = meta["uid"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.wake = threading.Event()
        self.gone = False
        self.lock = threading.RLock()
        self.box: sandbox.Sandbox | None = None
        self.volumes: PodVolumes | None = None
        self.start_time = time.time()
        spec = pod.get("spec") or {}
        self.inits = [ContainerRun(c, init=True) for c in spec.get("initContainers") or []]
        self.mains = [ContainerRun(c, init=False) for c in spec.get("containers") or []]
        self.problem: tuple[str, str] | None = None
        self.last_status: str = ""
        self.finished = False

    # ------------------------------------------------------------------ inputs
    def update(self, pod: dict[str, Any]) -> None:
        with self.lock:
            self.latest = pod
        self.wake.set()

    def deleted(self) -> None:
        self.gone = True
        self.wake.set()

    @property
    def dir(self) -> Path:
        return self.node.pod_dir(self.uid)

    @property
    def policy(self) -> str:
        return (self.latest.get("spec") or {}).get("restartPolicy") or "Always"

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        try:
            while True:
                with self.lock:
                    pod = self.latest
                if self.gone or (pod.get("metadata") or {}).get("deletionTimestamp"):
                    self._terminate(pod)
                    return
                self._sync(pod)
                self._report(pod)
                self.wake.wait(TICK_S)
                self.wake.clear()
        except Exception:  # noqa: BLE001 - a pod worker must never take the agent down
            self.node.log(f"pod worker {self.key} failed: {traceback.format_exc()}")
            self._teardown()

    def _sync(self, pod: dict[str, Any]) -> None:
        if self.finished:
            return
        if self.box is None and not self._make_sandbox(pod):
            return
        now = time.time()
        for run in self.inits:
            if run.terminated is not None and run.terminated.exit_code == 0 and not run.running:
                continue
            self._step(pod, run, now, init=True)
            return  # one init container at a time, in order
        for run in self.mains:
            self._step(pod, run, now, init=False)
        if self.policy != "Always" and all(r.terminated is not None and not r.running and not r.next_start
                                           for r in self.mains):
            self.finished = True

    def _step(self, pod: dict[str, Any], run: ContainerRun, now: float, init: bool) -> None:
        ended = run.poll(self.node.children)
        if ended is not None:
            self.node.event(pod, "Killing" if run.stopping else ("Completed" if ended.exit_code == 0 else "BackOff"),
                            f"Container {run.name} exited with code {ended.exit_code}",
                            "Normal" if ended.exit_code == 0 else "Warning")
            policy = self.policy if not init else ("Never" if self.policy == "Never" else "OnFailure")
            if run.should_restart(policy):
                run.schedule_restart(now)
            elif init and ended.exit_code != 0:
                self.finished = True  # the pod failed: an init container failed under Never
            self._write_state()
        if run.running or self.finished:
            return
        if run.terminated is not None and not run.next_start:
            return  # done for good
        if now < run.next_start:
            return
        self._start(pod, run)

    def _start(self, pod: dict[str, Any], run: ContainerRun) -> None:
        try:
            launch = self._launch(pod, run)
        except ServeChaosError as err:
            reason = "ErrImagePull" if isinstance(err, images.ImageUnavailable) else "CreateContainerConfigError"
            if run.waiting is None or run.waiting[1] != err.what:
                self.node.event(pod, "Failed", err.what, "Warning")
            run.waiting = (reason, err.what)
            run.next_start = time.time() + 5.0
            return
        run.next_start = 0.0
        run.start(self.node.children, launch)
        self._start_probes(run)
        self._write_state()
        self.node.event(pod, "Started", f"Started container {run.name}", "Normal")

    def _launch(self, pod: dict[str, Any], run: ContainerRun) -> Launch:
        assert self.box is not None and self.volumes is not None
        spec = run.spec
        image = images.resolve(spec.get("image") or "", self.node.operators)
        base = {**image.env, **service_env(self.node.services(), pod["metadata"]["namespace"],
                                           (pod.get("spec") or {}).get("enableServiceLinks", True) is not False)}
        base["HOSTNAME"] = pod["metadata"]["name"]
        env = envs.container_env(self.node.api, self._with_ips(pod), spec, base, self.node.cpu, self.node.memory)
        command = envs.command_line(spec, [], env)
        if not command:
            raise ServeChaosError(f"container {run.name} has no command and its image no entrypoint here")
        mounts = self._mounts(pod, run)
        state = self.dir / "containers" / f"{run.name}-{run.restarts}"
        script = rootfs.setup_script(state, image, mounts, pod["metadata"]["name"], self.box.memory_view())
        argv = rootfs.launch_argv(self.box.net.netns_path, script, spec.get("workingDir") or image.workdir, command)
        groups = self.box.container_groups(f"{run.name}-{run.restarts}", spec.get("resources") or {})
        kill_group = self.box.cgroup / f"{run.name}-{run.restarts}" if self.box.cgroup is not None else None
        return Launch(argv, env, groups, kill_group, self.dir / "logs" / run.name / f"{run.restarts}.log", state,
                      image.image_id)

    def _mounts(self, pod: dict[str, Any], run: ContainerRun) -> list[rootfs.Mount]:
        assert self.volumes is not None
        mounts = self.volumes.mounts(run.spec)
        taken = {m.path for m in mounts}
        # The kubelet's own files: hosts (unless the container mounts its own), resolv.conf, hostname.
        extra = [("/etc/hosts", self.dir / "etc-hosts"), ("/etc/resolv.conf", self.dir / "resolv.conf"),
                 ("/etc/hostname", self.dir / "hostname")]
        return mounts + [rootfs.Mount(path, str(src)) for path, src in extra if path not in taken]

    def _with_ips(self, pod: dict[str, Any]) -> dict[str, Any]:
        assert self.box is not None
        status = dict(pod.get("status") or {})
        status.update(podIP=self.box.ip, hostIP=self.node.ip)
        return {**pod, "status": status}

    # ------------------------------------------------------------------ sandbox
    def _make_sandbox(self, pod: dict[str, Any]) -> bool:
        try:
            if self.box is None:
                self.box = self.node.new_sandbox(self.uid)
            volumes = VolumeMaker(self.node.api, json.loads(json.dumps(pod)), self.dir / "volumes", self.box.ip,
                                  self.node.ip)
            self.volumes = volumes.make()
        except VolumeNotReady as err:
            if self.problem is None or self.problem[1] != err.what:
                self.node.event(pod, "FailedMount", err.what, "Warning")
            self.problem = ("ContainerCreating", err.what)
            return False
        self.problem = None
        (self.dir / "hostname").write_text(pod["metadata"]["name"] + "\n")
        ns = pod["metadata"]["namespace"]
        from serve_chaos.runtime.k8s.layout import CLUSTER_DOMAIN

        (self.dir / "resolv.conf").write_text(
            f"search {ns}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
            f"nameserver {self.box.gateway}\noptions ndots:5\n")
        (self.dir / "etc-hosts").write_text(PodHosts(self.box.ip, pod["metadata"]["name"]).render())
        return True

    # ------------------------------------------------------------------ probes
    def _start_probes(self, run: ContainerRun) -> None:
        if run.init or self.box is None:
            return
        for kind in ("startup", "liveness", "readiness"):
            probe = run.spec.get(f"{kind}Probe")
            if not probe:
                if kind == "readiness":
                    run.ready = True
                continue
            gate = (lambda: True) if kind == "startup" else (lambda r=run: r.started)
            worker = ProbeWorker(kind, probe, run.spec, self.box.ip, self._exec_in(run), gate,
                                 lambda k, ok, changed, msg, r=run: self._probe_result(r, k, ok, changed, msg))
            run.probes.append(worker)
            worker.start()

    def _exec_in(self, run: ContainerRun) -> Callable[[list[str], float], tuple[int | None, str]]:
        def run_exec(command: list[str], timeout_s: float) -> tuple[int | None, str]:
            if run.pid is None:
                return 1, "container is not running"
            env = {**dict(e.split("=", 1) for e in run.env),
                   rootfs.CGROUPS_ENV: " ".join(str(p) for p in run.cgroup_procs)}
            return self.node.children.run(rootfs.join_argv(rootfs.exec_argv(run.pid, command)), timeout_s, env)

        return run_exec

    def _probe_result(self, run: ContainerRun, kind: str, ok: bool, changed: bool, message: str) -> None:
        pod = self.latest
        if not ok or not changed:
            self.node.event(pod, "Unhealthy", f"{kind.capitalize()} probe failed: {message}", "Warning")
        if not changed:
            return
        if kind == "readiness":
            run.ready = ok
        elif kind == "startup" and ok:
            run.started = True
        elif not ok:  # liveness or startup failed: the container is killed and restarted by policy
            self.node.event(pod, "Killing", f"Container {run.name} failed {kind} probe, will be restarted", "Normal")
            threading.Thread(target=run.stop, args=(self._grace(pod), self.node.children, self._exec_in(run)),
                             daemon=True).start()
        self.wake.set()

    # ------------------------------------------------------------------ status
    def _grace(self, pod: dict[str, Any]) -> float:
        meta_grace = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
        spec_grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        value = meta_grace if meta_grace is not None else spec_grace
        return float(DEFAULT_GRACE_S if value is None else value)

    def status(self, pod: dict[str, Any]) -> dict[str, Any]:
        spec = pod.get("spec") or {}
        images_by_name = {c["name"]: c.get("image", "") for c in
                          (spec.get("initContainers") or []) + (spec.get("containers") or [])}
        inits = [r.to_status(images_by_name[r.name]) for r in self.inits]
        mains = [r.to_status(images_by_name[r.name]) for r in self.mains]
        if self.problem is not None:
            for status in inits + mains:
                status["state"] = {"waiting": {"reason": self.problem[0], "message": self.problem[1]}}
        initialized = all(r.terminated is not None and r.terminated.exit_code == 0 for r in self.inits)
        ready = initialized and all(r.running and r.ready for r in self.mains)
        now = rfc3339(time.time())

        def condition(kind: str, value: bool, reason: str = "") -> dict[str, Any]:
            out = {"type": kind, "status": "True" if value else "False", "lastProbeTime": None,
                   "lastTransitionTime": now}
            if reason and not value:
                out["reason"] = reason
            return out

        conditions = [condition("PodReadyToStartContainers", self.box is not None),
                      condition("Initialized", initialized, "ContainersNotInitialized"),
                      condition("ContainersReady", ready, "ContainersNotReady"),
                      condition("Ready", ready, "ContainersNotReady")]
        previous = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
        for cond in conditions:  # a transition time changes only with the status
            old = previous.get(cond["type"])
            if old is not None and old.get("status") == cond["status"] and old.get("lastTransitionTime"):
                cond["lastTransitionTime"] = old["lastTransitionTime"]
        out: dict[str, Any] = {"phase": self._phase(initialized), "conditions": conditions,
                               "hostIP": self.node.ip, "hostIPs": [{"ip": self.node.ip}],
                               "startTime": rfc3339(self.start_time), "containerStatuses": mains}
        if inits:
            out["initContainerStatuses"] = inits
        if self.box is not None:
            out.update(podIP=self.box.ip, podIPs=[{"ip": self.box.ip}])
        return out

    def _phase(self, initialized: bool) -> str:
        if self.finished:
            failed = any(r.terminated is not None and r.terminated.exit_code != 0 for r in self.inits + self.mains)
            return "Failed" if failed else "Succeeded"
        if initialized and any(r.running or r.terminated is not None for r in self.mains):
            return "Running"
        return "Pending"

    def _report(self, pod: dict[str, Any]) -> None:
        status = self.status(pod)
        text = json.dumps(status, sort_keys=True)
        if text == self.last_status:
            return
        try:
            self.node.api.patch_pod_status(pod["metadata"]["namespace"], pod["metadata"]["name"], status, self.uid)
            self.last_status = text
        except Exception as err:  # noqa: BLE001 - retried at the next tick (the pod may be gone)
            self.node.log(f"status of {self.key}: {type(err).__name__}: {str(err)[:200]}")

    def _write_state(self) -> None:
        """What the nodeserver needs for exec, port-forward and logs."""
        if self.box is None:
            return
        state = {"uid": self.uid, "ip": self.box.ip, "netns": self.box.net.netns_path,
                 "containers": {r.name: r.nodeserver_state() for r in self.inits + self.mains}}
        self.node.write_pod_state(self.latest["metadata"], state)

    # ------------------------------------------------------------------ termination
    def _terminate(self, pod: dict[str, Any]) -> None:
        grace = self._grace(pod)
        stoppers = [threading.Thread(target=r.stop, args=(grace, self.node.children, self._exec_in(r)), daemon=True)
                    for r in self.mains + self.inits if r.running]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        if not self.gone:
            self.finished = self.finished or self.policy != "Always"
            self._report(pod)
        self._teardown()
        if not self.gone:
            self.node.api.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], self.uid)
        self.node.forget(self)

    def _teardown(self) -> None:
        for run in self.inits + self.mains:
            run.stop_probes()
            run.kill()
        if self.box is not None:
            sandbox.destroy(self.box)
            self.node.release_ip(self.box.ip)
            self.box = None
        self.node.drop_pod_state(self.latest["metadata"])

