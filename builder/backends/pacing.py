"""What a server says about when to call it again: `Retry-After` and the rate-limit headers.

OpenAI-style servers send, with every answer, how much of their rate window is left and when it
resets (`x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests`, and the same for
`-tokens`; durations such as `1s`, `6m0s`, `20ms`). `Pacer` reads them and holds new requests
back *before* the window runs out — when what is left would be used up by the requests already
on the wire — instead of learning of it from a 429. `retry_after` reads the wait a 429 or 503
asks for.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

#: A server may not make us wait longer than this at once.
MAX_WAIT_S = 600.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `Retry-After` seconds or date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return min(MAX_WAIT_S, max(0.0, float(ms) / 1000))
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(MAX_WAIT_S, max(0.0, seconds))


def duration_s(value: str | None) -> float | None:
    """`1s`, `6m0s`, `59.7s`, `20ms`, `1h2m` or a bare number of seconds, as seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return min(MAX_WAIT_S, max(0.0, float(value)))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return min(MAX_WAIT_S, sum(float(n) * scale[u] for n, u in parts))


def _count(value: str | None) -> int | None:
    try:
        return None if value is None else int(float(value))
    except ValueError:
        return None


class Pacer:
    """Holds new requests while the server's rate window is nearly spent (see module doc).

    `observe` is given the headers of every answer and the number of requests still on the
    wire, `used` the tokens of every call; `wait` is awaited before each send.
    """

    def __init__(self) -> None:
        self._until = 0.0
        self._tokens_per_call = 0.0  # a running mean of the tokens one call uses

    def used(self, tokens: int) -> None:
        """Count the tokens one call used (the estimate the token window is judged by)."""
        self._tokens_per_call = tokens if not self._tokens_per_call \
            else 0.9 * self._tokens_per_call + 0.1 * tokens

    def observe(self, headers: Mapping[str, Any], on_wire: int) -> None:
        now = time.monotonic()
        requests = _count(headers.get("x-ratelimit-remaining-requests"))
        if requests is not None and requests <= on_wire:
            reset = duration_s(headers.get("x-ratelimit-reset-requests"))
            if reset:
                self._until = max(self._until, now + reset)
        left = _count(headers.get("x-ratelimit-remaining-tokens"))
        if left is not None and left < self._tokens_per_call * (on_wire + 1):
            reset = duration_s(headers.get("x-ratelimit-reset-tokens"))
            if reset:
                self._until = max(self._until, now + reset)

    async def wait(self) -> float:
        """Hold while the window is spent; the seconds held."""
        held = 0.0
        while (delay := self._until - time.monotonic()) > 0:
            held += delay
            await asyncio.sleep(delay)
        return held
