"""A loopback OpenAI-compatible chat-completions server that misbehaves on request.

It speaks the real wire protocol (`POST /v1/chat/completions`, `GET /v1/models`) so tests and
benchmarks drive the real client path; the only fake is the model. What it answers is a
pluggable `content(request_body) -> str` (default: a minimal instance of the requested
`json_schema`, else an echo of the last user text). A `FaultPlan` injects failures by request
number or by seeded probability. Counters (total, per fault, finished answers per request
fingerprint, peak requests in flight) are on the object, and at `GET /stats` for a server run as
its own process. With `require_key`, a request without that bearer key gets a 401 that quotes the
key it was sent, as the real service does.

A "messy model" mode (`Messy`) rewrites a share of the good answers the way real models and
servers do — fences, chatter, near-JSON, cut-offs, reasoning-only replies, `<think>` blocks, tool
names in another case, keys reordered with an extra one — each behaviour at its own rate, drawn
per request body (so a resend of the same request gets the same mess, as a fixed `seed` does on
vLLM). `json_schema` makes the server refuse that response format (`reject_400`, or `reject_500`
as llama-cpp-python does) or `ignore` it (free text around the JSON); `check_model` answers an
unknown model name with a 404; `text_only` answers content parts (an image) with llama.cpp's
500 for a text model's chat template. Requests that come without a json_schema format (a client that
fell back to `json_object` or to a plain prompt) are answered as the role their payload names.

Grammars: the server `imitate`s a server kind — its `owned_by` in `GET /models` and the field
it reads a grammar from (vLLM `structured_outputs.grammar`, SGLang `ebnf`, llama.cpp `grammar`;
fields of other kinds are ignored, as real servers ignore what they do not know). `grammar`
says what it does with one (`GRAMMAR_MODES`): `enforce` — the answer is the content it would
give anyway when the grammar accepts it (an offline answer to a responder), else a string the
grammar admits, generated through llguidance byte by byte (seeded per request) and cut, with
`finish_reason: "length"`, at 4 characters per `max_tokens` (a probe asking for plain words
under a trace grammar gets the start of a trace); `ignore` — as if it were not there;
`reject_400` / `reject_500` — refused, as vLLM (400) and llama-cpp-python (500, a parse error
naming the grammar) refuse one they cannot compile. A grammar it cannot parse is a 400 in
every mode but `ignore`.
From the command line:

    python tests/support/openai_server.py --port 0 --latency 0.2 --fault 429=0.1 --fault 500=0.1
    python tests/support/openai_server.py --port 0 --content MODULE:FUNCTION --messy 0.3

prints the port it listens on as its first line of stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

#: Every fault kind the server can inject.
FAULTS = ("429", "500", "502", "503", "drop", "hang", "bad_json", "no_choices", "length",
          "content_filter", "refusal", "schema_break")
#: Every way the messy model misbehaves (`Messy`).
MESSES = ("fence", "chatter", "near_json", "length", "reasoning", "think", "tool_case",
          "key_order")
JSON_SCHEMA_MODES = ("accept", "ignore", "reject_400", "reject_500")
GRAMMAR_MODES = ("enforce", "ignore", "reject_400", "reject_500")
#: What the model answers the preflight's probe (plain words, as asked) when nothing stops it.
PLAIN_WORDS = "The picture shows a few objects on a table."
#: What llama-cpp-python's server answers a grammar it cannot use with (HTTP 500).
GRAMMAR_REFUSAL = "from_string: error parsing grammar file: parse_space: grammar not supported"
#: What llama-cpp-python's server answers a json_schema response format with (HTTP 500).
LLAMA_CPP_REFUSAL = ("[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                     "'msg': \"Input should be 'text' or 'json_object'\", 'input': "
                     "'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}]")

Content = Callable[[dict[str, Any]], str]


def fingerprint(body: Mapping[str, Any]) -> str:
    """A short stable id of a request body (what `finished` counts), computable by a client."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def schema_instance(schema: Mapping[str, Any]) -> Any:
    """The smallest value that satisfies a strict structured-output schema (no refs/oneOf)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: schema_instance(props[k]) for k in schema.get("required", props)}
    if kind == "array":
        return [schema_instance(schema.get("items", {}))] * schema.get("minItems", 0)
    if kind == "string":
        return "a" * schema.get("minLength", 0)
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        return min(max(low, 0), schema.get("maximum", max(low, 0)))
    return {"boolean": False, "null": None}.get(kind)


def default_content(body: dict[str, Any]) -> str:
    """A schema instance for `json_schema` requests, else `echo: <last user text>`."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return orjson.dumps(schema_instance(fmt["json_schema"]["schema"])).decode()
    if fmt.get("type") == "json_object":
        return "{}"
    user = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = user[-1]["content"] if user else ""
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return f"echo: {content}"


