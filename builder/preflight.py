"""The preflight: before any item, find out what each endpoint serves and how it answers.

A build against real servers should fail in seconds, not after a thousand calls, when a model
name or a key is wrong, and should not pay for a thousand refusals when a server does not take
the constraint the builder sends. So, once per build:

1. `GET /models` on every endpoint: a key the server refuses, or an endpoint that cannot be
   reached, stops the build with the server's own message; a model the endpoint does not list
   stops it naming what it does serve (servers without `/models` are noted and trusted). The
   listing's `owned_by` names the server kind where the role's `server` is `auto`
   (`backends.servers`);
2. one small call per role (`PROBE_TOKENS`) with the first item's image, asking for plain
   words under the constraint the role would send (`constrain`, `stages.constrain`), so that
   only a server that *enforces* it answers otherwise:
   - a JSON role (planner, judge) asks under its response format. A server that refuses it
     (HTTP 400/422/500/501 — llama-cpp-python answers `json_schema` with 500 "Input should be
     'text' or 'json_object'") is asked in the next form (`json_forms`); a server that takes
     the format but does not enforce it (the reply is the plain words asked for, not a JSON
     object: `transformers serve`) runs the role with the schema in its prompt and no format;
   - a responder under `grammar` asks under the trace grammar of a small library protocol
     (`PROBE_TOPOLOGY`) in its server's field and dialect — on a server of unknown kind, each
     field of `servers.PROBE_ORDER` in turn. The grammar admits only a trace, which the plain
     words asked for never start like: a reply that begins `<thinking>\n[` shows the server
     enforced it; any other shows it ignored the field (reported as not enforced, and not
     sent again: it is not trusted); a refusal falls back. With no field enforced the
     responder runs under `json` — free text — as the summary says;
   Every reply is validated locally whatever the mode. A reply read from the reasoning field,
   or with `<think>` blocks, is noted with how to change the server. Each choice is said in
   the summary and recorded per role in the manifest (`RoleCheck.to_json`).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import EndpointError
from ..validation.grammar import GrammarError, compile_grammar
from ..validation.protocol import library_protocol_document
from ..validation.vocabulary import TREE
from .backends.base import CallFailed, ChatRequest, ChatResult
from .backends.client import OpenAIChatBackend
from .backends.servers import AUTO, PROBE_ORDER, detect
from .backends.stats import CallStats
from .cache import TRUNCATED_REASON, CachedBackend, CallCache
from .config import ModelConfig
from .stages.constrain import (
    FORM_NAMES,
    GrammarConstraint,
    constrained,
    json_forms,
)
from .stages.extract import strip_think

#: Completion tokens a probe may use: enough to see how a reply starts.
PROBE_TOKENS = 32
#: The library protocol whose trace grammar a grammar probe is sent (a small one: 9 walk states).
PROBE_TOPOLOGY = TREE
#: How every reply under a trace grammar begins.
TRACE_START = "<thinking>\n["
FREE_TEXT = "free text"
#: Statuses with which a server refuses a request form (rather than failing).
_REFUSED = ("http_400", "http_422", "http_500", "http_501")
THINKING_FIX = ("if the model thinks before it answers, thinking counts against max_tokens: "
                "raise `sampling.max_tokens`, or turn thinking off (Qwen3: `sampling."
                "chat_template_kwargs = {enable_thinking = false}`)")


class PreflightError(EndpointError, RuntimeError):
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
    """What the preflight found for a role: the constraint it asked for (`mode`), the server
    kind and how that was found, what its requests will carry — a JSON role's `form`
    (`stages.constrain.CONSTRAINTS`), a responder's `grammar` (None: free text) — whether the
    server was seen to enforce it (None: nothing to enforce, or the probe could not tell), and
    notes for the summary."""

    role: str
    mode: str
    json_role: bool = False
    server: str | None = None
    found_by: str = ""
    form: str = "json_schema"
    grammar: GrammarConstraint | None = None
    enforced: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def sent(self) -> str:
        """What the role's requests carry, in words."""
        if self.grammar is not None:
            return self.grammar.describe()
        return FORM_NAMES[self.form] if self.json_role else FREE_TEXT

    def to_json(self) -> dict[str, Any]:
        """The manifest's record of the choice (it shaped the requests, so it is stable)."""
        return {"mode": self.mode, "server": self.server, "found_by": self.found_by or None,
                "sent": self.sent, "enforced": self.enforced}


