"""Stream validator records from JSONL, a JSON array or parquet, one at a time.

Memory stays flat whatever the file size: JSONL is read line by line with a byte cap per line
(an oversized line is skipped without being held), JSON arrays go through `ijson`, parquet through
row batches. A record that cannot be decoded becomes a `ParseFailure` in its place, so one bad
line never sinks the rest and indexes stay aligned with the input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from safer_toolkit.validation.limits import MAX_JSON_DEPTH, MAX_RECORD_BYTES, json_depth_exceeds

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A record that could not be decoded; `where` names the file and line or row."""

    where: str
    message: str


class RecordSourceError(OSError):
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
            continue  # blank lines are not records (SPEC §4)
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield ParseFailure(f"{path}:{lineno}", f"not JSON: {exc}")


def _json_array(path: Path, f: BinaryIO) -> Iterator[Any]:
    import ijson

    index = 0
    try:
        for record in ijson.items(f, "item", use_float=True):
            if json_depth_exceeds(record, MAX_JSON_DEPTH):
                yield ParseFailure(f"{path}[{index}]", f"nests deeper than {MAX_JSON_DEPTH}")
            else:
                yield record
            index += 1
    except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError) as exc:
        # The array cannot be resynchronised after a syntax error: report it once, in place.
        yield ParseFailure(f"{path}[{index}]", f"JSON array is broken from here: {exc}")


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


def _format(path: Path, head: bytes) -> str:
    suffix = path.suffix.lower()
    if suffix == ".parquet" or head.startswith(b"PAR1"):
        return "parquet"
    if head.lstrip()[:1] == b"[":
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
            yield from _json_array(path, f)
        else:
            yield from _jsonl(path, f, max_record_bytes)
