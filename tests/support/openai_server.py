"""A loopback OpenAI-compatible chat-completions server that misbehaves on request.

It speaks the real wire protocol (`POST /v1/chat/completions`, `GET /v1/models`) so tests and
benchmarks drive the real client path; the only fake is the model. What it answers is a
pluggable `content(request_body) -> str` (default: a minimal instance of the requested
`json_schema`, else an echo of the last user text). A `FaultPlan` injects failures by request
number or by seeded probability. Counters (total, per fault, finished answers per request
fingerprint, peak requests in flight) are on the object, and at `GET /stats` for a server run as
its own process. With `require_key`, a request without that bearer key gets a 401 that quotes the
key it was sent, as the real service does. From the command line:

    python tests/support/openai_server.py --port 0 --latency 0.2 --fault 429=0.1 --fault 500=0.1

prints the port it listens on as its first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

#: Every fault kind the server can inject.
FAULTS = ("429", "500", "502", "503", "drop", "hang", "bad_json", "no_choices", "length",
          "content_filter", "refusal", "schema_break")

Content = Callable[[dict[str, Any]], str]


def fingerprint(body: Mapping[str, Any]) -> str:
    """A short stable id of a request body (what `finished` counts), computable by a client."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def schema_instance(schema: Mapping[str, Any]) -> Any:
    """The smallest value that satisfies a strict structured-output schema (no refs/oneOf)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: schema_instance(props[k]) for k in schema.get("required", props)}
    if kind == "array":
        return [schema_instance(schema.get("items", {}))] * schema.get("minItems", 0)
    if kind == "string":
        return "a" * schema.get("minLength", 0)
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        return min(max(low, 0), schema.get("maximum", max(low, 0)))
    return {"boolean": False, "null": None}.get(kind)


def default_content(body: dict[str, Any]) -> str:
    """A schema instance for `json_schema` requests, else `echo: <last user text>`."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return orjson.dumps(schema_instance(fmt["json_schema"]["schema"])).decode()
    if fmt.get("type") == "json_object":
        return "{}"
    user = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = user[-1]["content"] if user else ""
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return f"echo: {content}"


@dataclass
class FaultPlan:
    """Which requests fail, and how.

    `script` maps a request number (1-based, in arrival order) to a fault kind; `rates` maps a
    fault kind to a probability drawn per request from `random.Random(seed)` (requests not
    scripted). `retry_after` is the 429/503 `Retry-After` in seconds (None: no header);
    `hang_s` is how long a `hang` holds the request before answering normally.
    """

    script: Mapping[int, str] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after: float | None = 1.0
    hang_s: float = 30.0

    def __post_init__(self) -> None:
        unknown = (set(self.script.values()) | set(self.rates)) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULTS}")
        self._rng = random.Random(self.seed)

    def pick(self, number: int) -> str | None:
        if number in self.script:
            return self.script[number]
        if not self.rates:
            return None
        draw, edge = self._rng.random(), 0.0
        for kind, rate in self.rates.items():
            edge += rate
            if draw < edge:
                return kind
        return None


class OpenAIServer:
    """The server; `start()` runs it in a background thread (or use it as a context manager)."""

    def __init__(self, *, latency: float = 0.0, faults: FaultPlan | None = None,
                 content: Content = default_content, models: tuple[str, ...] = ("test-model",),
                 require_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.latency, self.faults, self.content, self.models = latency, faults or FaultPlan(), \
            content, models
        self.require_key = require_key
        self.host, self.port = host, port
        self.total = 0
        self.fault_counts: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []  # monotonic arrival time of every completion request
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._stats)
        return app

    def stats(self) -> dict[str, Any]:
        return {"total": self.total, "faults": dict(self.fault_counts),
                "finished": sum(self.finished.values()), "max_in_flight": self.max_in_flight}

    async def _models(self, _: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "loopback"}
                for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.require_key is not None and given != self.require_key:
            # Like the real service, the refusal quotes the key it was given.
            return web.json_response(
                {"error": {"message": f"Incorrect API key provided: {given}"}}, status=401)
        self.total += 1
        self.arrivals.append(time.monotonic())
        fault = self.faults.pick(self.total)
        if fault:
            self.fault_counts[fault] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self._answer(request, raw, fault)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, raw: bytes,
                      fault: str | None) -> web.StreamResponse:
        if fault in ("429", "500", "502", "503"):
            after = self.faults.retry_after
            headers = {"Retry-After": f"{after:g}"} if after is not None and fault in (
                "429", "503") else {}
            return web.json_response({"error": {"message": f"injected {fault}"}},
                                     status=int(fault), headers=headers)
        if fault == "drop":
            request.transport.abort()
            return web.Response()
        if fault == "hang":
            await asyncio.sleep(self.faults.hang_s)
        if fault == "bad_json":
            return web.Response(body=b'{"id": "chatcmpl-1", "choices": [{"mess',
                                content_type="application/json")
        body = orjson.loads(raw)
        if fault == "no_choices":
            return web.json_response({"id": "chatcmpl-1", "object": "chat.completion",
                                      "choices": []})
        content = '{"schema_broken": true}' if fault == "schema_break" else self.content(body)
        finish = fault if fault in ("length", "content_filter") else "stop"
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if fault == "refusal":  # structured outputs: the model declined, no content
            message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
        elif finish == "stop":
            self.finished[fingerprint(body)] += 1
        answer = {"id": f"chatcmpl-{self.total}", "object": "chat.completion", "created": 0,
                  "model": body.get("model", ""),
                  "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                  "usage": {"prompt_tokens": len(raw) // 4,
                            "completion_tokens": max(1, len(content) // 4),
                            "total_tokens": len(raw) // 4 + max(1, len(content) // 4)}}
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def serve(self) -> None:
        """Bind and start serving on the running loop (sets `self.port`)."""
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> OpenAIServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="openai-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _load_content(spec: str) -> Content:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND=RATE",
                        help=f"inject a fault with a probability; KIND in {', '.join(FAULTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--content", help="MODULE:FUNCTION computing content from a body")
    args = parser.parse_args(argv)
    rates = {k: float(v) for k, v in (f.split("=", 1) for f in args.fault)}
    server = OpenAIServer(latency=args.latency, host=args.host, port=args.port,
                          faults=FaultPlan(rates=rates, seed=args.seed,
                                           retry_after=args.retry_after),
                          content=_load_content(args.content) if args.content
                          else default_content)

    async def run() -> None:
        await server.serve()
        print(server.port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
