"""`safer-toolkit serve`: the offline backend behind an OpenAI-compatible HTTP API.

`POST /v1/chat/completions` (non-streaming, `response_format` json_schema honoured because the
offline roles answer exactly the requested shape) and `GET /v1/models`. A body is checked by
type first (`serve_request`: a 400 names the field), answers are computed in a few worker
threads, and the bytes of request bodies held at once are bounded, so no request — however
large or numerous — stalls or swamps the others. Answers are computed by
the same `OfflineBackend.answer` an in-process build calls, from the wire body alone, so a build
with `--backend openai --base-url http://HOST:PORT/v1` yields the same rows as `--backend
offline`. Other components extend it by passing their own `answer` function or model names.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiohttp import web

from .offline import (
    OFFLINE_MODELS,
    OfflineBackend,
    OfflineRequestError,
)
from .serve_request import BadRequest, read_body

MAX_BODY_BYTES = 64 * 1024 * 1024  # one request
#: Request bodies held at once, all requests together; a request waits (unread, so the client
#: is held back by TCP) until its bytes fit.
MAX_BYTES_IN_FLIGHT = 256 * 1024 * 1024
#: Answers computed at once, in worker threads: a slow request never stalls the event loop,
#: and work in flight is bounded whatever the number of connections.
WORKERS = 4
Answer = Callable[[Mapping[str, Any]], str]
#: (content, the model that answered) for a request body
Reply = Callable[[Mapping[str, Any]], tuple[str, str]]


def _error_body(message: str, param: str | None = None,
                kind: str = "invalid_request_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param,
                                   "code": None}})


class ByteBudget:
    """At most `limit` bytes held at once; waiters are served first come, first served."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, n: int) -> None:
        if not self._waiting and self.used + n <= self.limit:
            self.used += n
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiting.append((n, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(n)  # granted just as the waiter went away
            else:
                self._waiting.remove((n, granted))
            raise

    def release(self, n: int) -> None:
        self.used -= n
        while self._waiting and self.used + self._waiting[0][0] <= self.limit:
            size, granted = self._waiting.popleft()
            self.used += size
            granted.set_result(None)


def handle(raw: bytes, reply: Reply, backend: OfflineBackend) -> tuple[int, bytes]:
    """Status and JSON body for one request body; plain and synchronous (a worker runs it)."""
    try:
        body = read_body(raw)
    except BadRequest as exc:
        return 400, _error_body(str(exc), exc.param)
    if body.get("stream"):
        return 400, _error_body("streaming is not supported by the offline server", "stream")
    if body.get("n", 1) not in (1, None):
        return 400, _error_body("only n = 1 is supported", "n")
    try:
        content, served = reply(body)
    except OfflineRequestError as exc:
        return 400, _error_body(str(exc), "messages")
    prompt, completion = backend.usage(body.get("messages"), content)
    digest = hashlib.sha256(raw).hexdigest()  # same request bytes, same id
    return 200, orjson.dumps({
        "id": f"chatcmpl-{digest[:24]}", "object": "chat.completion", "created": 0,
        "model": served,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    })


def create_app(answer: Answer | None = None,
               models: Iterable[str] = tuple(OFFLINE_MODELS.values()), *,
               workers: int = WORKERS, bytes_in_flight: int = MAX_BYTES_IN_FLIGHT
               ) -> web.Application:
    """The aiohttp application; `answer(body) -> content` defaults to the offline backend."""
    backend = OfflineBackend()
    model_ids = list(models)
    # the offline backend names the model that really answered; another `answer` the one asked
    reply: Reply = backend.reply_body if answer is None else (lambda b: (answer(b), b["model"]))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="serve")
    budget = ByteBudget(max(bytes_in_flight, MAX_BODY_BYTES))

    async def list_models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "safer-toolkit"}
            for m in model_ids]})

    async def complete(request: web.Request) -> web.Response:
        size = request.content_length
        if size is not None and size > MAX_BODY_BYTES:
            return web.Response(body=_error_body(f"the body is {size:,} bytes; the limit is "
                                                 f"{MAX_BODY_BYTES:,}"), status=413,
                                content_type="application/json")
        held = MAX_BODY_BYTES if size is None else size
        await budget.acquire(held)
        try:
            raw = await request.read()
            job = pool.submit(handle, raw, reply, backend)
        except BaseException:
            budget.release(held)
            raise
        loop = asyncio.get_running_loop()
        # released when the work is done, even if the client has gone away meanwhile
        job.add_done_callback(lambda _: loop.is_closed() or
                              loop.call_soon_threadsafe(budget.release, held))
        status, payload = await asyncio.wrap_future(job)
        return web.Response(body=payload, status=status, content_type="application/json")

    async def shutdown(_: web.Application) -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/v1/chat/completions", complete)
    app.router.add_get("/v1/models", list_models)
    app.on_cleanup.append(shutdown)
    return app


async def start(host: str = "127.0.0.1", port: int = 8000,
                app: web.Application | None = None) -> tuple[web.AppRunner, int]:
    """Bind and serve on the running loop; returns the runner and the bound port."""
    runner = web.AppRunner(app or create_app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, runner.addresses[0][1]
