"""The call cache: hits never reach the endpoint, results survive kill -9, keys never land."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from safer_toolkit.builder.backends.base import CallFailed, ChatRequest, ChatResult, image_part
from safer_toolkit.builder.backends.client import ModelEndpoint, OpenAIChatBackend
from safer_toolkit.builder.cache import CachedBackend, CallCache
from safer_toolkit.builder.stages.content import image_content
from tests.support.openai_server import FaultPlan, OpenAIServer

ROOT = Path(__file__).resolve().parents[1]


def endpoint(url: str, **overrides: object) -> ModelEndpoint:
    return ModelEndpoint("judge", "test-model", [url],
                         **{"backoff_s": 0.01, "backoff_cap_s": 0.05, **overrides})


def ask(ep: ModelEndpoint, text: str):
    return ep.request([{"role": "user", "content": text}])


def run_calls(ep: ModelEndpoint, cache: CallCache, requests: list) -> tuple[list, CachedBackend]:
    backend = CachedBackend(OpenAIChatBackend(ep), cache)

    async def go() -> list:
        try:
            return await asyncio.gather(*(backend.complete(r) for r in requests),
                                        return_exceptions=True)
        finally:
            await backend.aclose()

    return asyncio.run(go()), backend


def test_a_second_run_is_served_from_the_cache_and_sends_nothing(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        ep = endpoint(server.url, price_in=1.0, price_out=4.0)
        requests = [ask(ep, f"q{i}") for i in range(10)]
        with CallCache(tmp_path / "calls.sqlite") as cache:
            first, fresh = run_calls(ep, cache, requests)
        with CallCache(tmp_path / "calls.sqlite") as cache:
            second, rerun = run_calls(ep, cache, requests)
        assert server.total == 10
    assert [r.content for r in second] == [r.content for r in first]
    assert all(r.from_cache for r in second) and not any(r.from_cache for r in first)
    assert (rerun.stats.sent, rerun.stats.cache_hits, rerun.stats.attempts) == (0, 10, 0)
    # what the manifest must reproduce is the same; what this run did is not
    assert rerun.stats.stable() == fresh.stats.stable()
    assert fresh.stats.stable()["calls"] == 10 and fresh.stats.stable()["cost_usd"] > 0
    assert rerun.stats.run() != fresh.stats.run()


def test_identical_requests_in_flight_are_sent_once(tmp_path: Path) -> None:
    with OpenAIServer(latency=0.05) as server:
        ep = endpoint(server.url)
        with CallCache(tmp_path / "calls.sqlite") as cache:
            results, backend = run_calls(ep, cache, [ask(ep, "same")] * 5)
        assert server.total == 1
    assert {r.content for r in results} == {"echo: same"}
    assert sorted(r.from_cache for r in results) == [False, True, True, True, True]
    assert (backend.stats.sent, backend.stats.coalesced, backend.stats.calls) == (1, 4, 5)


def test_a_failed_call_is_logged_not_cached_and_sent_again_next_run(tmp_path: Path) -> None:
    with OpenAIServer(faults=FaultPlan(script={1: "length"})) as server:
        ep = endpoint(server.url)
        with CallCache(tmp_path / "calls.sqlite") as cache:
            (failed,), backend = run_calls(ep, cache, [ask(ep, "long")])
            assert isinstance(failed, CallFailed)
            assert backend.stats.failed == {"finish_length": 1}
            assert backend.stats.stable()["calls"] == 0
            assert len(cache) == 0 and cache.failure_counts() == {"finish_length": 1}
            (retried,), _ = run_calls(ep, cache, [ask(ep, "long")])
            assert len(cache) == 1
        assert server.total == 2
    assert isinstance(retried, ChatResult) and not retried.from_cache


def test_a_cut_answer_is_kept_only_on_request_and_replayed_as_the_same_failure(
        tmp_path: Path) -> None:
    """`keep_truncated` (eval) stores a completion cut at the token limit and gives it back as
    the same `finish_length` failure; without it (the builder) it is never a result."""
    with OpenAIServer(faults=FaultPlan(script={1: "length", 3: "length"})) as server:
        ep = endpoint(server.url)
        with CallCache(tmp_path / "calls.sqlite") as cache:
            backend = CachedBackend(OpenAIChatBackend(ep), cache, keep_truncated=True)

            async def twice() -> list:
                try:
                    return [await _outcome(backend.complete(ask(ep, "long"))) for _ in "ab"]
                finally:
                    await backend.aclose()

            first, replayed = asyncio.run(twice())
            assert server.total == 1 and len(cache) == 1
            for failure in (first, replayed):
                assert isinstance(failure, CallFailed) and failure.reason == "finish_length"
                assert failure.partial.content == "echo: long"
                assert failure.partial.finish_reason == "length"
            assert (first.partial.from_cache, replayed.partial.from_cache) == (False, True)
            assert backend.stats.failed == {"finish_length": 2}
            assert (backend.stats.sent, backend.stats.cache_hits) == (1, 1)
            assert backend.stats.stable()["calls"] == 0  # never a used result
            # a builder-style backend on the same cache does not take it for a result
            (again,), builder = run_calls(ep, cache, [ask(ep, "long")])
            assert server.total == 2 and isinstance(again, ChatResult)
            assert again.finish_reason == "stop" and builder.stats.cache_hits == 0
            # ... and its failures stay out of the cache
            (cut,), _ = run_calls(ep, cache, [ask(ep, "other")])
            assert isinstance(cut, CallFailed) and cut.partial is not None
            assert len(cache) == 1


async def _outcome(call):
    try:
        return await call
    except CallFailed as failure:
        return failure


def test_a_cancelled_caller_does_not_lose_the_call(tmp_path: Path) -> None:
    with OpenAIServer(latency=0.1) as server, CallCache(tmp_path / "calls.sqlite") as cache:
        ep = endpoint(server.url)
        backend = CachedBackend(OpenAIChatBackend(ep), cache)

        async def go() -> None:
            caller = asyncio.ensure_future(backend.complete(ask(ep, "patience")))
            await asyncio.sleep(0.03)
            caller.cancel()
            await asyncio.sleep(0.2)
            await backend.aclose()

        asyncio.run(go())
        assert server.total == 1
        assert cache.get(ask(ep, "patience").key()).content == "echo: patience"


def test_the_api_key_never_reaches_the_cache_file(tmp_path: Path, monkeypatch) -> None:
    secret = "sk-cache-" + "a1b2c3d4e5f6" * 3
    monkeypatch.setenv("SAFER_CACHE_KEY", secret)
    with OpenAIServer(require_key=secret) as server:
        ep = endpoint(server.url, api_key_env="SAFER_CACHE_KEY")
        with CallCache(tmp_path / "calls.sqlite") as cache:
            results, backend = run_calls(ep, cache, [ask(ep, f"audit-me-{i}") for i in range(3)])
            assert all(isinstance(r, ChatResult) for r in results)
            monkeypatch.setenv("SAFER_CACHE_KEY", secret[::-1])  # refused: the 401 quotes it
            (refused,), _ = run_calls(ep, cache, [ask(ep, "refused")])
            assert refused.reason == "http_401" and cache.failure_counts() == {"http_401": 1}
            assert secret not in repr(backend) and secret not in repr(cache)
            stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"audit-me-2" in stored  # the request description is there for audit ...
    assert b"Incorrect API key" in stored  # ... and so is the failure ...
    assert secret.encode() not in stored and secret[::-1].encode() not in stored  # ... not keys


def test_images_are_stored_by_hash_not_by_bytes(tmp_path: Path) -> None:
    picture = os.urandom(3000)
    with OpenAIServer() as server:
        ep = endpoint(server.url)
        request = ep.request([{"role": "user", "content": [
            image_part(picture, "image/png"), {"type": "text", "text": "what is this?"}]}])
        with CallCache(tmp_path / "calls.sqlite") as cache:
            (result,), _ = run_calls(ep, cache, [request])
        assert result.content == "echo: what is this?"
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert hashlib.sha256(picture).hexdigest().encode() in stored
    assert image_part(picture, "image/png")["image_url"]["url"][30:90].encode() not in stored


def test_a_request_is_described_once_for_its_key_and_its_audit_row() -> None:
    picture = os.urandom(300)
    request = ChatRequest("m", [{"role": "user", "content": [
        image_content(picture, "x.png"), {"type": "text", "text": "what is this?"}]}],
        {"temperature": 0.5, "seed": 1}, None, "t@1")
    sorted_json = orjson.dumps(request.describe(), option=orjson.OPT_SORT_KEYS)
    assert request.described is request.described == sorted_json  # computed on first use only
    assert request.key() == hashlib.sha256(sorted_json).hexdigest()  # the key's bytes as before
    assert image_content(picture, "x.png") == image_part(picture, "image/png")
    assert image_content(picture, "x.png") is not image_content(picture, "x.png")  # fresh dicts


def _worker(url: str, cache: Path, n: int, concurrency: int) -> list[str]:
    return [sys.executable, "-m", "tests.support.call_worker", url, str(cache), str(n),
            str(concurrency)]


def _finished(lines: list[str]) -> tuple[list[tuple[str, str]], dict | None]:
    calls = [tuple(line.split()) for line in lines if line and not line.startswith("STATS")]
    stats = [orjson.loads(line[6:]) for line in lines if line.startswith("STATS")]
    return calls, (stats[0] if stats else None)


def test_kill_9_midway_then_rerun_completes_without_resending_a_finished_call(
        tmp_path: Path) -> None:
    n, concurrency = 150, 6
    cache = tmp_path / "calls.sqlite"
    with OpenAIServer(latency=0.03) as server:
        cmd = _worker(server.url, cache, n, concurrency)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if len(lines) == 50:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(10)
        lines += [line.strip() for line in proc.stdout]
        proc.stdout.close()
        before, stats = _finished(lines)
        assert proc.returncode == -signal.SIGKILL and stats is None and 50 <= len(before) < n

        rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr
        after, stats = _finished(rerun.stdout.splitlines())
        assert len({fp for fp, _ in after}) == n  # every call completed
        for fp, _ in before:  # nothing finished before the kill was sent again
            assert server.finished[fp] == 1
        assert stats["run"]["cache_hits"] >= len(before)
        # only calls in flight at the kill can have been answered twice
        assert 0 <= sum(server.finished.values()) - n <= concurrency
        assert stats["stable"]["calls"] == n

        sent_so_far = server.total
        third = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        again, third_stats = _finished(third.stdout.splitlines())
        assert server.total == sent_so_far  # a finished job sends zero requests
    assert {tag for _, tag in again} == {"hit"} and len(again) == n
    assert third_stats["stable"] == stats["stable"]
