"""What to add to a chat-completions request body so a server enforces a grammar or a schema.

Each server spells it its own way, and some ignore what they do not know, so the builder asks
here instead of guessing (and still validates every reply: the grammar saves re-asks, it is
never the check):

- `vllm`: grammar as `structured_outputs: {grammar: EBNF}`; JSON as `response_format`
  json_schema (strict).
- `sglang`: grammar as `ebnf: EBNF`; JSON as `response_format` json_schema (strict).
- `llama.cpp` (llama-server): grammar as `grammar: GBNF`; JSON as `response_format`
  json_schema.
- `llama-cpp-python` (its server): grammar as `grammar: GBNF`; JSON as `response_format`
  json_object with a `schema` (it answers HTTP 500 to json_schema).
- `openai`: no grammar (GrammarError); JSON as `response_format` json_schema (strict).

`json_extras(..., via="grammar")` constrains a JSON reply by a grammar compiled from the schema
instead, for a server whose JSON-schema mode is missing or ignores keywords.
"""

from __future__ import annotations

from typing import Any, Literal

from ..protocol import Protocol
from .json_schema import JsonGrammar
from .options import GrammarError, GrammarLimits
from .rules import Dialect, RuleSet, render
from .trace import TraceGrammar, grammar_for

Server = Literal["vllm", "sglang", "llama.cpp", "llama-cpp-python", "openai"]
SERVERS: tuple[str, ...] = ("vllm", "sglang", "llama.cpp", "llama-cpp-python", "openai")
_DIALECT: dict[str, Dialect] = {"vllm": "ebnf", "sglang": "ebnf", "llama.cpp": "gbnf",
                                "llama-cpp-python": "gbnf"}


def _check(server: str) -> None:
    if server not in SERVERS:
        raise ValueError(f"unknown server kind {server!r}; expected one of {', '.join(SERVERS)}")


def _grammar_extras(text_for: Any, server: str) -> dict[str, Any]:
    dialect = _DIALECT.get(server)
    if dialect is None:
        raise GrammarError(f"{server} takes no grammar in chat completions; constrain the JSON "
                           "reply by its schema instead")
    text = text_for(dialect)
    if server == "vllm":
        return {"structured_outputs": {"grammar": text}}
    if server == "sglang":
        return {"ebnf": text}
    return {"grammar": text}


def grammar_field(server: str) -> tuple[str, Dialect]:
    """Where `server` takes a grammar: the body field (dotted) and the dialect (GrammarError
    for a server that takes none)."""
    _check(server)
    path, value = [], _grammar_extras(lambda dialect: dialect, server)
    while isinstance(value, dict):
        key = next(iter(value))
        path.append(key)
        value = value[key]
    return ".".join(path), value


#: What a server compiles per request by default: the schema's own bounds, walks narrowed past
#: 600 states (a loop protocol's exact grammar runs to megabytes).
SERVER_LIMITS = GrammarLimits(max_walk_states=600)


def grammar_extras(protocol: TraceGrammar | Protocol | dict[str, Any], server: str,
                   limits: GrammarLimits | None = None) -> dict[str, Any]:
    """The request-body fields that make `server` generate only traces the protocol's grammar
    accepts: a compiled grammar, or a protocol (resolved or a document) compiled here (cached
    per document) under `limits` (default `SERVER_LIMITS`)."""
    _check(server)
    if not isinstance(protocol, TraceGrammar):
        doc = protocol.document if isinstance(protocol, Protocol) else protocol
        protocol = grammar_for(doc, limits or SERVER_LIMITS)
    return _grammar_extras(protocol.text, server)


def schema_grammar(schema: dict[str, Any], dialect: Dialect,
                   limits: GrammarLimits | None = None) -> str:
    """A grammar of the canonical JSON texts valid under `schema` (keys in schema order)."""
    rules = RuleSet()
    root = rules.name("root")
    value = JsonGrammar(rules, limits or GrammarLimits()).value(schema, "reply")
    if value is None:
        raise GrammarError("the schema admits no value")
    rules.define(root, value)
    return render(rules, dialect, "SaFeR-ToolKit JSON grammar from a JSON Schema")


def json_extras(schema: dict[str, Any], server: str, *, name: str = "reply",
                via: Literal["schema", "grammar"] = "schema") -> dict[str, Any]:
    """The request-body fields that make `server` answer JSON valid under `schema`."""
    _check(server)
    if via == "grammar":
        return _grammar_extras(lambda dialect: schema_grammar(schema, dialect), server)
    if server == "llama-cpp-python":
        return {"response_format": {"type": "json_object", "schema": schema}}
    spec: dict[str, Any] = {"name": name, "schema": schema}
    if server != "llama.cpp":
        spec["strict"] = True
    return {"response_format": {"type": "json_schema", "json_schema": spec}}
