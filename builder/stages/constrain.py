"""How a role's reply is constrained on the wire: asked per role, settled by the preflight.

A role's `constrain` setting (`MODES`) says what to constrain:

- `grammar` — the responder's request carries its protocol's trace grammar (the validator's
  compiler, `validation.grammar`), in the field and dialect of the role's server kind
  (`GrammarConstraint`); the planner's and the judge's JSON are constrained as under `json`;
- `json` (the default) — the planner's and the judge's JSON by their schemas; the responder
  writes free text;
- `none` — free text everywhere; the JSON roles get their schema in the prompt.

A JSON role's schema goes on the wire in one of these forms (`CONSTRAINTS`, tried in order by
the preflight, `json_forms`):

- `json_schema` — the request as built (OpenAI, vLLM, SGLang, llama.cpp);
- `json_object` — `{"type": "json_object", "schema": …}`, with the schema also in the prompt
  (llama-cpp-python answers `json_schema` with HTTP 500);
- `none` — no response format; the schema is in the prompt (a server that ignores the format,
  as `transformers serve` does).

Every reply is extracted and validated the same way whatever the mode, so a constraint changes
what a server is asked, never what is kept: the grammar saves re-asks, it is never the check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import orjson

from ...validation.grammar import GrammarError, GrammarLimits, TraceGrammar
from ...validation.grammar.requests import grammar_extras, grammar_field
from ...validation.protocol import Protocol
from ..backends.base import ChatRequest

#: The `constrain` setting's values (module doc).
MODES = ("grammar", "json", "none")
SCHEMA_NOTE = ("Your reply must be exactly one JSON object, with no other text, that matches "
               "this JSON Schema:\n")


def _schema_of(request: ChatRequest) -> dict[str, Any] | None:
    fmt = request.response_format or {}
    if fmt.get("type") != "json_schema":
        return None
    schema = (fmt.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


def _with_note(request: ChatRequest, schema: dict[str, Any],
               response_format: dict[str, Any] | None) -> ChatRequest:
    """The request with the schema spelled out at the end of its system message."""
    note = SCHEMA_NOTE + orjson.dumps(schema).decode()
    messages = list(request.messages)
    first = messages[0] if messages else None
    if first is not None and first.get("role") == "system" and isinstance(first.get("content"),
                                                                          str):
        messages[0] = {**first, "content": f"{first['content']}\n\n{note}"}
    else:
        messages.insert(0, {"role": "system", "content": note})
    return replace(request, messages=messages, response_format=response_format)


def _json_schema(request: ChatRequest, schema: dict[str, Any]) -> ChatRequest:
    return request


def _json_object(request: ChatRequest, schema: dict[str, Any]) -> ChatRequest:
    return _with_note(request, schema, {"type": "json_object", "schema": schema})


def _none(request: ChatRequest, schema: dict[str, Any]) -> ChatRequest:
    return _with_note(request, schema, None)


#: form → how a `json_schema` request is rewritten for it (in the preflight's fallback order)
CONSTRAINTS: dict[str, Callable[[ChatRequest, dict[str, Any]], ChatRequest]] = {
    "json_schema": _json_schema,
    "json_object": _json_object,
    "none": _none,
}
#: How each form is said in the summary and the manifest.
FORM_NAMES = {"json_schema": "response_format json_schema",
              "json_object": "response_format json_object + schema",
              "none": "schema in the prompt"}


def json_forms(mode: str, server: str | None) -> list[str]:
    """The JSON forms the preflight tries for a JSON role of `server`'s kind, in order."""
    if mode == "none":
        return ["none"]
    if server == "llama-cpp-python":  # it refuses json_schema: no need to ask
        return ["json_object", "none"]
    return list(CONSTRAINTS)


def constrained(request: ChatRequest, form: str) -> ChatRequest:
    """`request` as `form` sends it; requests without a JSON schema are left as they are."""
    schema = _schema_of(request)
    if schema is None:
        return request
    return CONSTRAINTS[form](request, schema)


@lru_cache(maxsize=256)
def _extras(doc_json: bytes, server: str, limits: GrammarLimits) -> dict[str, Any]:
    return grammar_extras(orjson.loads(doc_json), server, limits)


@dataclass(frozen=True)
class GrammarConstraint:
    """A responder's trace grammar on the wire: the field and dialect of `server`'s kind, the
    grammar compiled under `limits` (once per protocol: `grammar_for` caches it)."""

    server: str
    limits: GrammarLimits

    def extras(self, protocol: TraceGrammar | Protocol) -> dict[str, Any]:
        """The body fields that carry `protocol`'s grammar (raises `GrammarError`), rendered
        once per protocol: every sample and re-ask of an item sends the same."""
        if isinstance(protocol, TraceGrammar):
            return grammar_extras(protocol, self.server, self.limits)
        return _extras(orjson.dumps(protocol.document, option=orjson.OPT_SORT_KEYS),
                       self.server, self.limits)

    async def prepare(self, protocol: Protocol) -> None:
        """Compile `protocol`'s grammar in a worker thread (a loop protocol's takes ~0.2 s),
        so the event loop keeps the other items' calls moving meanwhile."""
        with contextlib.suppress(GrammarError):
            await asyncio.to_thread(self.extras, protocol)

    def apply(self, request: ChatRequest, protocol: Protocol) -> ChatRequest:
        """`request` with the grammar of `protocol`'s traces. A protocol the compiler cannot
        express (one that allows no valid walk) is asked without: its replies are validated,
        and rejected, as always."""
        try:
            extra = self.extras(protocol)
        except GrammarError:
            return request
        return replace(request, extra={**(request.extra or {}), **extra})

    def describe(self) -> str:
        """Where the grammar goes: "trace grammar in `structured_outputs.grammar` (EBNF)"."""
        field, dialect = grammar_field(self.server)
        return f"trace grammar in `{field}` ({dialect.upper()})"
