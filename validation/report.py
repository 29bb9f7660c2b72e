"""Run the validator over files and summarise: the per-record report and counts per code."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from safer_toolkit.validation.issues import RecordResult, issue
from safer_toolkit.validation.records import ParseFailure, read_records
from safer_toolkit.validation.validator import Validator


@dataclass
class Summary:
    """Counts over a run: records, valid/invalid, and issues per (code, severity)."""

    records: int = 0
    valid: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)

    @property
    def invalid(self) -> int:
        return self.records - self.valid

    def add(self, result: RecordResult) -> None:
        self.records += 1
        self.valid += result.valid
        for i in result.issues:
            (self.errors if i.severity == "error" else self.warnings)[i.code] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "valid": self.valid, "invalid": self.invalid,
                "errors": dict(sorted(self.errors.items())),
                "warnings": dict(sorted(self.warnings.items()))}

    def to_text(self) -> str:
        lines = [f"{self.records} records: {self.valid} valid, {self.invalid} invalid"]
        width = max((len(c) for c in (*self.errors, *self.warnings)), default=0)
        for label, counts in (("error", self.errors), ("warning", self.warnings)):
            for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {code:<{width}}  {n:>8}  {label}")
        return "\n".join(lines)


def validate_files(paths: Iterable[str | Path], validator: Validator) -> Iterator[RecordResult]:
    """Validate every record of every file, in order, with one 0-based index across files.

    Raises `RecordSourceError` when a file cannot be opened at all.
    """
    index = 0
    for path in paths:
        for record in read_records(path):
            if isinstance(record, ParseFailure):
                yield RecordResult(index, None, [issue("parse_error", f"{record.where}: "
                                                                      f"{record.message}")])
            else:
                yield validator.validate(record, index)
            index += 1


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class AtomicWriter:
    """A file that appears under its name only once it is complete."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent or ".", prefix=f".{self.path.name}.")
        self.file: IO[bytes] = os.fdopen(fd, "wb")

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            self.file.close()
            if exc_type is None:
                os.chmod(self._tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
                os.replace(self._tmp, self.path)
                return
        except BaseException:
            os.unlink(self._tmp)  # a failed close or rename leaves no temp file behind
            raise
        os.unlink(self._tmp)


class DuplicateIds:
    """Record ids seen more than once across a run.

    Ids go to a temporary SQLite table on disk (deleted on close), in batches, so memory stays
    flat whatever the number of records; an id is compared with its type (`1` is not `"1"`).
    """

    BATCH = 4096
    EXAMPLES = 5

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._batch: list[tuple[Any, int]] = []

    def add(self, result: RecordResult) -> None:
        rid = result.id
        if rid is not None:  # typed text keys: `1` is not `"1"`, and any int fits
            self._batch.append((f"i{rid}" if isinstance(rid, int) else f"s{rid}", result.index))
            if len(self._batch) >= self.BATCH:
                self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        if self._db is None:
            self._db = sqlite3.connect("")  # a private temporary file
            self._db.execute("CREATE TABLE ids (id TEXT, record INTEGER)")
        with self._db:
            self._db.executemany("INSERT INTO ids VALUES (?, ?)", self._batch)
        self._batch.clear()

    def found(self) -> dict[str, Any] | None:
        """`{"ids", "records", "examples": [{"id", "count", "first_index"}]}`, or None."""
        self._flush()
        if self._db is None:
            return None
        groups = "SELECT id, count(*) AS n, min(record) AS first FROM ids GROUP BY id HAVING n > 1"
        ids, records = self._db.execute(f"SELECT count(*), sum(n) FROM ({groups})").fetchone()
        if not ids:
            return None
        examples = self._db.execute(f"{groups} ORDER BY first LIMIT ?", (self.EXAMPLES,))
        return {"ids": ids, "records": records,
                "examples": [{"id": _shown_id(key), "count": n, "first_index": first}
                             for key, n, first in examples]}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _shown_id(key: str) -> str | int:
    value = key[1:]
    if key[0] == "i":
        return int(value)
    return value if len(value) <= 200 else value[:199] + "…"


def duplicates_text(found: dict[str, Any]) -> str:
    """One line for the summary: how many ids repeat, and the first few."""
    shown = ", ".join(f"{e['id']!r:.80} ×{e['count']:,} (first at record {e['first_index']})"
                      for e in found["examples"])
    more = "" if found["ids"] <= len(found["examples"]) else ", …"
    return (f"warning: {found['ids']:,} id(s) are shared by {found['records']:,} records: "
            f"{shown}{more}")


def write_report_line(out: IO[bytes], result: RecordResult) -> None:
    out.write(orjson.dumps(result.to_dict()))
    out.write(b"\n")
