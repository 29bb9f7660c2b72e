"""The preflight: before any item, find out what each endpoint serves and how it answers.

A build against real servers should fail in seconds, not after a thousand calls, when a model
name or a key is wrong, and should not pay for a thousand refusals when a server does not take
the response format the builder asks for. So, once per build:

1. `GET /models` on every endpoint: a key the server refuses, or an endpoint that cannot be
   reached, stops the build with the server's own message; a model the endpoint does not list
   stops it naming what it does serve (servers without `/models` are noted and trusted);
2. one small call per role (`PROBE_TOKENS`) with the first item's image, asking for plain
   words; a JSON role (planner, judge) asks it under its response format. A server that
   refuses `json_schema` (HTTP 400/422/500/501 — llama-cpp-python answers 500 "Input should
   be 'text' or 'json_object'") is asked with `json_object` plus the schema, then with no
   format (`stages.constrain`); a server that takes the format but does not enforce it (the
   reply is the plain words asked for, not a JSON object: `transformers serve` ignores
   `response_format`) has the role run with the schema in its prompt and no format. Every
   reply is validated locally whatever the mode. A reply read from the reasoning field, or with
   `<think>` blocks, is noted with how to change the server. Each choice is said in the summary.

Probe calls go through the build's cache like any call (a cut probe reply is kept as such), so
a rerun replays the same findings and the same choices — and with them the same requests, which
the cache then answers — instead of paying for the probes and, had a choice changed, for every
call again. Refusals are not cached: a rerun asks a refusing server once more. Probe calls are
the preflight's, not the roles' (`Preflight.stats`), and count against the build's budget. The
offline backend needs no preflight.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from safer_toolkit.builder.backends.base import CallFailed, ChatRequest, ChatResult
from safer_toolkit.builder.backends.client import OpenAIChatBackend
from safer_toolkit.builder.backends.stats import CallStats
from safer_toolkit.builder.cache import TRUNCATED_REASON, CachedBackend, CallCache
from safer_toolkit.builder.config import ModelConfig
from safer_toolkit.builder.stages.constrain import AUTO, CONSTRAINTS, constrained
from safer_toolkit.builder.stages.extract import strip_think

#: Completion tokens a probe may use: enough to see how a reply starts.
PROBE_TOKENS = 32
#: Statuses with which a server refuses a request form (rather than failing).
_REFUSED = ("http_400", "http_422", "http_500", "http_501")
THINKING_FIX = ("if the model thinks before it answers, thinking counts against max_tokens: "
                "raise `sampling.max_tokens`, or turn thinking off (Qwen3: `sampling."
                "chat_template_kwargs = {enable_thinking = false}`)")


class PreflightError(RuntimeError):
    """An endpoint cannot serve the build as configured; the message says why and what to set."""


@dataclass(frozen=True)
class RoleProbe:
    """One role to check: its config, its client, and its probe (`roles.probes`)."""

    role: str
    config: ModelConfig
    client: OpenAIChatBackend
    request: ChatRequest


@dataclass
class RoleCheck:
    """What the preflight found for a role: the constraint mode it will run with and notes."""

    role: str
    constrain: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Preflight:
    """The preflight's findings, for the summary and the manifest's `run`."""

    roles: dict[str, RoleCheck]
    models: dict[str, list[str] | None]
    stats: CallStats

    def notes(self) -> list[str]:
        unlisted = [url for url, ids in self.models.items() if ids is None]
        said = [f"{url} lists no models (GET /models): the model names were checked by the "
                "first calls" for url in unlisted]
        return said + [f"{c.role}: {n}" for c in self.roles.values() for n in c.notes]

    def to_json(self) -> dict[str, Any]:
        return {"roles": {r: {"constrain": c.constrain, "notes": c.notes}
                          for r, c in self.roles.items()},
                "models_listed": {url: ids is not None for url, ids in self.models.items()},
                "sent": self.stats.sent, "attempts": self.stats.attempts,
                "cache_hits": self.stats.cache_hits,
                "prompt_tokens": self.stats.billed_prompt_tokens,
                "completion_tokens": self.stats.billed_completion_tokens}


class _Probing:
    """A role's client as the preflight calls it: counted as the preflight's, one retry."""

    def __init__(self, client: OpenAIChatBackend, stats: CallStats) -> None:
        self.client, self.stats = client, stats

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self.client.send(request, self.stats, retries=1)

    async def aclose(self) -> None:
        """The client is the build's to close."""


def _table(role: str) -> str:
    """The config table of a role, for messages: `models.responders[0]`."""
    return "models." + role.replace("responder[", "responders[")


async def _listed(probes: Sequence[RoleProbe]) -> dict[str, list[str] | None]:
    """Every endpoint's model list; stops on a refused key or an unreachable endpoint."""
    listed: dict[str, list[str] | None] = {}
    clients = {id(p.client): p.client for p in probes}
    for client in clients.values():
        roles = ", ".join(p.role for p in probes if p.client is client)
        try:
            listed.update(await client.models())
        except CallFailed as exc:
            raise PreflightError(f"{roles}: {exc.reason}: {exc.detail}") from None
    for probe in probes:
        for url in probe.config.base_urls:
            ids = listed.get(url)
            if ids is not None and probe.config.model not in ids:
                served = ", ".join(ids[:20]) or "no model"
                raise PreflightError(
                    f"{probe.role}: model {probe.config.model!r} is not served at {url} (it "
                    f"serves: {served}); set {_table(probe.role)}.model or --model "
                    f"{probe.role.split('[')[0]}=NAME")
    return listed


