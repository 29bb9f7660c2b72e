"""Run the validator over files and summarise: the per-record report and counts per code."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from .issues import RecordResult, issue
from .records import ParseFailure, read_records
from .validator import Validator


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
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
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


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_LONG_ID = 200


def _id_key(rid: str | int) -> str | int:
    """What an id is compared by: itself, with its type (`1` is not `"1"`); a long one by a
    readable prefix and a digest, so a key stays small whatever the id."""
    if isinstance(rid, int):
        return rid if _INT64_MIN <= rid <= _INT64_MAX else f"{rid} (integer)"
    if len(rid) <= _LONG_ID:
        return rid
    digest = hashlib.sha256(rid.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{rid[:_LONG_ID]}… (sha256 {digest})"


class DuplicateIds:
    """Record ids seen more than once across a run, in bounded memory.

    The first `IN_MEMORY` distinct ids are counted in a dict (a few tens of MB at most); past
    that, everything moves to a temporary SQLite table on disk (deleted on close) and goes on
    there in batches, so memory stays flat whatever the number of records.
    """

    IN_MEMORY = 200_000
    BATCH = 4096
    EXAMPLES = 5

    def __init__(self) -> None:
        self._first: dict[str | int, int] = {}  # key → index of its first record
        self._count: dict[str | int, int] = {}  # key → records, for keys seen more than once
        self._db: sqlite3.Connection | None = None
        self._batch: list[tuple[str | int, int]] = []

    def add(self, result: RecordResult) -> None:
        if result.id is None:
            return
        key = _id_key(result.id)
        if self._db is not None:
            self._batch.append((key, result.index))
            if len(self._batch) >= self.BATCH:
                self._flush()
        elif key in self._first:
            self._count[key] = self._count.get(key, 1) + 1
        else:
            self._first[key] = result.index
            if len(self._first) > self.IN_MEMORY:
                self._spill()

    def _spill(self) -> None:
        self._db = sqlite3.connect("")  # a private temporary file
        # no column type: an integer id and a text id never compare equal (1 is not "1")
        self._db.execute("CREATE TABLE ids (id, record INTEGER)")
        for key, first in self._first.items():
            self._batch.extend([(key, first)] * self._count.get(key, 1))
            if len(self._batch) >= self.BATCH:
                self._flush()
        self._first, self._count = {}, {}
        self._flush()

    def _flush(self) -> None:
        if self._batch and self._db is not None:
            with self._db:
                self._db.executemany("INSERT INTO ids VALUES (?, ?)", self._batch)
            self._batch.clear()

    def found(self) -> dict[str, Any] | None:
        """`{"ids", "records", "examples": [{"id", "count", "first_index"}]}`, or None."""
        if self._db is None:
            shared = sorted((self._first[k], k, n) for k, n in self._count.items())
            groups = [(k, n, first) for first, k, n in shared]
            ids, records = len(groups), sum(n for _, n, _ in groups)
            examples = groups[:self.EXAMPLES]
        else:
            self._flush()
            query = ("SELECT id, count(*) AS n, min(record) AS first FROM ids GROUP BY id "
                     "HAVING n > 1")
            ids, records = self._db.execute(f"SELECT count(*), sum(n) FROM ({query})").fetchone()
            examples = self._db.execute(f"{query} ORDER BY first LIMIT ?",
                                        (self.EXAMPLES,)).fetchall()
        if not ids:
            return None
        return {"ids": ids, "records": records,
                "examples": [{"id": k, "count": n, "first_index": first}
                             for k, n, first in examples]}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


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
