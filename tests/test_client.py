"""The OpenAI chat-completions client against a loopback server that injects every fault."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time

import pytest

from safer_toolkit.builder.backends.base import CallFailed, ChatResult
from safer_toolkit.builder.backends.client import ModelEndpoint, OpenAIChatBackend
from safer_toolkit.builder.backends.pacing import Pacer, duration_s
from safer_toolkit.builder.backends.pacing import retry_after as _retry_after
from tests.support.openai_server import FaultPlan, Messy, OpenAIServer

FAST = {"backoff_s": 0.01, "backoff_cap_s": 0.05, "timeout_s": 2.0}


def endpoint(*urls: str, **overrides: object) -> ModelEndpoint:
    return ModelEndpoint("responder", "test-model", list(urls), **{**FAST, **overrides})


def ask(ep: ModelEndpoint, text: str = "hello", **kw: object):
    return ep.request([{"role": "user", "content": text}], **kw)


async def call_all(backend: OpenAIChatBackend, requests: list) -> list[ChatResult | CallFailed]:
    """Complete every request (or await every already started call), then close the backend."""
    try:
        return await asyncio.gather(
            *(r if asyncio.isfuture(r) or asyncio.iscoroutine(r) else backend.complete(r)
              for r in requests),
            return_exceptions=True)
    finally:
        await backend.aclose()


def run_one(ep: ModelEndpoint, request=None) -> tuple[ChatResult | CallFailed, OpenAIChatBackend]:
    backend = OpenAIChatBackend(ep)
    (result,) = asyncio.run(call_all(backend, [request or ask(ep)]))
    return result, backend


def dead_url() -> str:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize(("fault", "reason"), [
    ("429", "http_429"), ("500", "http_500"), ("502", "http_502"), ("503", "http_503"),
    ("drop", "connection"), ("hang", "timeout"), ("bad_json", "bad_json"),
    ("no_choices", "bad_json")])
def test_a_failed_attempt_is_retried_and_counted_by_reason(fault: str, reason: str) -> None:
    plan = FaultPlan(script={1: fault}, retry_after=0.01, hang_s=5)
    with OpenAIServer(faults=plan) as server:
        result, backend = run_one(endpoint(server.url, timeout_s=0.3))
        assert server.total == 2
        assert server.fault_counts == {fault: 1}
    assert result == ChatResult("echo: hello", "stop", result.prompt_tokens, 2, "test-model")
    assert backend.stats.retries == {reason: 1}
    assert backend.stats.attempts == 2


@pytest.mark.parametrize(("fault", "reason"), [
    ("500", "http_500"), ("drop", "connection"), ("hang", "timeout"), ("bad_json", "bad_json")])
def test_retries_are_bounded_and_the_call_fails_with_the_last_reason(fault: str,
                                                                    reason: str) -> None:
    plan = FaultPlan(script=dict.fromkeys(range(1, 10), fault), hang_s=5)
    with OpenAIServer(faults=plan) as server:
        result, backend = run_one(endpoint(server.url, max_retries=2, timeout_s=0.2))
        assert server.total == 3
    assert isinstance(result, CallFailed)
    assert result.reason == reason
    assert "after 3 attempts" in result.detail
    assert backend.stats.retries == {reason: 2}


@pytest.mark.parametrize(("fault", "reason"), [
    ("length", "finish_length"), ("content_filter", "finish_content_filter"),
    ("refusal", "refusal")])
def test_a_truncated_filtered_or_refused_answer_fails_at_once_and_its_tokens_are_billed(
        fault: str, reason: str) -> None:
    with OpenAIServer(faults=FaultPlan(script={1: fault})) as server:
        result, backend = run_one(endpoint(server.url))
        assert server.total == 1
    assert isinstance(result, CallFailed) and result.reason == reason
    assert backend.stats.billed_completion_tokens > 0
    assert backend.stats.retries == {}
    if fault == "refusal":
        assert result.partial is None  # no text came back
    else:  # the text the endpoint did send rides on the failure, with its accounting
        assert result.partial == ChatResult("echo: hello", fault, result.partial.prompt_tokens,
                                            backend.stats.billed_completion_tokens, "test-model")
        assert result.partial.prompt_tokens == backend.stats.billed_prompt_tokens > 0


def test_schema_breaking_content_comes_back_for_the_caller_to_validate() -> None:
    schema = {"type": "object", "properties": {"verdict": {"enum": ["comply", "refuse"]}},
              "required": ["verdict"], "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "gate", "schema": schema,
                                                  "strict": True}}
    with OpenAIServer(faults=FaultPlan(script={1: "schema_break"})) as server:
        ep = endpoint(server.url)
        backend = OpenAIChatBackend(ep)
        broken, fine = asyncio.run(call_all(backend, [ask(ep, "a", response_format=fmt),
                                                      ask(ep, "b", response_format=fmt)]))
    assert broken.content == '{"schema_broken": true}'
    assert fine.content == '{"verdict":"comply"}'


def test_a_client_error_is_not_retried() -> None:
    with OpenAIServer() as server:
        result, backend = run_one(endpoint(server.url + "/missing"))
    assert isinstance(result, CallFailed) and result.reason == "http_404"
    assert backend.stats.attempts == 1


def test_retry_after_is_honoured() -> None:
    plan = FaultPlan(script={1: "429", 2: "503"}, retry_after=0.3)
    with OpenAIServer(faults=plan) as server:
        result, _ = run_one(endpoint(server.url))
        gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
    assert isinstance(result, ChatResult)
    assert len(gaps) == 2
    for gap in gaps:  # the floor is the header; jitter adds at most 10 %
        assert 0.3 <= gap < 0.3 * 1.1 + 0.4


def test_retry_after_parses_seconds_dates_and_milliseconds() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert _retry_after({"Retry-After": "2"}) == 2.0
    assert 28 <= _retry_after({"Retry-After": later}) <= 30
    assert _retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert _retry_after({"Retry-After": "soon"}) is None
    assert _retry_after({"Retry-After": "1e9"}) == 600.0


def test_in_flight_requests_never_exceed_the_concurrency() -> None:
    with OpenAIServer(latency=0.03) as server:
        ep = endpoint(server.url, concurrency=5)
        results = asyncio.run(call_all(OpenAIChatBackend(ep),
                                       [ask(ep, f"q{i}") for i in range(40)]))
        assert server.max_in_flight == 5
    assert [r.content for r in results] == [f"echo: q{i}" for i in range(40)]


def test_calls_are_spread_over_replicas() -> None:
    with OpenAIServer(latency=0.02) as a, OpenAIServer(latency=0.02) as b:
        ep = endpoint(a.url, b.url, concurrency=8)
        results = asyncio.run(call_all(OpenAIChatBackend(ep),
                                       [ask(ep, f"q{i}") for i in range(60)]))
        assert a.total + b.total == 60
        assert 20 <= a.total <= 40
    assert all(isinstance(r, ChatResult) for r in results)


def test_a_cancelled_call_gives_its_replica_back() -> None:
    with OpenAIServer(latency=0.15) as slow, OpenAIServer(latency=0.01) as quick:
        ep = endpoint(slow.url, quick.url, concurrency=4)
        backend = OpenAIChatBackend(ep)

        async def go() -> list:
            first = asyncio.ensure_future(backend.complete(ask(ep, "to the slow one")))
            await asyncio.sleep(0.01)
            await backend.complete(ask(ep, "to the quick one"))
            first.cancel()  # its request to the slow replica is abandoned midway
            return [await backend.complete(ask(ep, f"q{i}")) for i in range(8)]

        results = asyncio.run(call_all(backend, [go()]))[0]
        # with both replicas idle again, calls alternate; a leaked slot would send all to quick
        assert (slow.total, quick.total) == (1 + 4, 1 + 4)
    assert [r.content for r in results] == [f"echo: q{i}" for i in range(8)]


def test_a_dead_replica_is_backed_off_and_calls_go_through_the_live_one() -> None:
    with OpenAIServer(latency=0.01) as live:
        ep = endpoint(dead_url(), live.url, concurrency=4, backoff_s=0.5, backoff_cap_s=5)
        backend = OpenAIChatBackend(ep)
        results = asyncio.run(call_all(backend, [ask(ep, f"q{i}") for i in range(80)]))
        assert live.total == 80
    assert all(isinstance(r, ChatResult) for r in results)
    # the dead replica cost a few first attempts, then was cooled (no retry twice on it)
    refused = backend.stats.retries["connection"]
    assert 1 <= refused <= 8
    assert backend.stats.attempts == 80 + refused


def test_a_replica_that_recovers_is_used_again() -> None:
    plan = FaultPlan(script=dict.fromkeys(range(1, 6), "500"))
    with OpenAIServer(faults=plan) as flaky, OpenAIServer(latency=0.01) as steady:
        ep = endpoint(flaky.url, steady.url, concurrency=2, backoff_s=0.05, backoff_cap_s=0.2)
        backend = OpenAIChatBackend(ep)

        async def paced() -> list:
            out = []
            for i in range(30):
                out += await asyncio.gather(backend.complete(ask(ep, f"q{i}")))
                await asyncio.sleep(0.01)
            await backend.aclose()
            return out

        results = asyncio.run(paced())
        assert flaky.fault_counts == {"500": 5}
        assert flaky.total > 5  # served again after its cool-down
    assert all(isinstance(r, ChatResult) for r in results)


def test_a_short_outage_under_load_is_ridden_out_not_declared_down() -> None:
    first = OpenAIServer(latency=0.02).start()
    ep = endpoint(first.url, concurrency=16, max_retries=8, backoff_s=0.05, backoff_cap_s=1.0)
    backend = OpenAIChatBackend(ep)

    async def go() -> tuple[list, OpenAIServer]:
        calls = [asyncio.ensure_future(backend.complete(ask(ep, f"q{i}"))) for i in range(200)]
        await asyncio.sleep(0.1)
        await asyncio.to_thread(first.stop)  # 16 requests in flight fail at once
        await asyncio.sleep(0.3)
        second = await asyncio.to_thread(OpenAIServer(latency=0.02, port=first.port).start)
        return await call_all(backend, calls), second

    results, second = asyncio.run(go())
    second.stop()
    assert first.total > 0 and second.total > 0
    assert all(isinstance(r, ChatResult) for r in results), {type(r) for r in results}
    assert backend.stats.retries["connection"] >= 1


def test_when_every_replica_is_down_calls_fail_instead_of_waiting_forever() -> None:
    ep = endpoint(dead_url(), max_retries=50, backoff_s=0.01, backoff_cap_s=0.04)
    started = time.monotonic()
    results = asyncio.run(call_all(OpenAIChatBackend(ep), [ask(ep, f"q{i}") for i in range(20)]))
    assert time.monotonic() - started < 10
    assert {r.reason for r in results} == {"connection"}


def test_the_key_is_sent_from_the_environment_and_never_shown(monkeypatch) -> None:
    secret = "sk-test-" + "9f8e7d6c5b4a" * 3
    monkeypatch.setenv("SAFER_TEST_KEY", secret)
    with OpenAIServer(require_key=secret) as server:
        ep = endpoint(server.url, api_key_env="SAFER_TEST_KEY")
        result, backend = run_one(ep)
        assert isinstance(result, ChatResult)
        monkeypatch.setenv("SAFER_TEST_KEY", secret[::-1])  # a wrong key: the 401 quotes it
        refused, _ = run_one(ep)
    assert isinstance(refused, CallFailed) and refused.reason == "http_401"
    assert "Incorrect API key" in refused.detail
    for text in (repr(ep), repr(backend), str(refused), repr(refused), refused.detail):
        assert secret not in text and secret[::-1] not in text


def test_a_missing_key_variable_fails_the_call_by_name(monkeypatch) -> None:
    monkeypatch.delenv("SAFER_ABSENT_KEY", raising=False)
    result, _ = run_one(endpoint("http://127.0.0.1:9/v1", api_key_env="SAFER_ABSENT_KEY"))
    assert isinstance(result, CallFailed) and result.reason == "no_api_key"
    assert "SAFER_ABSENT_KEY" in result.detail


def test_endpoint_sampling_goes_into_the_request_and_its_key() -> None:
    ep = endpoint("http://x/v1", sampling={"temperature": 0.7, "max_tokens": 64})
    hot, cold = ask(ep), ask(ep, temperature=0.0)
    assert hot.body()["temperature"] == 0.7 and cold.body()["temperature"] == 0.0
    assert hot.body()["max_tokens"] == 64
    assert hot.key() != cold.key()


def test_usage_and_cost_are_accounted() -> None:
    with OpenAIServer() as server:
        ep = endpoint(server.url, price_in=2.0, price_out=10.0)
        backend = OpenAIChatBackend(ep)
        results = asyncio.run(call_all(backend, [ask(ep, f"q{i}") for i in range(4)]))
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    run = backend.stats.run()
    assert prompt > 0 and completion == 8
    assert (run["billed_prompt_tokens"], run["billed_completion_tokens"]) == (prompt, completion)
    assert run["billed_cost_usd"] == round((prompt * 2.0 + completion * 10.0) / 1e6, 6)


def test_rate_limit_headers_slow_requests_before_the_server_says_429() -> None:
    with OpenAIServer(rate_limit=(8, 0.5), latency=0.02) as server:
        ep = endpoint(server.url, concurrency=8)
        backend = OpenAIChatBackend(ep)
        results = asyncio.run(call_all(backend, [ask(ep, f"q{i}") for i in range(40)]))
    assert all(isinstance(r, ChatResult) for r in results)
    assert server.rate_limited <= 2  # ≈ 80 without the pacing, measured in this setup
    assert backend.stats.paced_s > 1.0 and server.total == 40 + server.rate_limited


def test_token_windows_pace_too() -> None:
    pacer = Pacer()
    pacer.used(1000)
    pacer.observe({"x-ratelimit-remaining-tokens": "1500", "x-ratelimit-reset-tokens": "250ms"},
                  on_wire=1)  # two calls' worth left, one on the wire and one about to go
    held = asyncio.run(pacer.wait())
    assert 0.2 < held < 1.0
    pacer.observe({"x-ratelimit-remaining-tokens": "90000", "x-ratelimit-reset-tokens": "1s",
                   "x-ratelimit-remaining-requests": "50"}, on_wire=1)
    assert asyncio.run(pacer.wait()) == 0.0


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m", 600.0), ("2.5", 2.5),
    ("soon", None), ("", None)])
def test_reset_durations_are_read_as_openai_writes_them(text, seconds) -> None:
    assert duration_s(text) == seconds


def test_a_reasoning_only_reply_is_an_answer_not_a_server_fault() -> None:
    with OpenAIServer(messy=Messy({"reasoning": 1.0})) as server:
        result, backend = run_one(endpoint(server.url))
    assert isinstance(result, ChatResult) and result.content == ""
    assert result.reasoning.endswith("echo: hello") and result.text == result.reasoning
    assert backend.stats.attempts == 1 and not backend.stats.retries


def test_a_5xx_that_names_the_response_format_is_a_refusal_and_not_retried() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with OpenAIServer(json_schema="reject_500") as server:
        ep = endpoint(server.url)
        result, _backend = run_one(ep, ask(ep, response_format=fmt))
        plain, _ = run_one(ep)
    assert isinstance(result, CallFailed) and result.reason == "http_500"
    assert "Input should be 'text' or 'json_object'" in result.detail
    assert server.total == 2 and isinstance(plain, ChatResult)


def test_the_key_is_masked_before_an_error_is_cut_short(monkeypatch) -> None:
    secret = "sk-" + "".join(f"{i:04d}" for i in range(120))  # longer than a message
    monkeypatch.setenv("SAFER_TEST_KEY", "x" + secret)
    with OpenAIServer(require_key=secret) as server:
        refused, _ = run_one(endpoint(server.url, api_key_env="SAFER_TEST_KEY"))
    assert isinstance(refused, CallFailed) and refused.reason == "http_401"
    sent = "x" + secret
    assert "***" in refused.detail
    assert not any(sent[i:i + 12] in str(refused) for i in range(len(sent) - 12))


def test_a_spent_budget_refuses_before_sending_and_nothing_counts_as_sent(tmp_path,
                                                                         monkeypatch) -> None:
    from safer_toolkit.builder.backends.budget import Budget
    from safer_toolkit.builder.cache import CachedBackend, CallCache

    monkeypatch.delenv("SAFER_ABSENT_KEY", raising=False)
    with OpenAIServer() as server, CallCache(tmp_path / "calls.sqlite") as cache:
        ep = endpoint(server.url)
        budget = Budget(max_calls=3)
        backend = CachedBackend(OpenAIChatBackend(ep, budget=budget), cache)
        results = asyncio.run(call_all(backend, [ask(ep, f"q{i}") for i in range(5)]))
        keyless = CachedBackend(OpenAIChatBackend(endpoint(server.url,
                                                           api_key_env="SAFER_ABSENT_KEY")),
                                cache)
        (no_key,) = asyncio.run(call_all(keyless, [ask(ep, "q9")]))
    refused = [r for r in results if isinstance(r, CallFailed)]
    assert server.total == 3 and budget.exhausted and len(refused) == 2
    assert {r.reason for r in refused} == {"budget"} and "--max-calls 3" in refused[0].detail
    assert backend.stats.sent == 3 and backend.stats.failed == {"budget": 2}
    assert no_key.reason == "no_api_key" and keyless.stats.sent == 0
