"""A composed Serve app: an ingress that calls a downstream deployment through a DeploymentHandle.

``GET /`` reaches an ``Ingress`` replica, which awaits one call to a
``Downstream`` replica and answers JSON naming both PIDs.  Neither answer is a
bare PID: the harness learns who served a request from Serve's logs alone.
The downstream constructor sleeps ``COMPOSED_DOWNSTREAM_START_S`` (3 s) -- a
small model load -- so its replacement takes a measurable while.
"""

from __future__ import annotations

import os
import time

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request

DOWNSTREAM_START_S = float(os.environ.get("COMPOSED_DOWNSTREAM_START_S", "3"))


@serve.deployment(num_replicas=3, ray_actor_options={"num_cpus": 0})
class Downstream:
    def __init__(self) -> None:
        time.sleep(DOWNSTREAM_START_S)

    async def __call__(self, n: int) -> dict:
        return {"pid": os.getpid(), "n": n}


@serve.deployment(num_replicas=3, ray_actor_options={"num_cpus": 0})
class Ingress:
    def __init__(self, downstream: DeploymentHandle) -> None:
        self.downstream = downstream

    async def __call__(self, request: Request) -> dict:
        answer = await self.downstream.remote(1)
        return {"ingress_pid": os.getpid(), "downstream_pid": answer["pid"]}


app = Ingress.bind(Downstream.bind())
