"""A list-and-watch cache of one kind of object (what client-go's informers do), for the
host-side controllers of the k8s target (Service proxy, volume provisioner).

Each informer has an ApiClient of its own (a stream must not share one), keeps the objects as
the API serialises them (dicts) by ``namespace/name``, and calls ``on_change()`` after every
event; a stream that ends or fails is listed and watched again.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from kubernetes import client, config, watch


class Informer(threading.Thread):
    def __init__(self, kubeconfig: str, lister: Callable[[Any], Callable[..., Any]], on_change: Callable[[], None],
                 stop: threading.Event, name: str, log: Callable[[str], None] = print) -> None:
        super().__init__(daemon=True, name=f"informer-{name}")
        self.kubeconfig = kubeconfig
        self.lister = lister  # api_client -> the list function (e.g. CoreV1Api(c).list_service_for_all_namespaces)
        self.on_change = on_change
        self.stop = stop
        self.log = log
        self.objects: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()

    def items(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.objects.values())

    @staticmethod
    def key(obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def run(self) -> None:
        while not self.stop.is_set():
            api_client = config.new_client_from_config(config_file=self.kubeconfig)
            try:
                self._list_and_watch(api_client)
            except Exception as err:  # noqa: BLE001 - the API server may be restarting: list again
                self.log(f"{self.name}: {type(err).__name__}: {str(err)[:200]}")
                self.stop.wait(1.0)
            finally:
                api_client.close()

    def _list_and_watch(self, api_client: client.ApiClient) -> None:
        func = self.lister(api_client)
        listed = json.loads(func(_preload_content=False).data)
        with self.lock:
            self.objects = {self.key(o): o for o in listed.get("items") or []}
        self.synced.set()
        self.on_change()
        version = listed["metadata"]["resourceVersion"]
        for event in watch.Watch().stream(func, resource_version=version, timeout_seconds=240):
            if self.stop.is_set():
                return
            raw = event.get("raw_object") or {}
            if event.get("type") == "ERROR":
                return
            with self.lock:
                if event["type"] == "DELETED":
                    self.objects.pop(self.key(raw), None)
                else:
                    self.objects[self.key(raw)] = raw
            self.on_change()
