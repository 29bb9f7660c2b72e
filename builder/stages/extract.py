"""Reading real models' replies: one extractor for JSON replies, one for traces.

Real models and servers wrap what was asked for: a Markdown fence, a sentence of chatter before
or after, a `<think>…</think>` block, near-JSON (trailing commas, Python-style quotes), tool
names in another case or with `_` for `-`, keys in another order or one the schema does not
know. The extractors undo exactly that — only where the reading is unambiguous — and count
every repair by kind, so a build says what it had to put up with. They make a reply *readable*;
they never make it *right*: a plan is still checked against its schema and rules, a trace is
re-rendered in the canonical text form and validated strictly, so a trace whose calls break the
graph, the types or the decision is still rejected.

Repair kinds: `think_block`, `reasoning_field` (counted by the caller that read the reply from
the server's reasoning field), `fence`, `chatter`, `trailing_comma`, `single_quotes`,
`tool_name`, `unknown_key`, `key_order`, `layout` (a trace re-rendered canonically with no
other repair, e.g. an answer block without its line breaks).
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import InputError
from ...validation import Protocol
from ...validation.codec import Call, Trace, to_text
from ...validation.limits import MAX_CALLS

#: Replies longer than this are read as they are (the validator bounds them).
MAX_REPAIR_CHARS = 200_000
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_CALL_LINE = re.compile(r"^[ \t]*\[([^\[\]\n]{1,64})\][ \t]*:[ \t]*(.*?)[ \t]*$")
_TOOL_NAME = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")
_JSON_WORDS = {"true": "True", "false": "False", "null": "None"}
_DECODER = json.JSONDecoder()


class NotDecodable(InputError, ValueError):
    """No JSON value could be read from the reply, even with the repairs allowed."""


@dataclass
class Extracted:
    """What an extractor read, and the repairs it took, by kind."""

    value: Any
    repairs: Counter[str] = field(default_factory=Counter)


def strip_think(text: str, repairs: Counter[str]) -> str:
    """`text` without `<think>…</think>` blocks (an unclosed one runs to the end; a lone
    `</think>`, whose opening tag was in the chat template, ends the thinking)."""
    if "<think>" in text:
        text = _THINK.sub("", text)
    elif "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    else:
        return text
    repairs["think_block"] += 1
    return text


def _unfence(text: str, repairs: Counter[str], wanted: str) -> str:
    """The first fenced block that contains `wanted`, when the reply has fences."""
    if "```" not in text:
        return text
    for match in _FENCE.finditer(text):
        if wanted in match.group(2):
            repairs["fence"] += 1
            return match.group(2)
    return text


# -- JSON ---------------------------------------------------------------------------------------

def _scan(text: str, start: int, *, python: bool) -> tuple[int, list[int]]:
    """From an opening bracket at `start`: (index just past its matching close, or -1; the
    indexes of commas that directly precede a closing bracket). Strings are skipped: double
    quoted, and single quoted too when `python`."""
    quotes = "\"'" if python else '"'
    depth, i, n = 0, start, len(text)
    trailing: list[int] = []
    last_comma = -1
    while i < n:
        ch = text[i]
        if ch in quotes:
            i += 1
            while i < n and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
            last_comma = -1
        elif ch in "{[":
            depth += 1
            last_comma = -1
        elif ch in "}]":
            if last_comma >= 0:
                trailing.append(last_comma)
            depth -= 1
            last_comma = -1
            if depth == 0:
                return i + 1, trailing
        elif ch == ",":
            last_comma = i
        elif not ch.isspace():
            last_comma = -1
        i += 1
    return -1, trailing


def _python_words(text: str) -> str:
    """JSON's `true`/`false`/`null` outside strings spelled as Python literals."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        m = re.match(r"true|false|null", text[i:i + 5])
        if m and (i == 0 or not text[i - 1].isalnum()) and not text[i + len(m.group()):][:1] \
                .isalnum():
            out.append(_JSON_WORDS[m.group()])
            i += len(m.group())
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _json_compatible(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_compatible(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_compatible(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def loads_near_json(text: str, repairs: Counter[str]) -> tuple[Any, int]:
    """The JSON value at the start of `text` and where it ends; trailing commas and Python-style
    quoting are repaired when the value then reads unambiguously. Raises `NotDecodable`."""
    try:
        return _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        error = exc
    if len(text) > MAX_REPAIR_CHARS or text[:1] not in "{[":
        raise NotDecodable(f"not JSON: {error}")
    end, trailing = _scan(text, 0, python=False)
    if end > 0 and trailing:
        chunk = text[:end]
        for i in reversed(trailing):
            chunk = chunk[:i] + chunk[i + 1:]
        try:
            value = json.loads(chunk)
        except json.JSONDecodeError:
            pass
        else:
            repairs["trailing_comma"] += 1
            return value, end
    end, _ = _scan(text, 0, python=True)
    if end > 0:
        try:
            value = ast.literal_eval(_python_words(text[:end]))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = None
        else:
            if isinstance(value, dict | list) and _json_compatible(value):
                repairs["single_quotes"] += 1
                return value, end
    raise NotDecodable(f"not JSON: {error}")


def _name_key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip()).upper()


def match_name(name: str, names: Collection[str]) -> str | None:
    """The one name in `names` that `name` spells up to case and `_`/`-`/space, else None."""
    key = _name_key(name)
    found = [n for n in names if _name_key(n) == key]
    return found[0] if len(found) == 1 else None


def conform(value: Any, schema: Mapping[str, Any], repairs: Counter[str], *,
            reorder: bool = False) -> Any:
    """`value` with keys a closed object schema does not know dropped (`unknown_key`), tool
    names in an enum of tool names matched up to case and separator (`tool_name`), and — with
    `reorder` — object keys in the schema's order (`key_order`). Nothing else changes: values
    of the wrong type or out of range are left for the validator to report."""
    kind = type(value)
    if kind is dict:
        props = schema.get("properties")
        if not isinstance(props, dict):
            return value
        if schema.get("additionalProperties") is False and not props.keys() >= value.keys():
            unknown = [k for k in value if k not in props]
            repairs["unknown_key"] += len(unknown)
            value = {k: v for k, v in value.items() if k in props}
        value = {k: conform(v, props[k], repairs, reorder=reorder) if _nested(v, props.get(k))
                 else v for k, v in value.items()}
        if reorder and list(value) != [k for k in props if k in value]:
            repairs["key_order"] += 1
            value = {k: value[k] for k in props if k in value}
        return value
    if kind is list:
        items = schema.get("items")
        if not value or not isinstance(items, dict) or not _nested(value[0], items):
            return value
        return [conform(v, items, repairs, reorder=reorder) for v in value]
    enum = schema.get("enum")
    if kind is str and enum and value not in enum:
        names = [e for e in enum if isinstance(e, str)]
        if names and all(_TOOL_NAME.match(e) for e in names):
            found = match_name(value, names)
            if found is not None:
                repairs["tool_name"] += 1
                return found
    return value


def _nested(value: Any, schema: Any) -> bool:
    """Whether `conform` has anything to do for `value` under `schema`."""
    return isinstance(schema, dict) and (type(value) in (dict, list) or "enum" in schema)


def extract_json(text: str, schema: Mapping[str, Any] | None = None) -> Extracted:
    """The JSON object a reply carries (see the module doc), conformed to `schema` when given.

    Raises `NotDecodable` when there is none."""
    repairs: Counter[str] = Counter()
    text = _unfence(strip_think(text, repairs), repairs, "{")
    start = text.find("{")
    if start < 0:
        try:
            json.loads(text)
        except json.JSONDecodeError:
            raise NotDecodable("not JSON: the reply holds no JSON object") from None
        raise NotDecodable("not a JSON object")
    value, end = loads_near_json(text[start:], repairs)
    if text[:start].strip() or text[start + end:].strip():
        repairs["chatter"] += 1
    if not isinstance(value, dict):
        raise NotDecodable("not a JSON object")
    if schema is not None:
        value = conform(value, schema, repairs)
    return Extracted(value, repairs)


# -- traces -------------------------------------------------------------------------------------

def _blocks(core: str) -> tuple[str, str] | None:
    """(thinking, answer) when `core` is exactly one thinking block then one answer block."""
    tags = re.findall(r"</?(?:thinking|answer)>", core)
    if tags != ["<thinking>", "</thinking>", "<answer>", "</answer>"]:
        return None
    head, rest = core.split("</thinking>", 1)
    between, answer = rest.split("<answer>", 1)
    if between.strip():
        return None
    answer = answer.rsplit("</answer>", 1)[0]
    answer = answer[1:] if answer.startswith("\n") else answer
    answer = answer[:-1] if answer.endswith("\n") else answer
    return head.split("<thinking>", 1)[1], answer


def _call(line: str, protocol: Protocol, repairs: Counter[str]) -> Call | None:
    m = _CALL_LINE.match(line)
    if m is None:
        return None
    name, body = m.group(1), m.group(2)
    if name not in protocol.tools:
        found = match_name(name, protocol.tools)
        if found is None:
            return Call(name, body)  # an unknown tool: the validator says so
        repairs["tool_name"] += 1
        name = found
    if not body.startswith("{"):
        return Call(name, body)  # untyped: the validator says so
    try:
        output, end = loads_near_json(body, repairs)
    except NotDecodable:
        return Call(name, body)
    if body[end:].strip() or not isinstance(output, dict):
        return Call(name, body)
    return Call(name, conform(output, protocol.tools[name].output, repairs, reorder=True))


def extract_trace(text: str, protocol: Protocol) -> Extracted:
    """A reply's trace in the canonical text form (`value`), with the repairs it took.

    When the reply's structure cannot be read unambiguously (blocks missing, repeated or out
    of order, a thinking line that is not a `[NAME]: body` call) the value is the reply with
    only its wrapping removed, for the strict validator to explain."""
    repairs: Counter[str] = Counter()
    text = _unfence(strip_think(text, repairs), repairs, "<thinking>")
    start, end = text.find("<thinking>"), text.rfind("</answer>")
    if start < 0 or end < start:
        return Extracted(text, repairs)
    end += len("</answer>")
    if text[:start].strip() or text[end:].strip():
        repairs["chatter"] += 1
    core = text[start:end]
    blocks = _blocks(core) if len(core) <= MAX_REPAIR_CHARS else None
    if blocks is None:
        return Extracted(core, repairs)
    thinking, answer = blocks
    lines = [line for line in thinking.split("\n") if line.strip()]
    if len(lines) > MAX_CALLS:
        return Extracted(core, repairs)
    found: Counter[str] = Counter()
    calls = [_call(line, protocol, found) for line in lines]
    if any(c is None for c in calls):
        return Extracted(core, repairs)
    canonical = to_text(Trace(calls, answer))  # type: ignore[arg-type]
    if canonical != core and not found:
        found["layout"] += 1
    repairs.update(found)
    return Extracted(canonical, repairs)
