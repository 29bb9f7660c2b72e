"""Run N distinct calls through `CachedBackend(OpenAIChatBackend)`; a subprocess for kill tests.

    python -m tests.support.call_worker URL CACHE_PATH N CONCURRENCY

Prints one line per finished call, `<request fingerprint> <sent|hit>`, flushed as soon as the
call has returned (so after its result was committed), then `STATS <json>` at the end.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from safer_toolkit.builder.backends.client import ModelEndpoint, OpenAIChatBackend
from safer_toolkit.builder.cache import CachedBackend, CallCache
from tests.support.openai_server import fingerprint


async def main(url: str, cache_path: str, n: int, concurrency: int) -> None:
    endpoint = ModelEndpoint("worker", "test-model", [url], concurrency=concurrency,
                             backoff_s=0.01, backoff_cap_s=0.05)
    with CallCache(cache_path) as cache:
        backend = CachedBackend(OpenAIChatBackend(endpoint), cache)

        async def one(i: int) -> None:
            request = endpoint.request([{"role": "user", "content": f"item {i}"}])
            result = await backend.complete(request)
            tag = "hit" if result.from_cache else "sent"
            sys.stdout.write(f"{fingerprint(request.body())} {tag}\n")
            sys.stdout.flush()

        await asyncio.gather(*(one(i) for i in range(n)))
        await backend.aclose()
        stats = {"stable": backend.stats.stable(), "run": backend.stats.run()}
        print("STATS", orjson.dumps(stats).decode(), flush=True)


if __name__ == "__main__":
    url, cache_path, n, concurrency = sys.argv[1:5]
    asyncio.run(main(url, cache_path, int(n), int(concurrency)))
