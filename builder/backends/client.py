"""The OpenAI chat-completions client every model role uses (planner, responders, judge, eval).

It speaks the wire protocol over a bare `aiohttp` session rather than through the `openai` SDK:
measured here (benchmarks/bench_calls.py, 0 ms loopback) the SDK spends ≈ 1.3 ms of client CPU
per call, 17× a bare aiohttp loop (≈ 0.08 ms); this client spends ≈ 0.09 ms, ≈ 0.19 ms with the
SQLite cache in front. At 200 ms latency and 64 in flight it sustains 0.97 of the Little's-law
bound, the SDK 0.82 — and on two cores the client's CPU is shared with validation and prompt
rendering. What the SDK would give us — retries, timeouts — we need to do differently anyway (it
raises on a 200 whose body is not JSON, and knows nothing of replicas), so the client below is
small and does exactly this:

- at most `concurrency` requests on the wire per endpoint (retries wait outside that bound) —
  across every process of a Ray build when `slots` is the cluster's shared gate
  (`cluster.gate`), whose `held(retry=)` may also refuse a request for the shared budget;
  roles that share an endpoint share one client and its bound, and each counts its own calls
  (`view`), so wire figures are the role's even when the deployment is shared;
- up to `max_retries` retries, exponential backoff with full jitter, on 408/409/429/5xx,
  dropped connections, timeouts and 200 bodies that are not a completion (`bad_json`);
  a `Retry-After` (seconds, HTTP date, or `retry-after-ms`) is honoured as the wait (and does
  not grow the backoff of later failures), a retry takes the next free slot before any first
  attempt, and the `x-ratelimit-*` headers slow new requests before the server's window runs
  out (`Pacer`) — with 10% 429 (Retry-After 1 s) and 10% 500 a run takes ≈ 1.6–2× the time of
  the same run without faults (`bench_calls.py --modes faults`);
- a 5xx whose message names the response format or the grammar the request carries
  (llama-cpp-python answers `json_schema` with HTTP 500) fails at once: the server refuses the
  request form, and the preflight moves on;
- `finish_reason` `length` / `content_filter` and a refusal fail at once, unretried: the same
  request would most likely end the same way and every retry is paid for; the caller decides
  (the builder re-asks a cut reply with a larger `max_tokens`, `eval` judges it as it stands).
  The text that did come back rides on the failure (`CallFailed.partial`);
- a reasoning-model server that leaves `content` empty and puts the text in `reasoning` (vLLM)
  or `reasoning_content` (older vLLM, other servers) gives a result whose `reasoning` holds it:
  that is a model's way of answering, not a server fault, and never benches a replica;
- several base URLs are replicas of one deployment (see `_Replicas`);
- a shared `Budget` may refuse a request before it leaves the process;
- every failed attempt is counted under a stable reason tag, tokens under `CallStats`.

Reason tags (`CallFailed.reason`, `CallStats.retries` / `.failed`): `http_<status>`, `timeout`,
`connection`, `bad_json`, `finish_length`, `finish_content_filter`, `refusal`, `no_api_key`,
`budget`.

The API key is read from the environment variable the endpoint names at the moment a request
is built and is kept nowhere: not on the endpoint, not in the session, not in any error text
(masked in the whole server answer before that is cut short for a message).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from ...errors import ConfigError, EndpointError
from .base import CallFailed, ChatRequest, ChatResult
from .budget import Budget
from .keys import key_env_problem, mask_key
from .pacing import Pacer, retry_after
from .stats import CallStats

#: Statuses worth another attempt (the set the `openai` SDK retries, plus every 5xx).
_RETRY_STATUS = frozenset({408, 409, 429})
#: Consecutive failures after which a replica is cooled down.
_TRIP_AFTER = 5
_DETAIL_CHARS = 300
#: How much of an error body is read for its message (the key is masked in all of it).
_ERROR_BODY_CHARS = 65536
#: Words with which a 5xx answer says the response format or grammar, not the server, is the
#: problem — when the request carries one of `_CONSTRAINT_FIELDS`.
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|grammar|ebnf|"
                           r"structured_output", re.I)
_CONSTRAINT_FIELDS = (b'"response_format"', b'"grammar"', b'"structured_outputs"', b'"ebnf"')
#: The message fields reasoning-model servers put the thinking text in (newest first).
REASONING_FIELDS = ("reasoning", "reasoning_content")


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
            raise ConfigError(f"model role {self.role!r}: at least one base URL is needed")
        if self.api_key_env and (problem := key_env_problem(self.api_key_env)):
            raise ConfigError(f"model role {self.role!r}: api_key_env {problem}")
        if self.concurrency < 1 or not 0 < self.timeout_s < math.inf or self.max_retries < 0:
            raise ConfigError(f"model role {self.role!r}: concurrency must be ≥ 1, timeout_s > 0 "
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


class Slots:
    """At most `n` requests on the wire; a retry takes the next free slot before any first
    attempt, so a call that already waited out a backoff does not queue again behind every
    call offered since (what made the tail of a faulty run long)."""

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @contextlib.asynccontextmanager
    async def held(self, *, retry: bool) -> AsyncIterator[None]:
        await self.acquire(retry)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, retry: bool) -> None:
        if self._free and not any(self._waiting):
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        queue = self._waiting[0 if retry else 1]
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot as it was cancelled: pass it on
            else:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in self._waiting:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class _AttemptFailed(EndpointError):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, detail: str, *, retry_after: float | None = None,
                 replica_fault: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail
        self.retry_after, self.replica_fault = retry_after, replica_fault


def server_message(raw: bytes, key: str | None) -> str:
    """What an error body says — its `error.message` (OpenAI, vLLM), `detail` (FastAPI) or
    `message` when it has one, else its text — with the key masked *before* it is cut short,
    so no part of a key survives at the cut."""
    text = mask_key(raw[:_ERROR_BODY_CHARS].decode("utf-8", "replace"), key)
    with contextlib.suppress(orjson.JSONDecodeError, TypeError):
        data = orjson.loads(text)
        found = data.get("error") if isinstance(data, dict) else None
        found = found.get("message") if isinstance(found, dict) else found
        if not isinstance(found, str) and isinstance(data, dict):
            found = data.get("detail") or data.get("message")
        if isinstance(found, str) and found:
            text = found
        elif found is not None:
            text = orjson.dumps(found).decode()
    return " ".join(text.split())[:_DETAIL_CHARS]  # one line, for logs and the summary


def _text_field(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    return value if isinstance(value, str) else ""


class OpenAIChatBackend:
    """`ChatBackend` over an OpenAI-compatible `/chat/completions` endpoint (see module doc).

    Counters go to `self.stats` (wire-level: attempts, retries by reason, billed tokens), or to
    the stats of the role view a call came through (`view`); wrap either in `CachedBackend`,
    which shares the same `CallStats` and counts the calls. Create and use it inside one
    running event loop; `aclose()` it at the end.
    """

    def __init__(self, endpoint: ModelEndpoint, *, stats: CallStats | None = None,
                 rng: random.Random | None = None, budget: Budget | None = None,
                 slots: Any = None) -> None:
        self.endpoint = endpoint
        self.stats = stats or CallStats(price_in=endpoint.price_in, price_out=endpoint.price_out)
        self.budget = budget
        self._rng = rng or random.Random()
        self._slots = slots or Slots(endpoint.concurrency)
        self._replicas = _Replicas(endpoint.base_urls, endpoint.backoff_s, endpoint.backoff_cap_s)
        self._pacer = Pacer()
        self._on_wire = 0
        self._timeout = aiohttp.ClientTimeout(total=endpoint.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        e = self.endpoint
        return f"OpenAIChatBackend(role={e.role!r}, model={e.model!r}, replicas={len(e.base_urls)})"

    def view(self, stats: CallStats) -> RoleClient:
        """This client as one role sees it: the same connections, bound and replicas, with the
        role's own counters."""
        return RoleClient(self, stats)

    def _auth(self) -> tuple[str | None, dict[str, str]]:
        """(the key, the headers carrying it), read from the environment now."""
        name = self.endpoint.api_key_env
        if name is None:
            return None, {}
        key = os.environ.get(name)
        if not key:
            raise CallFailed("no_api_key", f"environment variable {name} is not set",
                             sent=False)
        return key, {"Authorization": f"Bearer {key}"}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=self._timeout,
                headers={"Content-Type": "application/json"})
        return self._session

    def _backoff(self, attempt: int) -> float:
        e = self.endpoint
        return self._rng.uniform(0.0, min(e.backoff_cap_s, e.backoff_s * 2 ** attempt))

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Send one request, retrying what may succeed on another attempt."""
        return await self.send(request)

    async def send(self, request: ChatRequest, stats: CallStats | None = None, *,
                   retries: int | None = None) -> ChatResult:
        """`complete`, counting into `stats` (default `self.stats`), with at most `retries`
        retries (default: the endpoint's)."""
        stats = stats or self.stats
        key, headers = self._auth()
        body = orjson.dumps(request.body())
        self._open()
        retries = self.endpoint.max_retries if retries is None else retries
        avoid: _Replica | None = None
        backoffs = 0
        for attempt in range(retries + 1):
            async with self._slots.held(retry=attempt > 0):
                stats.paced_s += await self._pacer.wait()
                if self.budget is not None:
                    try:
                        self.budget.admit()
                    except CallFailed as refused:
                        refused.sent = attempt > 0
                        raise
                replica = await self._replicas.acquire(avoid)
                stats.attempts += 1
                healthy, reason = None, ""  # None: says nothing (also when cancelled midway)
                try:
                    result = await self._attempt(replica.url, body, headers, request.model,
                                                 key, stats)
                    healthy = True
                    return result
                except _AttemptFailed as failed:
                    last = failed
                    if failed.replica_fault:
                        healthy, reason = False, failed.reason
                except CallFailed as failed:
                    healthy = failed.reason.startswith("finish_") or None
                    raise
                finally:
                    self._replicas.release(replica, healthy, reason)
            if attempt == retries:
                break
            stats.retries[last.reason] += 1
            avoid = replica
            if last.retry_after is not None:  # the server said how long: that, and no longer
                delay = last.retry_after * (1 + 0.1 * self._rng.random())
            else:  # the backoff grows with the failures that did not come with a wait
                delay = self._backoff(backoffs)
                backoffs += 1
            await asyncio.sleep(delay)
        raise CallFailed(last.reason, f"after {retries + 1} attempts: {last.detail}")

    async def _attempt(self, url: str, body: bytes, headers: dict[str, str], model: str,
                       key: str | None, stats: CallStats) -> ChatResult:
        session = self._open()
        self._on_wire += 1
        try:
            async with session.post(url, data=body, headers=headers) as response:
                raw = await response.read()
                status = response.status
                wait = retry_after(response.headers) if status != 200 else None
                self._pacer.observe(response.headers, self._on_wire - 1)
        except TimeoutError:
            raise _AttemptFailed("timeout", f"no answer in {self.endpoint.timeout_s} s") from None
        except aiohttp.ClientError as error:
            raise _AttemptFailed("connection", mask_key(f"{type(error).__name__}: {error}", key)
                                 ) from None
        finally:
            self._on_wire -= 1
        if status != 200:
            detail = server_message(raw, key)
            if status >= 500 and any(f in body for f in _CONSTRAINT_FIELDS) \
                    and _FORMAT_WORDS.search(detail):
                # a server that cannot do the response format or grammar (llama-cpp-python
                # answers json_schema with a 500): a refusal of this request, not a fault
                raise CallFailed(f"http_{status}", detail)
            if status in _RETRY_STATUS or status >= 500:
                raise _AttemptFailed(f"http_{status}", detail, retry_after=wait,
                                     replica_fault=status != 429)
            raise CallFailed(f"http_{status}", detail)
        return self._parse(raw, model, key, stats)

    def _parse(self, raw: bytes, model: str, key: str | None, stats: CallStats) -> ChatResult:
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
            content = _text_field(message, "content")
            finish = choice.get("finish_reason") or "stop"
            usage = data.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
        except (orjson.JSONDecodeError, LookupError, TypeError, ValueError, AttributeError):
            raise _AttemptFailed("bad_json", server_message(raw, key)) from None
        stats.billed(prompt_tokens, completion_tokens)
        self._pacer.used(prompt_tokens + completion_tokens)
        if self.budget is not None:
            self.budget.bill(prompt_tokens, completion_tokens, stats.price_in, stats.price_out)
        served = data.get("model")
        served = served if isinstance(served, str) else model
        # the thinking text matters only when the answer is not in `content`
        reasoning = "" if content.strip() else next(
            (text for name in REASONING_FIELDS if (text := _text_field(message, name))), "")
        result = ChatResult(content, finish, prompt_tokens, completion_tokens, served,
                            reasoning=reasoning)
        if finish in ("length", "content_filter"):
            raise CallFailed(f"finish_{finish}", f"{completion_tokens} completion tokens",
                             partial=result)
        refusal = message.get("refusal")
        if not result.text.strip() and isinstance(refusal, str) and refusal:
            raise CallFailed("refusal", mask_key(refusal, key)[:_DETAIL_CHARS])
        return result

    async def models(self) -> dict[str, dict[str, str] | None]:
        """The models each replica lists at `GET /models`, id → `owned_by` ("" when not said;
        None where it lists none): the owner names the server kind on vLLM, SGLang and llama.cpp.

        Raises `CallFailed` when a replica cannot be reached or refuses the key — the server's
        own message in the detail."""
        session = self._open()
        key, headers = self._auth()
        listed: dict[str, dict[str, str] | None] = {}
        for base in self.endpoint.base_urls:
            url = base.rstrip("/") + "/models"
            try:
                async with session.get(url, headers=headers) as response:
                    raw, status = await response.read(), response.status
            except TimeoutError:
                raise CallFailed("timeout", f"{url}: no answer in {self.endpoint.timeout_s} s"
                                 ) from None
            except aiohttp.ClientError as error:
                raise CallFailed("connection", mask_key(f"{url}: {type(error).__name__}: {error}",
                                                     key)) from None
            if status in (401, 403):
                raise CallFailed(f"http_{status}", f"{url}: {server_message(raw, key)}")
            ids = None
            if status == 200:
                with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
                    data = orjson.loads(raw).get("data")
                    ids = {m["id"]: str(m.get("owned_by") or "") for m in data
                           if isinstance(m, dict) and isinstance(m.get("id"), str)} \
                        if isinstance(data, list) else None
            listed[base] = ids
        return listed

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class RoleClient:
    """One role's view of a shared `OpenAIChatBackend` (see `OpenAIChatBackend.view`)."""

    def __init__(self, client: OpenAIChatBackend, stats: CallStats) -> None:
        self.client, self.stats = client, stats

    def __repr__(self) -> str:
        return f"RoleClient({self.client!r})"

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self.client.send(request, self.stats)

    async def aclose(self) -> None:
        """The shared client is closed by its owner."""
