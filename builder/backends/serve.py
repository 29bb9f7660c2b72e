"""`safer-toolkit serve`: the offline backend behind an OpenAI-compatible HTTP API.

`POST /v1/chat/completions` (non-streaming, `response_format` json_schema honoured because the
offline roles answer exactly the requested shape) and `GET /v1/models`. Answers are computed by
the same `OfflineBackend.answer` an in-process build calls, from the wire body alone, so a build
with `--backend openai --base-url http://HOST:PORT/v1` yields the same rows as `--backend
offline`. Other components extend it by passing their own `answer` function or model names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from safer_toolkit.builder.backends.offline import (
    OFFLINE_MODELS,
    OfflineBackend,
    OfflineRequestError,
)

MAX_BODY_BYTES = 64 * 1024 * 1024
Answer = Callable[[Mapping[str, Any]], str]


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": None}},
                             status=status)


def create_app(answer: Answer | None = None,
               models: Iterable[str] = tuple(OFFLINE_MODELS.values())) -> web.Application:
    """The aiohttp application; `answer(body) -> content` defaults to the offline backend."""
    backend = OfflineBackend()
    model_ids = list(models)
    # the offline backend names the model that really answered; another `answer` the one asked
    reply = backend.reply_body if answer is None else (lambda b: (answer(b), b["model"]))

    async def list_models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "safer-toolkit"}
            for m in model_ids]})

    async def complete(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        if body.get("stream"):
            return _error(400, "streaming is not supported by the offline server")
        if not isinstance(body.get("model"), str):
            return _error(400, "`model` must be a string")
        if body.get("n", 1) != 1:
            return _error(400, "only n = 1 is supported")
        try:
            content, served = reply(body)
        except OfflineRequestError as exc:
            return _error(400, str(exc))
        prompt, completion = backend.usage(body.get("messages"), content)
        digest = hashlib.sha256(raw).hexdigest()  # same request bytes, same id
        return web.Response(body=orjson.dumps({
            "id": f"chatcmpl-{digest[:24]}", "object": "chat.completion", "created": 0,
            "model": served,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
        }), content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/v1/chat/completions", complete)
    app.router.add_get("/v1/models", list_models)
    return app


async def start(host: str = "127.0.0.1", port: int = 8000,
                app: web.Application | None = None) -> tuple[web.AppRunner, int]:
    """Bind and serve on the running loop; returns the runner and the bound port."""
    runner = web.AppRunner(app or create_app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, runner.addresses[0][1]
