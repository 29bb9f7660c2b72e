"""Responses produced elsewhere: a JSONL file of `{"id", "response"}` lines.

Nothing in it sinks the run: a line that is not JSON, lacks a string `response`, repeats an id
or names an id the dataset does not have is reported (file:line) and the rest is used. Items the
file leaves without a response are recorded as missing by the evaluation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..validation.limits import MAX_TEXT_CHARS

#: A line longer than this cannot hold a response the validator would accept.
MAX_LINE_BYTES = 4 * MAX_TEXT_CHARS + 4096


@dataclass
class ResponseFile:
    """The usable responses by id, and what was wrong with the rest of the file."""

    responses: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # "file:line: message"
    unusable: dict[str, str] = field(default_factory=dict)  # id → why its line was not used
    unknown_ids: list[str] = field(default_factory=list)  # ids the dataset does not have


def _read_line(where: str, raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(id, response, problem) of one line."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, None, f"{where}: not JSON ({exc})"
    if not isinstance(record, dict):
        return None, None, f"{where}: not a JSON object"
    rid = record.get("id")
    if not isinstance(rid, str | int) or isinstance(rid, bool) or rid == "":
        return None, None, f"{where}: no `id` (a string or an integer)"
    rid = str(rid)
    response = record.get("response")
    if not isinstance(response, str):
        return rid, None, f"{where}: id {rid!r} has no string `response`"
    if len(response) > MAX_TEXT_CHARS:
        return rid, None, (f"{where}: id {rid!r}: the response is {len(response)} characters; "
                           f"the limit is {MAX_TEXT_CHARS}")
    return rid, response, None


def read_responses(path: Path, dataset_ids: Collection[str]) -> ResponseFile:
    """Read `path`; raises `OSError` only when the file cannot be opened or read."""
    found = ResponseFile()
    with Path(path).open("rb") as f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            where = f"{path}:{number}"
            if len(raw) > MAX_LINE_BYTES:
                found.problems.append(f"{where}: line longer than {MAX_LINE_BYTES} bytes")
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = f.readline(MAX_LINE_BYTES + 1)
                continue
            if not raw.strip():
                continue
            rid, response, problem = _read_line(where, raw)
            if problem is None and rid in found.responses:
                problem = f"{where}: id {rid!r} repeats an earlier line (the first is used)"
            if problem is not None:
                found.problems.append(problem)
                if rid is not None and rid not in found.responses:
                    found.unusable.setdefault(rid, problem)
                continue
            assert rid is not None and response is not None
            if rid not in dataset_ids:
                found.unknown_ids.append(rid)
                continue
            found.responses[rid] = response
            found.unusable.pop(rid, None)
    return found
