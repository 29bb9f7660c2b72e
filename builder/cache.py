"""The content-addressed call store: no finished call is ever paid for twice.

`CallCache` is one SQLite file in WAL mode. A row is keyed by `ChatRequest.key()` (model,
messages with images by hash, sampling, response format, template version — never a key or URL)
and holds the result plus the request's description for audit (the same hashed form, so image
bytes are not copied; the request serialises it once for both). Each result is committed on its
own before `complete` returns; with `synchronous=NORMAL` a committed transaction survives the
process being killed at any moment (only an OS crash or power loss can drop the last few). Failed
calls are not results — the next run tries them again — but each is logged in `failures` for the
build's audit trail. The one exception is opt-in (`keep_truncated`, for `eval`, which judges a
cut answer as it stands): a completion cut at the token limit is stored with its `length` finish
reason and replayed as the same `finish_length` failure, so a rerun neither pays for it again
nor sees it change.

`CachedBackend` puts the cache in front of any `ChatBackend`: hits never reach the inner backend,
and identical requests in flight at the same time are sent once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .backends.base import CallFailed, ChatBackend, ChatRequest, ChatResult
from .backends.stats import CallStats
from .storage import writing

#: the finish reason of a completion cut at the token limit, and the failure it raises
TRUNCATED = "length"
TRUNCATED_REASON = "finish_length"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    content TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    reasoning TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class CallCache:
    """Finished calls by request key, in one SQLite file (WAL). Use from one event loop.

    A Ray shard's cache (`cluster.shard`) is its own file, opened `exclusive` (WAL without
    shared memory: one process owns it, which also holds on a network file system), and reads
    through to `base` — the build's main cache, frozen while the shards run — for calls an
    earlier run finished; the driver `absorb`s the shard files into the main cache."""

    def __init__(self, path: str | Path, *, exclusive: bool = False,
                 base: str | Path | None = None) -> None:
        self.path = Path(path)
        with writing(self.path, "the call cache"):  # a read-only folder, a full disk: a message
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._base = None
            try:
                if exclusive:
                    self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
                if base is not None and Path(base).exists():  # read-only, unlocked: frozen
                    self._base = sqlite3.connect(
                        f"file:{Path(base).resolve()}?mode=ro&immutable=1", uri=True,
                        check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA busy_timeout=10000")
                self._db.executescript(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
                if "reasoning" not in columns:  # a cache written before reasoning was kept
                    self._db.execute(
                        "ALTER TABLE calls ADD COLUMN reasoning TEXT NOT NULL DEFAULT ''")
            except BaseException:
                self._db.close()
                raise

    def __repr__(self) -> str:
        return f"CallCache({str(self.path)!r})"

    def get(self, key: str) -> ChatResult | None:
        query = ("SELECT content, finish_reason, prompt_tokens, completion_tokens, model, "
                 "reasoning FROM calls WHERE key = ?")
        row = self._db.execute(query, (key,)).fetchone()
        if row is None and self._base is not None:
            row = self._base.execute(query, (key,)).fetchone()
        if row is None:
            return None
        content, finish_reason, prompt_tokens, completion_tokens, model, reasoning = row
        return ChatResult(content, finish_reason, prompt_tokens, completion_tokens, model,
                          from_cache=True, reasoning=reasoning)

    def put(self, request: ChatRequest, result: ChatResult, key: str | None = None) -> None:
        """Store a finished call (committed when this returns)."""
        with writing(self.path, "the call cache"):
            self._db.execute(
                "INSERT OR REPLACE INTO calls (key, model, content, finish_reason, "
                "prompt_tokens, completion_tokens, request, created_at, reasoning) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key or request.key(), result.model, result.content, result.finish_reason,
                 result.prompt_tokens, result.completion_tokens, request.described.decode(),
                 time.time(), result.reasoning))

    def record_failure(self, key: str, model: str, failure: CallFailed) -> None:
        """Log a failed call for audit; it stays uncached, so the next run sends it again."""
        with writing(self.path, "the call cache"):
            self._db.execute("INSERT INTO failures VALUES (?, ?, ?, ?, ?)",
                             (key, model, failure.reason, failure.detail[:1000], time.time()))

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM calls").fetchone()[0]

    def failure_counts(self) -> dict[str, int]:
        """Failed calls ever logged in this cache, by reason."""
        rows = self._db.execute("SELECT reason, count(*) FROM failures GROUP BY reason ORDER BY 1")
        return dict(rows.fetchall())

    def checkpoint(self) -> None:
        """Move everything into the main file, so a reader that opens it `immutable` (a Ray
        shard's `base`) sees every finished call."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def absorb(self, path: Path) -> int:
        """Copy the calls and failures of another cache file (a shard's) into this one, then
        delete it; returns the calls it held. Idempotent: a crash midway loses nothing."""
        with writing(self.path, "the call cache"):
            self._db.execute("ATTACH DATABASE ? AS shard", (str(path),))
            try:
                self._db.execute("BEGIN")
                try:
                    found = self._db.execute("SELECT count(*) FROM shard.calls").fetchone()[0]
                    self._db.execute("INSERT OR IGNORE INTO calls SELECT * FROM shard.calls")
                    self._db.execute("INSERT INTO failures SELECT * FROM shard.failures")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                self._db.execute("DETACH DATABASE shard")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return found

    def close(self) -> None:
        self._db.close()
        if self._base is not None:
            self._base.close()

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CachedBackend:
    """A `ChatBackend` that answers from `cache` when it can and stores what `inner` answers.

    A cache hit, and a request identical to one already in flight, come back with
    `from_cache=True` and never reach `inner` (the latter counted as `coalesced`). A send runs
    as its own task: if the caller that started it is cancelled, the call still finishes and is
    stored, and the other callers waiting on it still get it. Counters live in `self.stats`,
    shared with `inner.stats` when the inner backend keeps one, so one object describes the
    role for the manifest (`stats.stable()` / `stats.run()`).
    """

    def __init__(self, inner: ChatBackend, cache: CallCache, *,
                 stats: CallStats | None = None, keep_truncated: bool = False) -> None:
        self.inner = inner
        self.cache = cache
        self.keep_truncated = keep_truncated
        self.stats = stats or getattr(inner, "stats", None) or CallStats()
        self._in_flight: dict[str, asyncio.Task[ChatResult]] = {}

    def __repr__(self) -> str:
        return f"CachedBackend({self.inner!r}, {self.cache!r})"

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.stats.started()
        key = request.key()
        sending = False
        try:
            result = self.cache.get(key)
            if result is not None and result.finish_reason == TRUNCATED:
                if not self.keep_truncated:
                    result = None  # never a successful result: send it again
                else:
                    self.stats.cache_hits += 1
                    raise _truncated(result)
            if result is not None:
                self.stats.cache_hits += 1
            elif (task := self._in_flight.get(key)) is not None:
                self.stats.coalesced += 1
                result = _reused(await asyncio.shield(task))
            else:
                task = asyncio.ensure_future(self._send(key, request))
                self._in_flight[key] = task
                task.add_done_callback(lambda done: self._forget(key, done))
                sending = True
                self.stats.sent += 1
                result = await asyncio.shield(task)
        except CallFailed as failure:
            if sending and not failure.sent:  # it never left the process (no key, no budget)
                self.stats.sent -= 1
            self.stats.failed[failure.reason] += 1
            raise
        finally:
            self.stats.ended()
        self.stats.used(result.prompt_tokens, result.completion_tokens, result.model)
        return result

    async def _send(self, key: str, request: ChatRequest) -> ChatResult:
        try:
            result = await self.inner.complete(request)
        except CallFailed as failure:
            self.cache.record_failure(key, request.model, failure)
            if (self.keep_truncated and failure.reason == TRUNCATED_REASON
                    and failure.partial is not None):
                self.cache.put(request, failure.partial, key)
            raise
        self.cache.put(request, result, key)
        return result

    def _forget(self, key: str, task: asyncio.Task[ChatResult]) -> None:
        del self._in_flight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an abandoned failure is not logged as lost

    async def aclose(self) -> None:
        """Cancel sends nobody waits for any more, then close the inner backend."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.inner.aclose()


def _truncated(partial: ChatResult) -> CallFailed:
    """The failure a completion cut at the token limit raises, carrying the cut text."""
    return CallFailed(TRUNCATED_REASON, f"{partial.completion_tokens} completion tokens",
                      partial=partial)


def _reused(result: ChatResult) -> ChatResult:
    return replace(result, from_cache=True)
