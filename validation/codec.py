"""Traces in their two forms: stored JSON ⇄ model-facing text (docs/protocol.md §3).

`to_text` writes the canonical text form; `parse_text` reads it back (strict) or reads the
authors' `[TOOL]: free text` runtime format (lenient). Both directions are lossless for typed
traces: `parse_text(to_text(t)).trace == t`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .issues import Issue, issue
from .limits import MAX_CALLS

Mode = Literal["strict", "lenient"]

#: The authors' tool-name regex (their reward counts calls with it).
TOOL_TAG = re.compile(r"\[([A-Z0-9_-]+)\]\s*:")
_CALL_PREFIX = re.compile(r"[ \t]*\[([A-Z0-9_-]+)\][ \t]*:[ \t]*")
#: A whole line `[NAME]: {...}`: the shape of every line of a well-formed trace.
_TYPED_LINE = re.compile(r"^[ \t]*\[([A-Z0-9_-]+)\][ \t]*:[ \t]*(\{.*)$", re.M)
_TAG = re.compile(r"</?(?:thinking|answer)>")
#: The common well-formed layout, matched without backtracking (a `<` inside the thinking
#: block, or a tag inside the answer, sends the text down the careful path instead).
_WELL_FORMED = re.compile(r"\s*<thinking>([^<]*)</thinking>\s*<answer>(.*)</answer>\s*", re.S)
_TAGS = ("<thinking>", "</thinking>", "<answer>", "</answer>")


@dataclass(slots=True)
class Call:
    """One virtual tool call: a dict `output` is typed, a str `output` is untyped free text."""

    tool: str
    output: dict[str, Any] | str

    @property
    def typed(self) -> bool:
        return isinstance(self.output, dict)


@dataclass(slots=True)
class Trace:
    calls: list[Call]
    answer: str
    id: Any = None

    def to_stored(self) -> dict[str, Any]:
        """The stored JSON form: `{"id"?, "calls": [{"tool", "output"}], "answer"}`."""
        stored: dict[str, Any] = {} if self.id is None else {"id": self.id}
        stored["calls"] = [{"tool": c.tool, "output": c.output} for c in self.calls]
        stored["answer"] = self.answer
        return stored


@dataclass(slots=True)
class ParsedText:
    """A trace read from text, with what the reading itself found wrong."""

    trace: Trace
    issues: list[Issue] = field(default_factory=list)
    has_thinking: bool = True
    has_answer: bool = True


def from_stored(stored: dict[str, Any]) -> Trace:
    """A `Trace` from a stored-form dict that already passed trace.schema.json."""
    return Trace([Call(c["tool"], c["output"]) for c in stored["calls"]], stored["answer"],
                 stored.get("id"))


def render_call(call: Call) -> str:
    """One `[NAME]: body` line. A JSON body that spells a block tag escapes its `<` as
    `\\u003c` (same JSON value) so the text keeps exactly one thinking and one answer block."""
    if isinstance(call.output, str):
        return f"[{call.tool}]: {call.output}"
    body = json.dumps(call.output, ensure_ascii=False, allow_nan=False)
    if _TAG.search(body):
        body = body.replace("<", "\\u003c")
    return f"[{call.tool}]: {body}"


def to_text(trace: Trace) -> str:
    """The canonical model-facing text: one `[NAME]: {json}` line per call, then the answer."""
    lines = "".join(render_call(c) + "\n" for c in trace.calls)
    return f"<thinking>\n{lines}</thinking>\n<answer>\n{trace.answer}\n</answer>"


def _strip_one_newline(text: str) -> str:
    if text.startswith("\n"):
        text = text[1:]
    if text.endswith("\n"):
        text = text[:-1]
    return text


def _json_object(body: str) -> dict[str, Any] | None:
    if not body.startswith("{"):
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _blocks(text: str) -> tuple[str, str | None, list[Issue], bool, bool]:
    """(thinking, answer, issues, has_thinking, has_answer) for well- or ill-formed text."""
    m = _WELL_FORMED.fullmatch(text)
    if m is not None:
        thinking, answer = m.groups()
        if "<" not in answer or not _TAG.search(answer):
            return thinking, _strip_one_newline(answer), [], True, True
    tokens = list(_TAG.finditer(text))
    kinds = [t.group(0) for t in tokens]
    has_thinking = "<thinking>" in kinds or "</thinking>" in kinds
    has_answer = "<answer>" in kinds or "</answer>" in kinds
    issues: list[Issue] = []
    if not has_thinking:
        issues.append(issue("missing_thinking", "no <thinking> block", "/response"))
    if not has_answer:
        issues.append(issue("missing_answer", "no <answer> block", "/response"))
    expected = [k for k in _TAGS if (k in ("<thinking>", "</thinking>") and has_thinking)
                or (k in ("<answer>", "</answer>") and has_answer)]
    if kinds != expected:
        issues.append(issue("tag_structure", "tags are repeated, unclosed, nested or out of "
                                             f"order: {' '.join(kinds[:12])}", "/response"))
    elif _outside(text, tokens).strip():
        issues.append(issue("tag_structure", "text outside the <thinking> and <answer> blocks",
                            "/response"))
    thinking = _between(text, "<thinking>", ("</thinking>", "<answer>")) if has_thinking else ""
    answer = _between(text, "<answer>", ("</answer>",)) if has_answer else None
    return thinking, None if answer is None else _strip_one_newline(answer), issues, \
        has_thinking, has_answer


def _outside(text: str, tokens: list[re.Match[str]]) -> str:
    """The text outside the blocks delimited by well-ordered (open, close) tag pairs."""
    pieces, pos = [], 0
    for opening, closing in zip(tokens[::2], tokens[1::2], strict=True):
        pieces.append(text[pos:opening.start()])
        pos = closing.end()
    pieces.append(text[pos:])
    return "".join(pieces)


def _between(text: str, opening: str, closings: tuple[str, ...]) -> str:
    start = text.find(opening)
    start = 0 if start < 0 else start + len(opening)
    ends = [e for e in (text.find(c, start) for c in closings) if e >= 0]
    return _TAG.sub("", text[start:min(ends) if ends else len(text)])


def _typed_lines(thinking: str) -> list[Call] | None:
    """The calls when every non-blank line is `[NAME]: {json object}`, else None.

    The common case, read with two C-level regex passes; both modes read such text the same
    way, and anything else falls back to the line-by-line readers below.
    """
    pairs = _TYPED_LINE.findall(thinking)
    if len(pairs) > MAX_CALLS:
        return None
    # Matches never span lines, so in the canonical layout ("\n" + one call per line) a match
    # per line proves every line is a call; other layouts check what the matches leave over.
    if not (len(pairs) == thinking.count("\n") - 1 and thinking[:1] == "\n"
            and thinking[-1:] == "\n"):
        rest = _TYPED_LINE.sub("", thinking)
        if rest and not rest.isspace():
            return None
    loads = orjson.loads
    try:
        calls = [Call(name, loads(body)) for name, body in pairs]
    except orjson.JSONDecodeError:
        return None
    for call in calls:
        if type(call.output) is not dict:
            return None
    return calls


def _strict_calls(thinking: str, calls: list[Call], issues: list[Issue]) -> None:
    for lineno, line in enumerate(thinking.split("\n")):
        if not line or line.isspace():
            continue
        m = _CALL_PREFIX.match(line)
        if m is None:
            issues.append(issue("tool_syntax", f"line {lineno} of <thinking> is not a "
                                               f"`[NAME]: {{json}}` call: {line[:80]!r}",
                                "/response"))
            continue
        if len(calls) > MAX_CALLS:
            return
        body = line[m.end():].rstrip()
        output = _json_object(body)
        calls.append(Call(m.group(1), body if output is None else output))


def _lenient_calls(thinking: str, calls: list[Call]) -> None:
    pos = 0
    m = TOOL_TAG.search(thinking, pos)
    while m is not None and len(calls) <= MAX_CALLS:
        start = m.end()
        while start < len(thinking) and thinking[start] in " \t":
            start += 1
        if thinking.startswith("{", start):
            end = thinking.find("\n", start)
            end = len(thinking) if end < 0 else end
            output = _json_object(thinking[start:end].rstrip())
            if output is not None:
                calls.append(Call(m.group(1), output))
                m = TOOL_TAG.search(thinking, end)
                continue
        nxt = TOOL_TAG.search(thinking, start)
        body = thinking[start:nxt.start() if nxt else len(thinking)].strip()
        output = _json_object(body)  # `[A]: {..} [B]: {..}` on one line: each body is typed
        calls.append(Call(m.group(1), body if output is None else output))
        m = nxt


def parse_text(text: str, mode: Mode = "strict") -> ParsedText:
    """Read a text-form trace; structural findings come back as issues, never exceptions."""
    thinking, answer, issues, has_thinking, has_answer = _blocks(text)
    calls = _typed_lines(thinking)
    if calls is None:
        calls = []
        if mode == "strict":
            _strict_calls(thinking, calls, issues)
        else:
            _lenient_calls(thinking, calls)
    return ParsedText(Trace(calls, "" if answer is None else answer), issues, has_thinking,
                      has_answer)
