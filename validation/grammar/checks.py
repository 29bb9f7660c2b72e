"""Check validator records (docs/protocol.md §3) against their protocol's grammar, one report
line each.

Records are read by the validator's own reader (`records.py`): JSONL, a JSON array or parquet,
a response as `response` text, `calls` + `answer` (checked in its canonical text form) or a
released row's TRL `messages`.

A response is matched against its protocol's grammar restricted to at most as many calls as
it has lines starting with `[` (never fewer than `min_calls`): every call is such a line, so
the restricted grammar accepts the response exactly when the full one does, and for a loop
protocol it is a fraction of the size (the full exact grammar can pass the matcher's limits).
Where a refused response leaves the grammar is reported for that restricted grammar.
Grammars and matchers are built once per (protocol, call count).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..codec import from_stored, to_text
from ..limits import MAX_TEXT_CHARS
from ..protocol import ProtocolInvalid, resolve_protocol
from ..records import ParseFailure, read_records
from ..validator import TRACE_SCHEMA, turn_text
from .matcher import GrammarMatcher, Match, require_matcher
from .options import GrammarError, GrammarLimits
from .trace import compile_grammar

_CACHE = 64  # compiled grammars kept (a loop protocol's exact grammar can be large)


def _record_text(record: dict[str, Any]) -> str:
    """The response text of a record, or ValueError saying why there is none."""
    if "response" in record:
        text = record["response"]
        if not isinstance(text, str):
            raise ValueError("`response` must be a string")
        return text
    if "calls" in record or "answer" in record:
        if not TRACE_SCHEMA.is_valid(record):
            raise ValueError("the stored-form trace breaks trace.schema.json")
        return to_text(from_stored(record))
    text = turn_text(record.get("messages"))
    if text is None:
        raise ValueError("the record has neither `response`, `calls` + `answer` nor messages")
    return text


class GrammarChecker:
    """Checks records one by one; `summary()` counts what it saw."""

    def __init__(self, default_protocol: Any = None, limits: GrammarLimits | None = None,
                 library: str = "default") -> None:
        require_matcher()  # fail early when the matcher is missing
        self.default_protocol = default_protocol
        self.limits = limits or GrammarLimits()
        self.library = library
        self._matchers: OrderedDict[bytes, GrammarMatcher | str] = OrderedDict()
        self.counts = {"records": 0, "accepted": 0, "refused": 0, "no_grammar": 0}

    def _matcher(self, doc: Any, text: str) -> GrammarMatcher:
        if isinstance(doc, str):
            try:
                doc = orjson.loads(doc)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"protocol string is not JSON: {exc}") from None
        lines = text.count("\n[") + text.startswith("[")
        key = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + b"|%d" % lines
        found = self._matchers.get(key)
        if found is None:
            try:
                protocol = resolve_protocol(doc, self.library)
                calls = max(min(lines, protocol.max_calls), protocol.min_calls)
                protocol = dataclasses.replace(protocol, max_calls=calls)
                found = GrammarMatcher(compile_grammar(protocol, self.limits))
            except ProtocolInvalid as exc:
                found = "the protocol is invalid: " + "; ".join(
                    f"{i.path or '/'}: {i.message}" for i in exc.issues)
            except GrammarError as exc:
                found = f"no grammar: {exc}"
            self._matchers[key] = found
            if len(self._matchers) > _CACHE:
                self._matchers.popitem(last=False)
        if isinstance(found, str):
            raise ValueError(found)
        return found

    def check(self, record: Any, index: int) -> dict[str, Any]:
        """One report line: `index`, `id`, `accepted` and, when refused, where and why."""
        line: dict[str, Any] = {"index": index, "id": None}
        try:
            if isinstance(record, ParseFailure):
                raise ValueError(f"{record.where}: {record.message}")
            if not isinstance(record, dict):
                raise ValueError("record is not a JSON object")
            rid = record.get("id")
            if isinstance(rid, str | int) and not isinstance(rid, bool):
                line["id"] = rid
            doc = record.get("protocol", self.default_protocol)
            if doc is None:
                raise ValueError("the record has no protocol and none was given")
            text = _record_text(record)
            if len(text) > MAX_TEXT_CHARS:
                raise ValueError(f"the response is {len(text)} characters; the limit is "
                                 f"{MAX_TEXT_CHARS}")
            matcher = self._matcher(doc, text)
        except ValueError as exc:
            self._count(None)
            return {**line, "accepted": False, "error": str(exc)}
        match = matcher.match(text)
        self._count(match)
        return {**line, **match.to_dict()}

    def _count(self, match: Match | None) -> None:
        self.counts["records"] += 1
        if match is None:
            self.counts["refused"] += 1
            self.counts["no_grammar"] += 1
        else:
            self.counts["accepted" if match.accepted else "refused"] += 1

    def check_files(self, paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
        """Check every record of every file, in order, with one 0-based index across files.

        Raises `RecordSourceError` when a file cannot be opened at all."""
        index = 0
        for path in paths:
            for record in read_records(path):
                yield self.check(record, index)
                index += 1

    def summary(self) -> dict[str, int]:
        return dict(self.counts)