@dataclass
class Preflight:
    """The preflight's findings, for the summary and the manifest's `run`."""

    roles: dict[str, RoleCheck]
    models: dict[str, dict[str, str] | None]
    stats: CallStats

    def notes(self) -> list[str]:
        unlisted = [url for url, ids in self.models.items() if ids is None]
        said = [f"{url} lists no models (GET /models): the model names were checked by the "
                "first calls" for url in unlisted]
        return said + [f"{c.role}: {n}" for c in self.roles.values() for n in c.notes]

    def to_json(self) -> dict[str, Any]:
        return {"roles": {r: {**c.to_json(), "notes": c.notes} for r, c in self.roles.items()},
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


async def _listed(probes: Sequence[RoleProbe]) -> dict[str, dict[str, str] | None]:
    """Every endpoint's model list; stops on a refused key or an unreachable endpoint."""
    listed: dict[str, dict[str, str] | None] = {}
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
                served = ", ".join(list(ids)[:20]) or "no model"
                raise PreflightError(
                    f"{probe.role}: model {probe.config.model!r} is not served at {url} (it "
                    f"serves: {served}); set {_table(probe.role)}.model or --model "
                    f"{probe.role.split('[')[0]}=NAME")
    return listed


def _probe_request(request: ChatRequest, form: str,
                   grammar: GrammarConstraint | None = None) -> ChatRequest:
    """The probe as `form` (and `grammar`) sends it: its constraint, but not the schema in the
    prompt (the probe asks for plain words, so only a constraint the server enforces makes the
    reply otherwise)."""
    sampling = dict(request.sampling)
    key = "max_completion_tokens" if "max_completion_tokens" in sampling else "max_tokens"
    sampling[key] = PROBE_TOKENS
    probe = replace(constrained(request, form), messages=request.messages, sampling=sampling)
    if grammar is not None:
        traces = compile_grammar(library_protocol_document(PROBE_TOPOLOGY), grammar.limits)
        probe = replace(probe, extra=grammar.extras(traces))
    return probe


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


def _enforced(result: ChatResult, start: str) -> bool | None:
    """Whether a reply starts as the constraint makes it (`{` for JSON, `TRACE_START` for a
    trace grammar), as only a server that enforces it answers the probe (a cut reply counts:
    only its start is looked at). None for a reply that is all thinking (it cannot tell)."""
    content = strip_think(result.content, Counter()).lstrip()
    return content.startswith(start) if content else None


class _Prober:
    """Sends one role's probes, turning what cannot be worked around into `PreflightError`."""

    def __init__(self, probe: RoleProbe, stats: CallStats, cache: CallCache | None) -> None:
        self.probe = probe
        self.backend: Any = _Probing(probe.client, stats)
        if cache is not None:
            self.backend = CachedBackend(self.backend, cache, stats=stats, keep_truncated=True)

    async def send(self, request: ChatRequest) -> ChatResult | CallFailed:
        """The reply (a cut one too), or the refusal or transient failure to work around."""
        probe = self.probe
        try:
            return await self.backend.complete(request)
        except CallFailed as exc:
            if exc.reason == TRUNCATED_REASON and exc.partial is not None:
                return exc.partial
            if exc.reason in ("http_401", "http_403"):
                raise PreflightError(f"{probe.role}: the server refused the key: "
                                     f"{exc.detail}") from None
            if exc.reason == "http_404":
                raise PreflightError(
                    f"{probe.role}: model {probe.config.model!r} at "
                    f"{', '.join(probe.config.base_urls)}: {exc.detail} (check "
                    f"{_table(probe.role)}.model and base_urls, or --model/--base-url)"
                ) from None
            return exc

    def refused(self, said: list[str]) -> PreflightError:
        hint = ""
        if self.probe.config.images:
            hint = ("; the requests carry the item's image as a content part: for a text-only "
                    f"model or server set {_table(self.probe.role)}.images = false")
        return PreflightError(f"{self.probe.role}: " + "; ".join(said) + hint)


def _refusal(exc: CallFailed, what: str) -> str:
    return f"the server refused {what} ({exc.reason}: {exc.detail[:160]})"


async def _check_json(prober: _Prober, check: RoleCheck) -> None:
    """A JSON role: the first form the server takes; the prompt when it does not enforce it."""
    forms = json_forms(check.mode, check.server)
    refused: list[str] = []
    for i, form in enumerate(forms):
        found = await prober.send(_probe_request(prober.probe.request, form))
        check.form = form
        if isinstance(found, CallFailed):
            if found.reason in _REFUSED:
                refused.append(_refusal(found, f"`{form}`"))
                if i + 1 < len(forms):
                    continue
                raise prober.refused(refused)
            # a flaky call says nothing about the server: the build copes with those
            check.notes.append(f"the probe as `{form}` failed ({found.reason}: "
                               f"{found.detail[:160]}); going on with `{form}`")
            return
        if refused:
            check.notes.append("; ".join(refused) + f"; using `{form}`")
        check.notes += _reading_notes(found)
        if form != "none":
            check.enforced = _enforced(found, "{")  # None: all thinking, it cannot tell
            if check.enforced is False:
                check.form = "none"
                check.notes.append(f"the server accepts `{form}` but does not enforce it (the "
                                   f"reply began {found.text.strip()[:40]!r}); the schema goes "
                                   "in the prompt and replies are validated locally")
        return


async def _check_grammar(prober: _Prober, check: RoleCheck) -> None:
    """A responder under `grammar`: the first grammar field the server enforces, if any."""
    config = prober.probe.config
    kinds = [check.server] if check.server else list(PROBE_ORDER)
    said: list[str] = []
    ignored: list[str] = []
    began = ""
    for kind in kinds:
        grammar = GrammarConstraint(kind, config.grammar())
        try:
            request = _probe_request(prober.probe.request, "json_schema", grammar)
        except GrammarError:  # openai: no grammar field at all
            said.append(f"an {kind} server takes no grammar")  # the one kind without
            break
        found = await prober.send(request)
        where = f"the {grammar.describe()}"
        if isinstance(found, CallFailed) and found.reason in _REFUSED:
            said.append(_refusal(found, where))
            continue
        if isinstance(found, CallFailed):  # a flaky call says nothing about the server
            if check.server is None:
                said.append(f"the probe with {where} failed ({found.reason}: "
                            f"{found.detail[:160]})")
                continue
            check.grammar = grammar
            check.notes.append(f"the probe with {where} failed ({found.reason}: "
                               f"{found.detail[:160]}); going on with it, unseen")
            return
        check.enforced = _enforced(found, TRACE_START)
        if check.enforced is False:
            ignored.append(grammar.describe().removeprefix("trace grammar in "))
            began = found.text.strip()[:40]
            continue
        check.grammar = grammar
        if check.server is None:
            check.server, check.found_by = kind, "probe"
        check.notes.append(f"the server enforces {where}" if check.enforced else
                           f"the server takes {where}; whether it enforces it could not be "
                           "seen (the probe's reply was all reasoning)")
        check.notes += _reading_notes(found)
        return
    if ignored:
        fields = ", ".join(ignored[:-1]) + " and " * (len(ignored) > 1) + ignored[-1]
        said.append(f"the server takes the trace grammar in {fields} but does "
                    f"not enforce it (the reply began {began!r}): it is not trusted, nor sent")
    check.enforced = False
    check.notes.append("; ".join(said) + "; falling back to `json` (free-text traces, "
                       "validated as always)")


async def _check(probe: RoleProbe, stats: CallStats, cache: CallCache | None,
                 listed: Mapping[str, Mapping[str, str] | None]) -> RoleCheck:
    config = probe.config
    check = RoleCheck(probe.role, config.constrain,
                      json_role=(probe.request.response_format or {}).get("type")
                      == "json_schema")
    if config.server != AUTO:
        check.server, check.found_by = config.server, "config"
    else:
        check.server, check.found_by = detect(config.model, config.base_urls, listed)
    prober = _Prober(probe, stats, cache)
    if check.json_role:
        await _check_json(prober, check)
        return check
    if check.mode == "grammar":
        await _check_grammar(prober, check)
        if check.grammar is not None:
            return check
    found = await prober.send(_probe_request(probe.request, "json_schema"))
    if isinstance(found, CallFailed):
        if found.reason in _REFUSED:
            raise prober.refused([_refusal(found, "the request")])
        check.notes.append(f"the probe failed ({found.reason}: {found.detail[:160]}); going "
                           "on")
    else:
        check.notes += _reading_notes(found)
    return check


async def preflight(probes: Sequence[RoleProbe], cache: CallCache | None = None) -> Preflight:
    """Check every role's endpoint (see the module doc); raises `PreflightError`."""
    stats = CallStats()
    models = await _listed(probes)
    checks = await asyncio.gather(*(_check(p, stats, cache, models) for p in probes),
                                  return_exceptions=True)
    done: dict[str, RoleCheck] = {}
    for found in checks:  # every probe finishes; the first problem, in role order, is said
        if isinstance(found, BaseException):
            raise found
        done[found.role] = found
    return Preflight(done, models, stats)