@dataclass
class FaultPlan:
    """Which requests fail, and how.

    `script` maps a request number (1-based, in arrival order) to a fault kind; `rates` maps a
    fault kind to a probability drawn per request from `random.Random(seed)` (requests not
    scripted). `retry_after` is the 429/503 `Retry-After` in seconds (None: no header);
    `hang_s` is how long a `hang` holds the request before answering normally.
    """

    script: Mapping[int, str] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after: float | None = 1.0
    hang_s: float = 30.0

    def __post_init__(self) -> None:
        unknown = (set(self.script.values()) | set(self.rates)) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULTS}")
        self._rng = random.Random(self.seed)

    def pick(self, number: int) -> str | None:
        if number in self.script:
            return self.script[number]
        if not self.rates:
            return None
        draw, edge = self._rng.random(), 0.0
        for kind, rate in self.rates.items():
            edge += rate
            if draw < edge:
                return kind
        return None


_TOOL_LINE = re.compile(r"^\[([A-Z0-9_-]+)\]: (\{.*\})$", re.M)


def _recase(name: str, rng: random.Random) -> str:
    return name.lower() if rng.random() < 0.5 else name.replace("-", "_")


def _mess_json(kind: str, data: dict[str, Any], rng: random.Random) -> str:
    """A JSON object written the messy way `kind` says."""
    if kind == "near_json":
        if rng.random() < 0.5:
            return repr(data)  # Python style: single quotes, True / None
        text = orjson.dumps(data).decode()
        return text[:-1] + ",}"  # a trailing comma
    if kind == "key_order":
        return orjson.dumps({"model_confidence": 0.9,
                             **dict(reversed(list(data.items())))}).decode()
    if kind == "tool_case":
        data = {k: ([_recase(t, rng) for t in v] if k == "tools" and isinstance(v, list)
                    else _recase(v, rng) if k == "shield_tool" and isinstance(v, str) else v)
                for k, v in data.items()}
    return orjson.dumps(data).decode()


def _mess_trace(kind: str, text: str, rng: random.Random) -> str:
    def line(match: re.Match[str]) -> str:
        name, body = match.group(1), orjson.loads(match.group(2))
        if kind == "tool_case":
            name = _recase(name, rng)
        elif kind == "key_order":
            body = {**dict(reversed(list(body.items()))), "model_confidence": 0.9}
        elif kind == "near_json":
            return f"[{name}]: {body!r}"
        return f"[{name}]: {orjson.dumps(body).decode()}"

    return _TOOL_LINE.sub(line, text, count=0 if kind != "near_json" else 1)


