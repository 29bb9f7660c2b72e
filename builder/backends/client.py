"""The OpenAI chat-completions client every model role uses (planner, responders, judge, eval).

It speaks the wire protocol over a bare `aiohttp` session rather than through the `openai` SDK:
measured here (benchmarks/bench_calls.py, 0 ms loopback) the SDK spends ≈ 1.3 ms of client CPU
per call, 17× a bare aiohttp loop (≈ 0.08 ms); this client spends ≈ 0.09 ms, ≈ 0.19 ms with the
SQLite cache in front. At 200 ms latency and 64 in flight it sustains 0.97 of the Little's-law
bound, the SDK 0.82 — and on two cores the client's CPU is shared with validation and prompt
rendering. What the SDK would give
us — retries, timeouts — we need to do differently anyway (it raises on a 200 whose body is not
JSON, and knows nothing of replicas), so the client below is small and does exactly this:

- at most `concurrency` requests on the wire per model (retries wait outside that bound);
- up to `max_retries` retries, exponential backoff with full jitter, on 408/409/429/5xx,
  dropped connections, timeouts and 200 bodies that are not a completion (`bad_json`);
  a `Retry-After` (seconds, HTTP date, or `retry-after-ms`) is honoured as a floor;
- `finish_reason` `length` / `content_filter` and a refusal fail at once, unretried: the same
  request would most likely end the same way and every retry is paid for; the pipeline decides
  what to do with the item (its own feedback loop changes the request, so it is a new call).
  The text that did come back rides on the failure (`CallFailed.partial`) for callers that
  judge a cut answer as it stands (`eval`);
- several base URLs are replicas of one deployment (see `_Replicas`);
- every failed attempt is counted under a stable reason tag, tokens under `CallStats`.

Reason tags (`CallFailed.reason`, `CallStats.retries` / `.failed`): `http_<status>`, `timeout`,
`connection`, `bad_json`, `finish_length`, `finish_content_filter`, `refusal`, `no_api_key`.

The API key is read from the environment variable the endpoint names at the moment a request
is built and is kept nowhere: not on the endpoint, not in the session, not in any error text.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from safer_toolkit.builder.backends.base import CallFailed, ChatRequest, ChatResult
from safer_toolkit.builder.backends.keys import key_env_problem, mask_key
from safer_toolkit.builder.backends.stats import CallStats

#: Statuses worth another attempt (the set the `openai` SDK retries, plus every 5xx).
_RETRY_STATUS = frozenset({408, 409, 429})
#: Consecutive failures after which a replica is cooled down.
_TRIP_AFTER = 5
#: A server may not make us wait longer than this for one retry.
_MAX_RETRY_AFTER_S = 600.0
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class ModelEndpoint:
    """One model role's deployment and how to call it.

    `base_urls` are replicas of the same deployment (same model, same weights), each ending in
    the API root (`http://host:8000/v1`). `api_key_env` is the *name* of the environment
    variable that holds the key (None for keyless local servers). Prices are dollars per
    million input / output tokens. `sampling` goes into every request built by `request()`,
    so it is part of the cache key.
    """

    role: str
    model: str
    base_urls: list[str]
    api_key_env: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 16
    timeout_s: float = 120.0
    max_retries: int = 6
    price_in: float = 0.0
    price_out: float = 0.0
    backoff_s: float = 0.5
    backoff_cap_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.base_urls:
            raise ValueError(f"model role {self.role!r}: at least one base URL is needed")
        if self.api_key_env and (problem := key_env_problem(self.api_key_env)):
            raise ValueError(f"model role {self.role!r}: api_key_env {problem}")
        if self.concurrency < 1 or not 0 < self.timeout_s < math.inf or self.max_retries < 0:
            raise ValueError(f"model role {self.role!r}: concurrency must be ≥ 1, timeout_s > 0 "
                             "(finite) and max_retries ≥ 0")

    def request(self, messages: list[dict[str, Any]], *,
                response_format: dict[str, Any] | None = None, template_version: str = "",
                **sampling: Any) -> ChatRequest:
        """A request to this model with the endpoint's sampling (overridden by `sampling`)."""
        return ChatRequest(self.model, messages, {**self.sampling, **sampling},
                           response_format, template_version)


