"""``kubectl exec`` through the official client: each exec on an ApiClient of its own (``api.py``
says why), its exit code read from the status channel, every failure one of our errors.

``kubernetes.stream.stream(..., _preload_content=False)`` returns the ``WSClient``
(``kubernetes/stream/ws_client.py``): ``run_forever`` reads until the process ends (or the
timeout), ``returncode`` parses the v4 status channel ("Success" is 0, else the exit code in
the status details), and a websocket that cannot be opened raises ``ApiException(status=0)``.
``Background`` keeps one exec running (a bounded loop in the pod) on its own thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from serve_chaos.runtime.errors import InfrastructureError
from serve_chaos.runtime.kuberay.api import KubeApi, kube_error


@dataclass(frozen=True)
class ExecResult:
    """What one exec printed, and its exit code (None: still running when we stopped waiting)."""

    stdout: str
    stderr: str
    returncode: int | None

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class PodExec:
    """Runs commands in a pod's container, each on a client of its own."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api = api
        self.ns = namespace

    def open(self, pod: str, container: str, command: list[str]) -> tuple[Any, Any]:
        """A started exec (the WSClient) and the function that releases its ApiClient."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import stream

        core, close = self.api.stream_core()
        try:
            return stream(core.connect_get_namespaced_pod_exec, pod, self.ns, container=container, command=command,
                          stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False), close
        except ApiException as err:
            close()
            raise kube_error(err, f"exec in pod {pod}") from None
        except BaseException:
            close()
            raise

    @staticmethod
    def collect(ws: Any, timeout_s: float | None) -> ExecResult:
        """What the exec printed by the time it ended or ``timeout_s`` passed.  The channels are
        read without waiting (``timeout=0``): the client's ``read_stdout()`` with no timeout waits
        for more output while the process still runs, so an exec that outlived ``timeout_s``
        would hang its caller for as long as the process lives."""
        ws.run_forever(timeout=timeout_s)
        stdout, stderr = ws.read_stdout(timeout=0) or "", ws.read_stderr(timeout=0) or ""
        code = ws.returncode
        return ExecResult(str(stdout), str(stderr), code)

    def run(self, pod: str, container: str, command: list[str], timeout_s: float = 120.0) -> ExecResult:
        ws, close = self.open(pod, container, command)
        try:
            return self.collect(ws, timeout_s)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InfrastructureError(f"exec in pod {pod} broke off: {err}") from None
        finally:
            try:
                ws.close()
            finally:
                close()


class Background:
    """One exec left running (a bounded loop in the pod), collected when it ends or is ended."""

    def __init__(self, execs: PodExec, pod: str, container: str, command: list[str], timeout_s: float) -> None:
        self.pod = pod
        self.result: ExecResult | None = None
        self.error: str | None = None
        self._ws, self._close = execs.open(pod, container, command)
        self._thread = threading.Thread(target=self._run, args=(timeout_s,), daemon=True, name=f"exec-{pod}")
        self._thread.start()

    def _run(self, timeout_s: float) -> None:
        try:
            self.result = PodExec.collect(self._ws, timeout_s)
        except Exception as err:  # noqa: BLE001 - the stream broke: said in `error`
            self.error = f"{type(err).__name__}: {err}"
        finally:
            try:
                self._ws.close()
            finally:
                self._close()

    def wait(self, timeout_s: float) -> ExecResult | None:
        """The exec's result once it ended (within ``timeout_s``), else None."""
        self._thread.join(timeout_s)
        return self.result