def _probe_request(request: ChatRequest, mode: str) -> ChatRequest:
    """The probe as `mode` sends it: its response format, but not the schema in the prompt (the
    probe asks for plain words, so only a format the server enforces makes the reply JSON)."""
    sampling = dict(request.sampling)
    key = "max_completion_tokens" if "max_completion_tokens" in sampling else "max_tokens"
    sampling[key] = PROBE_TOKENS
    return replace(constrained(request, mode), messages=request.messages, sampling=sampling)


def _reading_notes(result: ChatResult) -> list[str]:
    notes = []
    if not result.content.strip() and result.reasoning.strip():
        notes.append("the server leaves `content` empty and puts the reply in the reasoning "
                     "field (`reasoning`, or `reasoning_content` on older servers); answers "
                     f"are read from it — {THINKING_FIX}")
    elif "<think>" in result.content or "</think>" in result.content:
        notes.append("replies carry `<think>` blocks in `content` (no reasoning parser on the "
                     f"server); they are stripped — {THINKING_FIX}")
    return notes


def _enforced(result: ChatResult) -> bool:
    """Whether a reply under a JSON response format starts as a JSON object, as a server that
    enforces the format makes it (a cut reply counts: only its start is looked at). A reply
    that is all thinking (empty content) cannot tell, and is taken as enforced."""
    content = strip_think(result.content, Counter()).lstrip()
    return not content or content.startswith("{")


async def _check(probe: RoleProbe, stats: CallStats, cache: CallCache | None) -> RoleCheck:
    configured = probe.config.constrain
    json_role = (probe.request.response_format or {}).get("type") == "json_schema"
    modes = [configured] if configured != AUTO else list(CONSTRAINTS) if json_role \
        else ["json_schema"]
    check = RoleCheck(probe.role, modes[0])
    refused: list[str] = []
    backend: Any = _Probing(probe.client, stats)
    if cache is not None:
        backend = CachedBackend(backend, cache, stats=stats, keep_truncated=True)
    for i, mode in enumerate(modes):
        try:
            result = await backend.complete(_probe_request(probe.request, mode))
        except CallFailed as exc:
            if exc.reason == TRUNCATED_REASON and exc.partial is not None:
                result = exc.partial
            elif exc.reason in _REFUSED:
                what = f"`{mode}`" if json_role else "the request"
                refused.append(f"the server refused {what} ({exc.reason}: "
                               f"{exc.detail[:160]})")
                if json_role and i + 1 < len(modes):
                    continue
                hint = ""
                if probe.config.images:
                    hint = ("; the requests carry the item's image as a content part: for a "
                            f"text-only model or server set {_table(probe.role)}.images = "
                            "false")
                raise PreflightError(f"{probe.role}: " + "; ".join(refused) + hint) from None
            elif exc.reason in ("http_401", "http_403"):
                raise PreflightError(f"{probe.role}: the server refused the key: "
                                     f"{exc.detail}") from None
            elif exc.reason == "http_404":
                raise PreflightError(
                    f"{probe.role}: model {probe.config.model!r} at "
                    f"{', '.join(probe.config.base_urls)}: {exc.detail} (check "
                    f"{_table(probe.role)}.model and base_urls, or --model/--base-url)"
                ) from None
            else:  # a flaky call says nothing about the server: the build copes with those
                check.constrain = mode
                check.notes.append(f"the probe as `{mode}` failed ({exc.reason}: "
                                   f"{exc.detail[:160]}); going on with `{mode}`")
                return check
        check.constrain = mode
        if refused:
            check.notes.append("; ".join(refused) + f"; using `{mode}`")
        check.notes += _reading_notes(result)
        if json_role and mode != "none" and not _enforced(result):
            began = result.text.strip()[:40]
            if configured == AUTO:
                check.constrain = "none"
                check.notes.append(f"the server accepts `{mode}` but does not enforce it (the "
                                   f"reply began {began!r}); the schema goes in the prompt "
                                   "and replies are validated locally")
            else:
                check.notes.append(f"the server does not enforce `{mode}` (the reply began "
                                   f"{began!r}); replies are validated locally")
        return check
    raise AssertionError("unreachable: the last mode returns or raises")


async def preflight(probes: Sequence[RoleProbe], cache: CallCache | None = None) -> Preflight:
    """Check every role's endpoint (see the module doc); raises `PreflightError`."""
    stats = CallStats()
    models = await _listed(probes)
    checks = await asyncio.gather(*(_check(p, stats, cache) for p in probes),
                                  return_exceptions=True)
    for found in checks:  # every probe finishes; the first problem, in role order, is said
        if isinstance(found, BaseException):
            raise found
    return Preflight({c.role: c for c in checks}, models, stats)
