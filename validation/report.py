"""Run the validator over files and summarise: the per-record report and counts per code."""

from __future__ import annotations

import os
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
        self.file.close()
        if exc_type is None:
            os.chmod(self._tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
            os.replace(self._tmp, self.path)
        else:
            os.unlink(self._tmp)


def write_report_line(out: IO[bytes], result: RecordResult) -> None:
    out.write(orjson.dumps(result.to_dict()))
    out.write(b"\n")
