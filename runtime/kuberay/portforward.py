"""A local TCP endpoint that reaches one pod's port, like ``kubectl port-forward``.

Built on the official client's port-forward stream.  Every accepted local
connection opens its own stream on an ApiClient of its own (``api.py`` says
why) and picks its pod when it connects: a forwarder to "the head" follows
the head pod across recreations, one to a named pod fails once that pod is
gone, exactly as a port-forward to a deleted pod does.  Written by hand
because the client offers the stream but no listener.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any, Callable

#: The name the official client gives its per-stream proxy thread (``kubernetes/stream/ws_client.py``
#: PortForward.__init__).
CLIENT_PROXY_THREAD = "Kubernetes port forward proxy"


def _quiet_client_resets() -> None:
    """The client's proxy thread dies with ConnectionResetError when the pod's side of a forward
    goes away (a deleted pod, a restarted head): that is how such a connection ends, and the
    load records it as the request's failure.  Keep it off the terminal; any other exception of
    any thread goes to the hook that was there."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        thread = getattr(args, "thread", None)
        if thread is not None and thread.name.startswith(CLIENT_PROXY_THREAD) and \
                issubclass(args.exc_type, (ConnectionError, OSError)):
            return
        previous(args)

    threading.excepthook = hook


_quiet_client_resets()


class PodPortForwarder:
    def __init__(self, open_stream: Callable[[], tuple[Any, Callable[[], None]]], remote_port: int) -> None:
        """``open_stream()`` returns a kubernetes ``PortForward`` to ``remote_port`` of the pod,
        and a function that releases what the stream holds (its ApiClient)."""
        self.open_stream = open_stream
        self.remote_port = remote_port
        self.listener: socket.socket | None = None
        self.stopped = threading.Event()

    def start(self) -> int:
        """Listen on 127.0.0.1 (ephemeral port); return that port."""
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        threading.Thread(target=self._accept, daemon=True, name="port-forward").start()
        return self.listener.getsockname()[1]

    def stop(self) -> None:
        self.stopped.set()
        if self.listener is not None:
            self.listener.close()

    def _accept(self) -> None:
        assert self.listener is not None
        while not self.stopped.is_set():
            try:
                local, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(local,), daemon=True).start()

    def _pump(self, local: socket.socket) -> None:
        release: Callable[[], None] = lambda: None
        try:
            stream, release = self.open_stream()
            remote = stream.socket(self.remote_port)
        except Exception:  # noqa: BLE001 - the pod is gone or unreachable: refuse this connection
            local.close()
            release()
            return
        try:
            peers = {local: remote, remote: local}
            while not self.stopped.is_set():
                readable, _, _ = select.select(list(peers), [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            local.close()
            try:
                remote.close()
                stream.close()
            except Exception:  # noqa: BLE001 - best effort on a dying stream
                pass
            release()
