"""How a JSON role's reply is constrained on the wire: one choice per role, made by the preflight.

The stages build every JSON request with a strict `json_schema` response format. Not every
server takes it: llama-cpp-python answers it with HTTP 500 and wants `{"type": "json_object",
"schema": …}`; `transformers serve` ignores it and lets the model write free text. So a role
runs in one of these modes (`CONSTRAINTS`, tried in this order by the preflight under `auto`):

- `json_schema` — the request as built (OpenAI, vLLM, SGLang);
- `json_object` — `{"type": "json_object", "schema": …}`, with the schema also in the prompt;
- `none` — no response format; the schema is in the prompt and the reply is checked locally.

Every mode's reply is extracted and validated the same way, so the mode changes what a server
is asked, never what is kept. A new mode (a grammar, say) is one more entry in `CONSTRAINTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from safer_toolkit.builder.backends.base import ChatRequest

AUTO = "auto"
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


#: mode → how a `json_schema` request is rewritten for it (in the preflight's fallback order)
CONSTRAINTS: dict[str, Callable[[ChatRequest, dict[str, Any]], ChatRequest]] = {
    "json_schema": _json_schema,
    "json_object": _json_object,
    "none": _none,
}
CHOICES = (AUTO, *CONSTRAINTS)


def constrained(request: ChatRequest, mode: str) -> ChatRequest:
    """`request` as `mode` sends it; requests without a JSON schema are left as they are."""
    schema = _schema_of(request)
    if schema is None or mode in (AUTO, "json_schema"):
        return request
    return CONSTRAINTS[mode](request, schema)
