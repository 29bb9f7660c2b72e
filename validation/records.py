"""Stream validator records from JSONL, a JSON array or parquet, one at a time.

Memory stays flat whatever the file size: JSONL is read line by line with a byte cap per line
(an oversized line is skipped without being held); a JSON array is split into its elements while
it is read, with the same byte cap per element and the nesting depth capped before anything is
built; parquet goes through row batches. A record that cannot be decoded becomes a
`ParseFailure` in its place, so one bad record never sinks the rest and indexes stay aligned
with the input. A `.jsonl`/`.ndjson` file is always read as JSONL, whatever its first line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..errors import InputError
from .limits import MAX_JSON_DEPTH, MAX_RECORD_BYTES

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A record that could not be decoded; `where` names the file and line or row."""

    where: str
    message: str


class RecordSourceError(InputError, OSError):
    """The file itself cannot be read (missing, unreadable, not a supported format)."""


def _skip_rest_of_line(f: BinaryIO) -> None:
    while True:
        chunk = f.readline(_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return


def _jsonl(path: Path, f: BinaryIO, max_bytes: int) -> Iterator[Any]:
    lineno = 0
    while True:
        line = f.readline(max_bytes + 1)
        if not line:
            return
        lineno += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            _skip_rest_of_line(f)
            yield ParseFailure(f"{path}:{lineno}", f"line exceeds {max_bytes} bytes")
            continue
        if not line.strip():
            continue  # blank lines are not records (docs/protocol.md §4)
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield ParseFailure(f"{path}:{lineno}", f"not JSON: {exc}")


_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
#: Everything up to the next bracket (inside an element) or bracket or comma (between elements),
#: complete strings skipped whole: one C-level match per bracket, not per byte or token. It
#: also stops at a quote whose string does not end in this chunk.
_SKIP = re.compile(rb'(?:[^][{}"]++|' + _STRING + rb')*+', re.S)
_SKIP_TOP = re.compile(rb'(?:[^][{}",]++|' + _STRING + rb')*+', re.S)
#: The rest of a string body: runs of plain bytes and escape pairs, up to the closing quote (or
#: a backslash that is the chunk's last byte, whose escaped byte comes with the next chunk).
_STRING_BODY = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.S)
#: A whole element nesting at most _SHALLOW deep, up to the comma or `]` that ends it: most
#: records are read in one match each. Deeper ones, and ones split across chunks, are read
#: bracket by bracket below. (Brackets of either kind pair up here; orjson rejects a mismatch.)
_SHALLOW = 8
_NESTED = rb'(?:[^][{}"]++|' + _STRING + rb')*+'
for _ in range(_SHALLOW - 1):
    _NESTED = rb'(?:[^][{}"]++|' + _STRING + rb'|[\[{]' + _NESTED + rb'[\]}])*+'
_ELEMENT = re.compile(rb'(?:[^][{}",]++|' + _STRING + rb'|[\[{]' + _NESTED + rb'[\]}])*+(?=[\],])',
                      re.S)
_OPENERS, _CLOSERS = frozenset(b"[{"), frozenset(b"]}")
_NOTHING = object()
_QUOTE, _COMMA, _CLOSE_ARRAY = ord('"'), ord(","), ord("]")


