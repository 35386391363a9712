"""A one-deployment app: GET /greet?name=... answers a greeting (a short model load at start)."""

import time

from ray import serve
from starlette.requests import Request


@serve.deployment
class Greeter:
    def __init__(self) -> None:
        time.sleep(2)

    async def __call__(self, request: Request) -> str:
        return f"hello, {request.query_params.get('name', 'world')}"


app = Greeter.bind()