@dataclass(eq=False)
class _Replica:
    index: int
    url: str
    in_flight: int = 0
    failures: int = 0  # consecutive failed attempts, reset by a success
    cooldowns: int = 0  # cool-downs in the current failing streak
    cooling_until: float = 0.0
    last_reason: str = "connection"


class _Replicas:
    """Spread calls over replicas; keep traffic off the failing ones.

    A call goes to the ready replica with the fewest requests in flight (ties taken in turn,
    and never back to the replica its previous attempt failed on when another is ready).
    After `_TRIP_AFTER` consecutive failures a replica cools down for `backoff_s`; when that
    ends a single probe request is let through, and each failed probe doubles the next
    cool-down up to `backoff_cap_s` (failures of requests sent before a cool-down do not count
    twice: many requests in flight failing at once is one outage). One success makes the
    replica ready again. If no replica is ready a call waits for the earliest cool-down —
    except once every replica has failed probes for long enough to reach the longest cool-down
    (about 30 s of outage with the defaults): the endpoint is then down and waiting calls fail
    at once with the replicas' last reason (a rerun sends them again), while probes go on
    testing for recovery. A 429 says nothing about a replica's health (it rate-limits this
    request), nor does a 4xx.
    """

    def __init__(self, urls: list[str], backoff_s: float, cap_s: float) -> None:
        self._all = [_Replica(i, u.rstrip("/") + "/chat/completions") for i, u in enumerate(urls)]
        self._backoff_s, self._cap_s = backoff_s, cap_s
        self._turn = 0
        self._changed = asyncio.Event()

    def _down(self, r: _Replica) -> bool:
        return r.cooldowns > 0 and self._backoff_s * 2 ** (r.cooldowns - 1) >= self._cap_s

    def _pick(self, now: float, avoid: _Replica | None) -> _Replica | None:
        ready = [r for r in self._all if r.cooling_until <= now
                 and (r.failures < _TRIP_AFTER or r.in_flight == 0)]
        if len(ready) > 1 and avoid in ready:
            ready.remove(avoid)
        if not ready:
            return None
        n = len(self._all)
        best = min(ready, key=lambda r: (r.in_flight, (r.index - self._turn) % n))
        self._turn = (best.index + 1) % n
        return best

    async def acquire(self, avoid: _Replica | None) -> _Replica:
        while True:
            now = time.monotonic()
            replica = self._pick(now, avoid)
            if replica is not None:
                replica.in_flight += 1
                return replica
            if all(self._down(r) for r in self._all):
                raise CallFailed(self._all[0].last_reason,
                                 f"all {len(self._all)} replica(s) are failing")
            cooling = [r.cooling_until - now for r in self._all if r.cooling_until > now]
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(cooling) if cooling else None)

    def release(self, replica: _Replica, healthy: bool | None, reason: str = "") -> None:
        """Return a replica after an attempt; `healthy` None means the outcome says nothing."""
        replica.in_flight -= 1
        if healthy:
            replica.failures, replica.cooldowns, replica.cooling_until = 0, 0, 0.0
        elif healthy is False:
            replica.failures += 1
            replica.last_reason = reason
            now = time.monotonic()
            if replica.failures >= _TRIP_AFTER and now >= replica.cooling_until:
                cooldown = min(self._cap_s, self._backoff_s * 2 ** replica.cooldowns)
                replica.cooling_until = now + cooldown
                replica.cooldowns += 1
        self._changed.set()
        self._changed = asyncio.Event()