class _ArraySplitter:
    """Splits a JSON array into its elements' bytes while reading it, holding one element.

    Only brackets, quotes and commas are looked at (a C-level regex finds them; string bodies
    are skipped in one match), so an element's nesting depth and size are known before it is
    decoded: one deeper than `max_depth` or larger than `max_bytes` is counted through and
    reported without being held or built. An element is decoded by `orjson` once it is
    complete; a bad one is reported and the next one read, as long as the brackets balance.
    """

    def __init__(self, path: Path, max_bytes: int, max_depth: int) -> None:
        self.path, self.max_bytes, self.max_depth = path, max_bytes, max_depth
        self.depth = 0  # 1 inside the outer array
        self.in_string = self.escaped = False
        self.index = 0
        self.parts: list[bytes] = []
        self.size = 0
        self.too_deep = self.too_big = False
        self.closed = self.failed = False
        self.pending: list[Any] = []

    def _where(self) -> str:
        return f"{self.path}[{self.index}]"

    def _keep(self, data: bytes) -> None:
        if self.too_big or self.too_deep or not data:
            return
        self.size += len(data)
        if self.size > self.max_bytes:
            self.too_big, self.parts = True, []  # counted through from here, never held
        else:
            self.parts.append(data)

    def _end_element(self, closing_array: bool) -> None:
        self._element(b"".join(self.parts), closing_array)

    def _element(self, data: bytes, closing_array: bool) -> None:
        if len(data) > self.max_bytes:
            self.too_big = True
        if self.too_deep:
            found: Any = ParseFailure(self._where(), f"nests deeper than {self.max_depth}")
        elif self.too_big:
            found = ParseFailure(self._where(), f"element exceeds {self.max_bytes} bytes")
        elif not data.strip():
            found = _NOTHING if closing_array and self.index == 0 else ParseFailure(
                self._where(), "empty element (a stray comma?)")
        else:
            try:
                found = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                found = ParseFailure(self._where(), f"not JSON: {exc}")
        if found is not _NOTHING:  # `[]` has no element; `[null]` has one
            self.pending.append(found)
            self.index += 1
        self.parts, self.size, self.too_deep, self.too_big = [], 0, False, False

    def _whole_elements(self, buf: bytes, pos: int) -> int:
        """From an element's start, take each element that ends in this chunk and nests at most
        `_SHALLOW` deep in one match; returns where the bracket-by-bracket reading resumes."""
        while (m := _ELEMENT.match(buf, pos)) is not None:
            end = m.end()
            closing = buf[end] == _CLOSE_ARRAY
            self._element(buf[pos:end], closing)
            pos = end + 1
            if closing:
                self.depth, self.closed = 0, True
                if buf[pos:].strip():
                    self.broken("text after the end of the array")
                return len(buf)
        return pos

    def feed(self, buf: bytes) -> None:
        """Read one chunk; complete elements go to `self.pending`."""
        pos, n = 0, len(buf)
        start = 0 if self.depth else -1  # where this chunk's part of the element begins
        if self.depth == 1 and not (self.parts or self.in_string or self.too_big):
            pos = start = self._whole_elements(buf, 0)  # an element starts this chunk
        while pos < n:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    pos += 1
                    continue
                pos = _STRING_BODY.match(buf, pos).end()  # type: ignore[union-attr]
                if pos < n:
                    if buf[pos] == _QUOTE:
                        self.in_string = False
                    else:
                        self.escaped = True  # a backslash ending the chunk
                    pos += 1
                continue
            at = (_SKIP if self.depth > 1 else _SKIP_TOP).match(buf, pos).end()  # type: ignore[union-attr]
            if at == n:
                break
            c, pos = buf[at], at + 1
            if c == _QUOTE:
                self.in_string = True
            elif c in _OPENERS:
                self.depth += 1
                if self.depth == 1:
                    pos = start = self._whole_elements(buf, pos)
                elif self.depth - 1 > self.max_depth and not self.too_deep:
                    self.too_deep, self.parts = True, []
            elif self.depth > 1:
                if c in _CLOSERS:
                    self.depth -= 1
            elif self.depth == 1 and c in (_COMMA, _CLOSE_ARRAY):
                self._keep(buf[start:at])
                self._end_element(closing_array=c == _CLOSE_ARRAY)
                if c == _CLOSE_ARRAY:
                    self.depth, self.closed = 0, True
                    if buf[pos:].strip():
                        self.broken("text after the end of the array")
                    return
                pos = start = self._whole_elements(buf, pos)
            else:  # a `}` closing the array, or a comma outside it
                self.broken(f"unexpected {chr(c)!r}")
                return
        if self.depth >= 1 and not self.closed:
            self._keep(buf[start:])

    def broken(self, why: str) -> None:
        """The array cannot be read on from here: report it once, in place, and stop."""
        self.pending.append(ParseFailure(self._where(), f"JSON array is broken from here: {why}"))
        self.closed, self.failed, self.depth, self.parts = True, True, 0, []


def _json_array(path: Path, f: BinaryIO, max_bytes: int) -> Iterator[Any]:
    splitter = _ArraySplitter(path, max_bytes, MAX_JSON_DEPTH)
    while not splitter.closed and (chunk := f.read(_CHUNK)):
        splitter.feed(chunk)
        yield from splitter.pending
        splitter.pending.clear()
    if not splitter.closed:
        splitter.broken("the file ends inside the array")
    elif not splitter.failed:
        while chunk := f.read(_CHUNK):  # only white space may follow the array
            if chunk.strip():
                splitter.broken("text after the end of the array")
                break
    yield from splitter.pending


def _json_cell(value: Any) -> Any:
    """Parquet keeps stored-form `calls` as a JSON string (its outputs vary per tool)."""
    if isinstance(value, str | bytes) and value[:1] in ("{", "[", b"{", b"["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _parquet(path: Path) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise RecordSourceError(f"{path}: not a readable parquet file: {exc}") from None
    row = 0
    for group in range(pf.num_row_groups):
        try:
            batch = pf.read_row_group(group).to_pylist()
        except (pa.ArrowException, OSError) as exc:
            count = pf.metadata.row_group(group).num_rows
            for _ in range(count):
                yield ParseFailure(f"{path} row {row}", f"unreadable row group {group}: {exc}")
                row += 1
            continue
        for record in batch:
            if "calls" in record:
                record["calls"] = _json_cell(record["calls"])
            yield record
            row += 1


#: Suffixes that say "one JSON value a line", whatever the first line holds.
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def _format(path: Path, head: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix == ".parquet" or head.startswith(b"PAR1"):
        return "parquet"
    if suffix not in JSONL_SUFFIXES and head.lstrip()[:1] == b"[":
        return "array"
    return "jsonl"


def read_records(path: str | Path, max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[Any]:
    """Yield each record (or a `ParseFailure`) of one input file, in order.

    Raises `RecordSourceError` only when the file as a whole cannot be opened.
    """
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise RecordSourceError(f"{path}: {exc.strerror or exc}") from None
    with f:
        head = f.read(64)
        kind = _format(path, head)
        if kind == "parquet":
            f.close()
            yield from _parquet(path)
            return
        f.seek(0)
        if kind == "array":
            yield from _json_array(path, f, max_record_bytes)
        else:
            yield from _jsonl(path, f, max_record_bytes)