@dataclass
class Messy:
    """Real models' ways of answering, each at its own rate (`MESSES`), drawn per request body
    from `random.Random(seed, body)`: a resend of the same request is messed the same way."""

    rates: Mapping[str, float]
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(MESSES)
        if unknown:
            raise ValueError(f"unknown messes {sorted(unknown)}; known: {MESSES}")

    @classmethod
    def even(cls, rate: float, seed: int = 0) -> Messy:
        """`rate` of the answers messed, spread evenly over every behaviour."""
        return cls(dict.fromkeys(MESSES, rate / len(MESSES)), seed)

    def pick(self, body: Mapping[str, Any]) -> tuple[str | None, random.Random]:
        rng = random.Random(f"{self.seed}:{fingerprint(body)}")
        draw, edge = rng.random(), 0.0
        for kind, rate in self.rates.items():
            edge += rate
            if draw < edge:
                return kind, rng
        return None, rng

    def apply(self, kind: str, content: str, rng: random.Random) -> dict[str, Any]:
        """The message (and `finish_reason`) for `content` answered the `kind` way."""
        stripped = content.strip()
        is_json = stripped.startswith("{")
        if kind in ("near_json", "key_order", "tool_case"):
            if is_json:
                content = _mess_json(kind, orjson.loads(stripped), rng)
            elif "<thinking>" in content:
                content = _mess_trace(kind, content, rng)
        elif kind == "fence":
            content = f"```json\n{content}\n```" if is_json else f"```\n{content}\n```"
        elif kind == "chatter":
            content = f"Sure! Here is my answer.\n\n{content}\n\nLet me know if that helps."
        elif kind == "think":
            content = ("<think>\nThe user wants the requested format; I will follow it.\n"
                       f"</think>\n{content}")
        elif kind == "length":
            return {"content": content[: len(content) // 2], "finish_reason": "length"}
        elif kind == "reasoning":
            field = "reasoning" if rng.random() < 0.5 else "reasoning_content"
            return {"content": None if rng.random() < 0.5 else "",
                    field: f"Let me look at the picture and the question first.\n{content}"}
        return {"content": content}


def as_role(body: dict[str, Any]) -> dict[str, Any]:
    """A body without a json_schema format (a client that fell back to `json_object` or a plain
    prompt) given the json_schema name of the role its payload — or its `json_object` schema,
    which this server enforces as llama.cpp does — names, so a content function that
    dispatches on the format name answers the same role."""
    from safer_toolkit.builder.prompts.wire import (
        JUDGE_FORMAT_NAME,
        JUDGE_PAYLOAD_HEADER,
        PLAN_FORMAT_NAME,
        PLAN_PAYLOAD_HEADER,
    )

    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return body
    text = "\n".join(p.get("text", "") if isinstance(p, dict) else p
                     for m in body.get("messages", []) if m.get("role") == "user"
                     for p in (m["content"] if isinstance(m.get("content"), list)
                               else [str(m.get("content", ""))]))
    schema = fmt.get("schema") if isinstance(fmt.get("schema"), dict) else {}
    keys = schema.get("properties") or {}
    for header, key, name in ((PLAN_PAYLOAD_HEADER, "persona", PLAN_FORMAT_NAME),
                              (JUDGE_PAYLOAD_HEADER, "safety", JUDGE_FORMAT_NAME)):
        # the payload names the role; a json_object schema (enforced, as llama.cpp does) too
        if header in text or key in keys:
            return {**body, "response_format": {"type": "json_schema", "json_schema": {
                "name": name, "schema": schema}}}
    return body


def grammar_in(body: Mapping[str, Any], kind: str) -> str | None:
    """The grammar text a server of `kind` reads from `body` (None: it carries none there)."""
    from safer_toolkit.validation.grammar.requests import grammar_field

    value: Any = body
    for key in grammar_field(kind)[0].split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


class GrammarEngine:
    """llguidance over a byte tokenizer: does a grammar (GBNF or xgrammar EBNF) accept a text,
    and a text it admits, generated one byte at a time. Compiled grammars are kept by text."""

    #: Bytes preferred half of the time (nine times in ten past a quarter of the cap), so
    #: strings, arrays, lines and blocks close; a started closing tag is finished.
    CLOSERS = b'"]}\n<'
    ENDINGS = (b"</answer>", b"</thinking>")

    def __init__(self) -> None:
        import llguidance

        self._ll = llguidance
        self._tokenizer = llguidance.LLTokenizer("byte")
        self._compiled: dict[str, Any] = {}

    def matcher(self, grammar: str) -> Any:
        """A fresh matcher for `grammar`; ValueError when it cannot be parsed."""
        if grammar not in self._compiled:
            self._compiled[grammar] = self._ll.grammar_from("gbnf", grammar)
        matcher = self._ll.LLMatcher(self._tokenizer, self._compiled[grammar], log_level=0)
        if matcher.is_error():
            raise ValueError(matcher.get_error()[:300])
        return matcher

    def accepts(self, grammar: str, text: str) -> bool:
        matcher, data = self.matcher(grammar), list(text.encode())
        return matcher.validate_tokens(data) == len(data) and matcher.consume_tokens(data) \
            and matcher.is_accepting()

    def generate(self, grammar: str, rng: random.Random, max_bytes: int) -> tuple[str, str]:
        """(text, finish_reason): a text the grammar admits, or its first `max_bytes` bytes."""
        matcher, out = self.matcher(grammar), bytearray()
        while not matcher.is_accepting():
            if len(out) >= max_bytes:
                return out.decode(errors="replace"), "length"
            mask = matcher.compute_bitmask()
            allowed = [b for b in range(256) if mask[b // 8] >> (b % 8) & 1]
            plain = [b for b in allowed if 32 <= b < 127 or b == 10] or allowed
            closers = [b for b in plain if b in self.CLOSERS]
            ending = next((tag[n] for tag in self.ENDINGS for n in range(len(tag) - 1, 0, -1)
                           if out.endswith(tag[:n]) and tag[n] in plain), None)
            wind_down = 0.9 if len(out) > max_bytes // 4 else 0.5
            picked = ending if ending is not None else rng.choice(
                closers if closers and rng.random() < wind_down else plain)
            matcher.consume_token(picked)
            out.append(picked)
        return out.decode(errors="replace"), "stop"


class OpenAIServer:
    """The server; `start()` runs it in a background thread (or use it as a context manager)."""

    def __init__(self, *, latency: float = 0.0, faults: FaultPlan | None = None,
                 content: Content = default_content, models: tuple[str, ...] = ("test-model",),
                 require_key: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 messy: Messy | None = None, json_schema: str = "accept",
                 check_model: bool = False, rate_limit: tuple[int, float] | None = None,
                 text_only: bool = False, imitate: str = "llama.cpp",
                 grammar: str = "ignore", owned_by: str | None = None) -> None:
        if json_schema not in JSON_SCHEMA_MODES:
            raise ValueError(f"json_schema must be one of {JSON_SCHEMA_MODES}")
        if grammar not in GRAMMAR_MODES:
            raise ValueError(f"grammar must be one of {GRAMMAR_MODES}")
        self.imitate, self.grammar = imitate, grammar
        self.owned_by = owned_by or "loopback"  # a known kind's owner only when asked for
        self.grammar_counts: Counter[str] = Counter()
        self._engine: GrammarEngine | None = None
        self.latency, self.faults, self.content, self.models = latency, faults or FaultPlan(), \
            content, models
        self.require_key = require_key
        self.messy, self.json_schema, self.check_model = messy, json_schema, check_model
        self.text_only = text_only  # content parts refused, as llama.cpp's text chat templates do
        self.mess_counts: Counter[str] = Counter()
        self.rate_limit = rate_limit  # (requests, window seconds): OpenAI-style headers and 429s
        self.rate_limited = 0
        self._window = (0.0, 0)  # (window start, requests in it)
        self.host, self.port = host, port
        self.total = 0
        self.fault_counts: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []  # monotonic arrival time of every completion request
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._stats)
        return app

    def stats(self) -> dict[str, Any]:
        return {"total": self.total, "faults": dict(self.fault_counts),
                "messes": dict(self.mess_counts), "grammars": dict(self.grammar_counts),
                "rate_limited": self.rate_limited,
                "finished": sum(self.finished.values()), "max_in_flight": self.max_in_flight}

    async def _models(self, request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.require_key is not None and given != self.require_key:
            return web.json_response(
                {"error": {"message": f"Incorrect API key provided: {given}"}}, status=401)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": self.owned_by}
                for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def _refusal(self, body: Any) -> web.Response | None:
        """The answer of a server that does not serve this model or this response format."""
        if not isinstance(body, dict):
            return None
        model = body.get("model")
        if self.check_model and model not in self.models:
            return web.json_response({"error": {
                "message": f"The model `{model}` does not exist.", "type": "NotFoundError",
                "code": "model_not_found"}}, status=404)
        kind = (body.get("response_format") or {}).get("type")
        if kind == "json_schema" and self.json_schema == "reject_500":
            return web.json_response({"error": {"message": LLAMA_CPP_REFUSAL,
                                                "type": "internal_server_error"}}, status=500)
        if self.text_only and any(isinstance(m.get("content"), list)
                                  for m in body.get("messages", []) if isinstance(m, dict)):
            return web.json_response({"error": {
                "message": 'can only concatenate str (not "list") to str',
                "type": "internal_server_error"}}, status=500)
        if kind == "json_schema" and self.json_schema == "reject_400":
            return web.json_response({"error": {
                "message": "response_format of type json_schema is not supported by this "
                           "server", "type": "invalid_request_error"}}, status=400)
        grammar = grammar_in(body, self.imitate)
        if grammar is None or self.grammar == "ignore":
            return None
        if self.grammar == "reject_500":
            self.grammar_counts["refused"] += 1
            return web.json_response({"error": {"message": GRAMMAR_REFUSAL,
                                                "type": "internal_server_error"}}, status=500)
        try:
            if self.grammar == "reject_400":
                raise ValueError("grammar-constrained decoding is not enabled on this server")
            self._engine = self._engine or GrammarEngine()
            self._engine.matcher(grammar)
        except ValueError as exc:
            self.grammar_counts["refused"] += 1
            return web.json_response({"error": {"message": f"Invalid grammar: {exc}",
                                                "type": "BadRequestError"}}, status=400)
        return None

    def _plain_words_asked(self, body: dict[str, Any]) -> bool:
        """Whether the request is the preflight's probe, asking for plain words, with no JSON
        format this server enforces: the model then does as it is asked (a grammar, if one is
        enforced, has its say afterwards)."""
        from safer_toolkit.builder.roles import PROBE_SYSTEM

        messages = body.get("messages") or [{}]
        if not isinstance(messages[0], dict) or messages[0].get("content") != PROBE_SYSTEM:
            return False
        kind = (body.get("response_format") or {}).get("type")
        return kind is None or (kind == "json_schema" and self.json_schema == "ignore")

    def _enforced(self, body: dict[str, Any], content: str) -> tuple[str, str] | None:
        """(content, finish_reason) under the grammar `body` carries in the imitated field and
        this server enforces; None when there is none to enforce."""
        grammar = grammar_in(body, self.imitate)
        if grammar is None or self.grammar != "enforce":
            return None
        assert self._engine is not None  # compiled by `_refusal`
        if self._engine.accepts(grammar, content):
            self.grammar_counts["accepted"] += 1
            return content, "stop"
        self.grammar_counts["generated"] += 1
        tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 2048
        return self._engine.generate(grammar, random.Random(fingerprint(body)), 4 * tokens)

    def _rate(self) -> tuple[dict[str, str], bool]:
        """OpenAI-style rate-limit headers for this request, and whether it is over the limit."""
        if self.rate_limit is None:
            return {}, False
        limit, window = self.rate_limit
        now = time.monotonic()
        start, used = self._window
        if now - start >= window:
            start, used = now, 0
        used += 1
        self._window = (start, used)
        reset = max(0.0, window - (now - start))
        headers = {"x-ratelimit-limit-requests": str(limit),
                   "x-ratelimit-remaining-requests": str(max(0, limit - used)),
                   "x-ratelimit-reset-requests": f"{reset:.3f}s"}
        return headers, used > limit

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.require_key is not None and given != self.require_key:
            # Like the real service, the refusal quotes the key it was given.
            return web.json_response(
                {"error": {"message": f"Incorrect API key provided: {given}"}}, status=401)
        self.total += 1
        self.arrivals.append(time.monotonic())
        headers, over = self._rate()
        if over:
            self.rate_limited += 1
            return web.json_response({"error": {"message": "Rate limit reached"}}, status=429,
                                     headers={**headers, "Retry-After": headers[
                                         "x-ratelimit-reset-requests"].rstrip("s")})
        fault = self.faults.pick(self.total)
        if fault:
            self.fault_counts[fault] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            response = await self._answer(request, raw, fault)
            response.headers.update(headers)
            return response
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, raw: bytes,
                      fault: str | None) -> web.StreamResponse:
        if fault in ("429", "500", "502", "503"):
            after = self.faults.retry_after
            headers = {"Retry-After": f"{after:g}"} if after is not None and fault in (
                "429", "503") else {}
            return web.json_response({"error": {"message": f"injected {fault}"}},
                                     status=int(fault), headers=headers)
        if fault == "drop":
            request.transport.abort()
            return web.Response()
        if fault == "hang":
            await asyncio.sleep(self.faults.hang_s)
        if fault == "bad_json":
            return web.Response(body=b'{"id": "chatcmpl-1", "choices": [{"mess',
                                content_type="application/json")
        body = orjson.loads(raw)
        refused = self._refusal(body)
        if refused is not None:
            return refused
        if fault == "no_choices":
            return web.json_response({"id": "chatcmpl-1", "object": "chat.completion",
                                      "choices": []})
        content = '{"schema_broken": true}' if fault == "schema_break" \
            else self.content(as_role(body))
        if self._plain_words_asked(body):
            content = PLAIN_WORDS
        finish = fault if fault in ("length", "content_filter") else "stop"
        enforced = None if fault else self._enforced(body, content)
        if enforced is not None:
            content, finish = enforced
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if fault == "refusal":  # structured outputs: the model declined, no content
            message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
        elif enforced is not None:  # a grammar leaves no room for a model's wrapping
            if finish == "stop":
                self.finished[fingerprint(body)] += 1
        else:
            if self.json_schema == "ignore" and (body.get("response_format") or {}).get(
                    "type") == "json_schema":  # an unconstrained model: free text around JSON
                content = f"Here is the JSON you asked for:\n```json\n{content}\n```"
                message["content"] = content
            if self.messy is not None and not fault:
                kind, rng = self.messy.pick(body)
                if kind is not None:
                    self.mess_counts[kind] += 1
                    message.update(self.messy.apply(kind, content, rng))
                    finish = message.pop("finish_reason", finish)
            if finish == "stop":
                self.finished[fingerprint(body)] += 1
        said = next((v for k in ("content", "reasoning", "reasoning_content")
                     if isinstance(v := message.get(k), str) and v), "")
        answer = {"id": f"chatcmpl-{self.total}", "object": "chat.completion", "created": 0,
                  "model": body.get("model", ""),
                  "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                  "usage": {"prompt_tokens": len(raw) // 4,
                            "completion_tokens": max(1, len(said) // 4),
                            "total_tokens": len(raw) // 4 + max(1, len(said) // 4)}}
        return web.Response(body=orjson.dumps(answer), content_type="application/json")

    async def serve(self) -> None:
        """Bind and start serving on the running loop (sets `self.port`)."""
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> OpenAIServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="openai-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _load_content(spec: str) -> Content:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND=RATE",
                        help=f"inject a fault with a probability; KIND in {', '.join(FAULTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--content", help="MODULE:FUNCTION computing content from a body")
    parser.add_argument("--messy", type=float, default=0.0, metavar="RATE",
                        help=f"mess up this share of the answers, evenly over {', '.join(MESSES)}")
    parser.add_argument("--json-schema", choices=JSON_SCHEMA_MODES, default="accept")
    parser.add_argument("--grammar", choices=GRAMMAR_MODES, default="ignore",
                        help="what to do with a grammar in the imitated server's field")
    parser.add_argument("--imitate", default="llama.cpp",
                        help="the server kind whose grammar field is read (vllm, sglang, "
                             "llama.cpp)")
    parser.add_argument("--owned-by", help="the owned_by of the listed models")
    parser.add_argument("--model", action="append", default=[],
                        help="a model the server serves (repeat; with it, others get a 404)")
    args = parser.parse_args(argv)
    rates = {k: float(v) for k, v in (f.split("=", 1) for f in args.fault)}
    server = OpenAIServer(latency=args.latency, host=args.host, port=args.port,
                          faults=FaultPlan(rates=rates, seed=args.seed,
                                           retry_after=args.retry_after),
                          content=_load_content(args.content) if args.content
                          else default_content,
                          messy=Messy.even(args.messy, args.seed) if args.messy else None,
                          json_schema=args.json_schema, grammar=args.grammar,
                          imitate=args.imitate, owned_by=args.owned_by,
                          models=tuple(args.model) or ("test-model",),
                          check_model=bool(args.model))

    async def run() -> None:
        await server.serve()
        print(server.port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
