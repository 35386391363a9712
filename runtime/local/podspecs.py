"""What the local operator runs in each pod, as KubeRay's pod templates do: ``ray start`` for the head
and the workers with KubeRay's environment, Redis for GCS FT with a fresh storage namespace."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.local.config import KUBERAY_RAYSERVICE_ENV
from serve_chaos.runtime.local.pods import Pod
from serve_chaos.runtime.ray_compat import features


def redis_server_binary() -> str:
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if path is None:
        raise ServeChaosError(
            "redis-server is not installed (GCS fault tolerance needs a real Redis)",
            hint="apt-get install redis-server, or run ./setup.sh",
        )
    return path


class OperatorPodSpecs:
    """What the local operator runs in each pod, as KubeRay's pod templates do: ``ray start`` for the
    head and the workers with KubeRay's environment, Redis for GCS FT with a fresh storage
    namespace."""

    def _new_storage_namespace(self) -> str:
        # Fresh per cluster: reusing one resurrects an old cluster's state (ray-facts.md).
        return f"sc_{self.layout.label}_{secrets.token_hex(4)}"

    def pod_spec(self, pod: Pod) -> tuple[list[str], dict[str, str]]:
        own = self.layout.pod_dir(pod.name, pod.serial)
        own.mkdir(parents=True, exist_ok=True)
        if pod.role == "redis":
            return self._redis_spec(pod, own)
        # The kubelet says where Ray sees its temp dir (in the pod's own mount namespace, its own).
        return self._ray_spec(pod, pod.temp_dir or own)

    def _redis_spec(self, pod: Pod, temp_dir: Path) -> tuple[list[str], dict[str, str]]:
        data_dir = self.layout.root / "redis-data"
        data_dir.mkdir(exist_ok=True)
        conf = temp_dir / "redis.conf"
        conf.write_text(
            f"bind {pod.ip}\nport {self.redis_port}\nprotected-mode no\n"
            f"requirepass {self.redis_password}\n"
            # Persistent like a PVC-backed Redis, so a restarted Redis keeps
            # the GCS tables (the point of the GCS-store-lost scenario).
            f'appendonly yes\nappendfsync everysec\nsave ""\ndir {data_dir}\n'
        )
        conf.chmod(0o600)
        return [redis_server_binary(), str(conf)], {}

    def _ray_spec(self, pod: Pod, temp_dir: Path) -> tuple[list[str], dict[str, str]]:
        cfg = self.config
        res = cfg.head if pod.role == "head" else cfg.worker
        # The project and the user's code on the pods' import path, as an image would carry them.
        env: dict[str, str] = {**self.runtime.pod_env(cfg.app_dir), **KUBERAY_RAYSERVICE_ENV}
        if self.ingress == "haproxy":
            env.update(self._haproxy_env())
        common = [f"--node-ip-address={pod.ip}", f"--num-cpus={res.num_cpus}", f"--memory={res.memory}",
                  f"--object-store-memory={res.object_store_memory}", f"--temp-dir={temp_dir}",
                  "--disable-usage-stats", "--block"]
        if self.kubelet.mode == "loopback":
            # All pods share one network stack: give each its own agent port and
            # proxy port so they cannot collide (preflight refuses a Ray without per-worker ports).
            env["SERVE_SOCKET_REUSE_PORT_ENABLED"] = "0"
            common.append(f"--dashboard-agent-listen-port={52365 + pod.slot_index}")
            port_env = features(self.runtime.version).worker_proxy_port_env
            if pod.role == "worker" and port_env:
                env[port_env] = str(pod.serve_port)
        ray = self.runtime.ray_bin
        head_ip = self.kubelet.fixed_ips["head"]
        if pod.role == "head":
            cmd = [ray, "start", "--head", f"--port={cfg.gcs_port}",
                   f"--dashboard-host={'0.0.0.0' if self.kubelet.mode == 'netns' else head_ip}",
                   f"--dashboard-port={cfg.dashboard_port}", *common]
            if self.gcs_ft and self.gcs_backend == "rocksdb":
                env.update(self._rocksdb_env())
            elif self.gcs_ft:
                env["RAY_REDIS_ADDRESS"] = f"{self.kubelet.fixed_ips['redis']}:{self.redis_port}"
                env["RAY_external_storage_namespace"] = self.storage_namespace
                cmd.append(f"--redis-password={self.redis_password}")
            return cmd, env
        if self.gcs_ft:
            env["RAY_gcs_rpc_server_reconnect_timeout_s"] = str(cfg.gcs_reconnect_timeout_s)
        gcs = f"{head_ip}:{cfg.gcs_port}"
        return self.runtime.module("serve_chaos.runtime.local.podinit", gcs, "--", ray, "start", f"--address={gcs}",
                                   *common), env

    def _rocksdb_env(self) -> dict[str, str]:
        """KubeRay v1.7.0 ``configureEmbeddedFT`` (``controllers/ray/common/pod.go``): the head gets
        ``RAY_gcs_storage=rocksdb`` and ``RAY_gcs_storage_path`` on a PVC that outlives the pod; here
        a directory of the run that outlives every head incarnation, fresh per storage namespace
        (a new cluster, as a new PVC)."""
        path = self.layout.root / "gcs-rocksdb" / self.storage_namespace
        path.mkdir(parents=True, exist_ok=True)
        return {"RAY_gcs_storage": "rocksdb", "RAY_gcs_storage_path": str(path)}

    def _haproxy_env(self) -> dict[str, str]:
        """Serve's HAProxy ingress on every node (Ray ``serve/_private/constants.py``
        ``RAY_SERVE_ENABLE_HA_PROXY``), its files in the run's short HAProxy directory
        (``RunLayout.haproxy_dir``; Serve adds the node id below it)."""
        base = self.layout.haproxy_dir
        base.mkdir(parents=True, exist_ok=True)
        return {"RAY_SERVE_ENABLE_HA_PROXY": "1",
                "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
                "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
                "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
                "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
                "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(base / "metrics.sock")}