class _AttemptFailed(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, detail: str, *, retry_after: float | None = None,
                 replica_fault: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail
        self.retry_after, self.replica_fault = retry_after, replica_fault


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `Retry-After` seconds or date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return min(_MAX_RETRY_AFTER_S, max(0.0, float(ms) / 1000))
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
    return min(_MAX_RETRY_AFTER_S, max(0.0, seconds))


class OpenAIChatBackend:
    """`ChatBackend` over an OpenAI-compatible `/chat/completions` endpoint (see module doc).

    Counters go to `self.stats` (wire-level: attempts, retries by reason, billed tokens);
    wrap it in `CachedBackend`, which shares the same `CallStats` and counts the calls.
    Create and use it inside one running event loop; `aclose()` it at the end.
    """

    def __init__(self, endpoint: ModelEndpoint, *, stats: CallStats | None = None,
                 rng: random.Random | None = None) -> None:
        self.endpoint = endpoint
        self.stats = stats or CallStats(price_in=endpoint.price_in, price_out=endpoint.price_out)
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(endpoint.concurrency)
        self._replicas = _Replicas(endpoint.base_urls, endpoint.backoff_s, endpoint.backoff_cap_s)
        self._timeout = aiohttp.ClientTimeout(total=endpoint.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        e = self.endpoint
        return f"OpenAIChatBackend(role={e.role!r}, model={e.model!r}, replicas={len(e.base_urls)})"

    def _key(self) -> str | None:
        name = self.endpoint.api_key_env
        if name is None:
            return None
        key = os.environ.get(name)
        if not key:
            raise CallFailed("no_api_key", f"environment variable {name} is not set")
        return key

    def _backoff(self, attempt: int) -> float:
        e = self.endpoint
        return self._rng.uniform(0.0, min(e.backoff_cap_s, e.backoff_s * 2 ** attempt))

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Send one request, retrying what may succeed on another attempt."""
        key = self._key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = orjson.dumps(request.body())
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=self._timeout,
                headers={"Content-Type": "application/json"})
        avoid: _Replica | None = None
        for attempt in range(self.endpoint.max_retries + 1):
            async with self._slots:
                replica = await self._replicas.acquire(avoid)
                self.stats.attempts += 1
                healthy, reason = None, ""  # None: says nothing (also when cancelled midway)
                try:
                    result = await self._attempt(replica.url, body, headers, request.model)
                    healthy = True
                    return result
                except _AttemptFailed as failed:
                    last = failed
                    if failed.replica_fault:
                        healthy, reason = False, failed.reason
                except CallFailed as failed:
                    healthy = failed.reason.startswith("finish_") or None
                    raise CallFailed(failed.reason, _scrub(failed.detail, key),
                                     partial=failed.partial) from None
                finally:
                    self._replicas.release(replica, healthy, reason)
            if attempt == self.endpoint.max_retries:
                break
            self.stats.retries[last.reason] += 1
            avoid = replica
            delay = self._backoff(attempt)
            if last.retry_after is not None:
                delay = last.retry_after * (1 + 0.1 * self._rng.random())
            await asyncio.sleep(delay)
        raise CallFailed(last.reason, _scrub(
            f"after {self.endpoint.max_retries + 1} attempts: {last.detail}", key))

    async def _attempt(self, url: str, body: bytes, headers: dict[str, str],
                       model: str) -> ChatResult:
        assert self._session is not None
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                raw = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers) if status != 200 else None
        except TimeoutError:
            raise _AttemptFailed("timeout", f"no answer in {self.endpoint.timeout_s} s") from None
        except aiohttp.ClientError as error:
            raise _AttemptFailed("connection", f"{type(error).__name__}: {error}") from None
        if status != 200:
            detail = raw.decode("utf-8", "replace")  # cut only once the key is masked
            if status in _RETRY_STATUS or status >= 500:
                raise _AttemptFailed(f"http_{status}", detail, retry_after=retry_after,
                                     replica_fault=status != 429)
            raise CallFailed(f"http_{status}", detail)
        return self._parse(raw, model)

    def _parse(self, raw: bytes, model: str) -> ChatResult:
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content")
            finish = choice.get("finish_reason") or "stop"
            usage = data.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
        except (orjson.JSONDecodeError, LookupError, TypeError, ValueError, AttributeError):
            raise _AttemptFailed("bad_json", raw.decode("utf-8", "replace")) from None
        self.stats.billed(prompt_tokens, completion_tokens)
        served = data.get("model")
        served = served if isinstance(served, str) else model
        if finish in ("length", "content_filter"):
            partial = ChatResult(content, finish, prompt_tokens, completion_tokens, served) \
                if isinstance(content, str) else None
            raise CallFailed(f"finish_{finish}", f"{completion_tokens} completion tokens",
                             partial=partial)
        if not isinstance(content, str):
            if isinstance(message.get("refusal"), str):
                raise CallFailed("refusal", message["refusal"])
            raise _AttemptFailed("bad_json", "the message has no text content")
        return ChatResult(content, finish, prompt_tokens, completion_tokens, served)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _scrub(text: str, key: str | None) -> str:
    """Error text never carries the key, even if a server echoes it back: masked, then cut."""
    return mask_key(text, key, _DETAIL_CHARS)
