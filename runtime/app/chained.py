"""A chained Serve app: the ingress passes one deployment's response into another's call.

``GET /`` reaches an ``Ingress`` replica, which calls ``Embed`` and hands that *unresolved*
``DeploymentResponse`` straight to ``Score`` (``await self.score.remote(self.embed.remote(x))``,
Serve's "model composition" chaining): Serve resolves the first response inside the second
call, so ``Score`` waits on an object an ``Embed`` replica produces.  The answer names all
three replicas' PIDs; none is a bare PID (who served comes from Serve's logs).  Each stage's
constructor sleeps ``CHAINED_START_S`` (2 s) -- a small model load.
"""

from __future__ import annotations

import os
import time

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request

START_S = float(os.environ.get("CHAINED_START_S", "2"))


@serve.deployment(num_replicas=3, ray_actor_options={"num_cpus": 0})
class Embed:
    def __init__(self) -> None:
        time.sleep(START_S)

    async def __call__(self, n: int) -> dict:
        return {"embed_pid": os.getpid(), "n": n}


@serve.deployment(num_replicas=3, ray_actor_options={"num_cpus": 0})
class Score:
    def __init__(self) -> None:
        time.sleep(START_S)

    async def __call__(self, embedded: dict) -> dict:
        return {**embedded, "score_pid": os.getpid()}


@serve.deployment(num_replicas=3, ray_actor_options={"num_cpus": 0})
class Ingress:
    def __init__(self, embed: DeploymentHandle, score: DeploymentHandle) -> None:
        self.embed = embed
        self.score = score

    async def __call__(self, request: Request) -> dict:
        # The unresolved response of one stage is the argument of the next.
        answer = await self.score.remote(self.embed.remote(1))
        return {"ingress_pid": os.getpid(), **answer}


app = Ingress.bind(Embed.bind(), Score.bind())
