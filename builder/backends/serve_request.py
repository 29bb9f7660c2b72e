"""What `serve` accepts as a chat-completions request body, checked by type before any work.

A request the offline backend cannot read is the client's mistake, so it gets a 400 naming the
field (`messages[0].content[1].text`), never a 500 from deep inside an answer. The bounds keep
one request from holding the server: the body is parsed only when its count of JSON objects
and arrays is small (what Python objects the parse builds is bounded before it is built), and
the text it carries is capped — the offline backend reads all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ...errors import EndpointError

#: JSON objects and arrays in one body (counted from its bytes before parsing): a real request
#: has hundreds; each costs ~100 bytes of Python objects once built.
MAX_CONTAINERS = 100_000
#: Characters of text over all messages (about 250k tokens, beyond any model's context).
MAX_TEXT_CHARS = 1_000_000
ROLES = ("system", "developer", "user", "assistant", "tool")
FORMATS = ("text", "json_object", "json_schema")
#: Sampling fields the server reads or passes on, with the JSON type each must have.
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty",
            "repetition_penalty")
_INTEGERS = ("n", "seed", "max_tokens", "max_completion_tokens", "top_k")


class BadRequest(EndpointError, ValueError):
    """A request body the server will not answer; `param` names the field (None: the body)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


def _expect(ok: bool, param: str, wanted: str, value: Any) -> None:
    if not ok:
        raise BadRequest(f"`{param}` must be {wanted}, not {_type_name(value)}", param)


def _check_part(part: Any, param: str) -> int:
    """Check one content part; returns its text length."""
    _expect(isinstance(part, dict), param, "an object", part)
    kind = part.get("type")
    _expect(isinstance(kind, str), f"{param}.type", "a string", kind)
    if kind == "text":
        text = part.get("text")
        _expect(isinstance(text, str), f"{param}.text", "a string", text)
        return len(text)
    if kind == "image_url":
        image = part.get("image_url")
        _expect(isinstance(image, dict), f"{param}.image_url", 'an object {"url": ...}', image)
        url = image.get("url")
        _expect(isinstance(url, str), f"{param}.image_url.url", "a string", url)
        detail = image.get("detail")
        _expect(detail is None or isinstance(detail, str), f"{param}.image_url.detail",
                "a string", detail)
    return 0


def _check_message(message: Any, param: str) -> int:
    """Check one message; returns its text length."""
    _expect(isinstance(message, dict), param, "an object", message)
    role = message.get("role")
    _expect(isinstance(role, str), f"{param}.role", "a string", role)
    if role not in ROLES:
        raise BadRequest(f"`{param}.role` must be one of {', '.join(ROLES)}, not {role!r:.40}",
                         f"{param}.role")
    content = message.get("content")
    if isinstance(content, str):
        return len(content)
    if content is None and role in ("assistant", "tool"):
        return 0
    _expect(isinstance(content, list), f"{param}.content", "a string or an array of parts",
            content)
    return sum(_check_part(p, f"{param}.content[{i}]") for i, p in enumerate(content))


def _check_response_format(fmt: Any) -> None:
    if fmt is None:
        return
    _expect(isinstance(fmt, dict), "response_format", "an object", fmt)
    kind = fmt.get("type")
    _expect(isinstance(kind, str), "response_format.type", "a string", kind)
    if kind not in FORMATS:
        raise BadRequest(f"`response_format.type` must be one of {', '.join(FORMATS)}, not "
                         f"{kind!r:.40}", "response_format.type")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        _expect(isinstance(spec, dict), "response_format.json_schema",
                'an object {"name", "schema", "strict"}', spec)
        name = spec.get("name")
        _expect(isinstance(name, str), "response_format.json_schema.name", "a string", name)
        schema = spec.get("schema")
        _expect(schema is None or isinstance(schema, dict | bool),
                "response_format.json_schema.schema", "an object", schema)
        strict = spec.get("strict")
        _expect(strict is None or isinstance(strict, bool),
                "response_format.json_schema.strict", "a boolean", strict)
    schema = fmt.get("schema")  # llama.cpp's json_object form
    _expect(schema is None or isinstance(schema, dict | bool), "response_format.schema",
            "an object", schema)


def _check_sampling(body: Mapping[str, Any]) -> None:
    for name in _NUMBERS:
        value = body.get(name)
        _expect(value is None or _is_number(value), name, "a number", value)
    for name in _INTEGERS:
        value = body.get(name)
        _expect(value is None or _is_int(value), name, "an integer", value)
    stream = body.get("stream")
    _expect(stream is None or isinstance(stream, bool), "stream", "a boolean", stream)
    stop = body.get("stop")
    _expect(stop is None or isinstance(stop, str)
            or (isinstance(stop, list) and all(isinstance(s, str) for s in stop)),
            "stop", "a string or an array of strings", stop)


def read_body(raw: bytes) -> dict[str, Any]:
    """The request body as a dict, checked by type; raises `BadRequest` naming the field."""
    containers = raw.count(b"{") + raw.count(b"[")  # an upper bound: brackets in strings count
    if containers > MAX_CONTAINERS:
        raise BadRequest(f"the body holds more than {MAX_CONTAINERS:,} JSON objects and arrays")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    _expect(isinstance(body, dict), "body", "a JSON object", body)
    model = body.get("model")
    _expect(isinstance(model, str), "model", "a string", model)
    messages = body.get("messages")
    _expect(isinstance(messages, list), "messages", "a list of message objects", messages)
    text = sum(_check_message(m, f"messages[{i}]") for i, m in enumerate(messages))
    if text > MAX_TEXT_CHARS:
        raise BadRequest(f"the messages hold {text:,} characters of text; this server accepts "
                         f"at most {MAX_TEXT_CHARS:,}", "messages")
    _check_response_format(body.get("response_format"))
    _check_sampling(body)
    return body
