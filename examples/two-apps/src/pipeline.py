"""A composed app: Frontend parses the request and awaits a Scorer call through a DeploymentHandle."""

import time

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request


@serve.deployment
class Scorer:
    def __init__(self) -> None:
        time.sleep(4)  # loading a model

    async def __call__(self, text: str) -> float:
        return round(len(text) / 10.0, 2)


@serve.deployment
class Frontend:
    def __init__(self, scorer: DeploymentHandle) -> None:
        self.scorer = scorer

    async def __call__(self, request: Request) -> dict:
        text = (await request.body()).decode() or request.query_params.get("text", "")
        return {"text": text, "score": await self.scorer.remote(text)}


app = Frontend.bind(Scorer.bind())
