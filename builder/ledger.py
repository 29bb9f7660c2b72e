"""The build's ledger: where every item ended up, and why.

Each item is `kept`, `rejected` (a validator code, a judge threshold) or `failed` (a call failure
tag); nothing is silently lost. Kept payloads live in an SQLite file under `.build/` rather than
in memory, so the paper preset's 19k+ items cost the process little; rejected traces and failures
are appended to JSON Lines logs beside it for inspection. The ledger is per run: a rerun rebuilds
it from the call cache, which is what makes a rerun cheap and exact.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from .storage import StorageError, writing

KEPT, REJECTED, FAILED = "kept", "rejected", "failed"


@dataclass
class Outcome:
    """Where one item ended: `status`, a short `reason` (empty when kept) and the payload."""

    split: str
    ordinal: int
    item_id: str
    status: str = KEPT
    reason: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    detail: str = ""  # what the failure log says beyond the reason


class Ledger:
    """Outcomes (SQLite), logs (JSONL) and the counters the manifest reports."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "outcomes.sqlite"
        with writing(self.path, "the build ledger"):
            state_dir.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")  # per-run state: rebuilt on every run
            self._db.execute("CREATE TABLE outcomes (split TEXT, ordinal INTEGER, item TEXT, "
                             "status TEXT, reason TEXT, payload BLOB, "
                             "PRIMARY KEY (split, ordinal))")
        self._logs: dict[str, TextIO] = {}
        for name in ("rejected", "failures"):
            with writing(state_dir / f"{name}.jsonl", "a build log"):
                self._logs[name] = (state_dir / f"{name}.jsonl").open("w", encoding="utf-8")
        self.status: Counter[tuple[str, str]] = Counter()  # (split, status)
        self.reasons: Counter[str] = Counter()  # rejected/failed reasons
        self.rejections: dict[str, Counter[str]] = {}  # stage → validator/rule code → count
        self.failures: Counter[str] = Counter()  # call failure tag → count
        self._pending = 0

    def record(self, outcome: Outcome) -> None:
        with self._writing():
            if self._pending == 0:
                self._db.execute("BEGIN")
            self._db.execute("INSERT INTO outcomes VALUES (?, ?, ?, ?, ?, ?)",
                             (outcome.split, outcome.ordinal, outcome.item_id, outcome.status,
                              outcome.reason, orjson.dumps(outcome.payload)))
        self._pending += 1
        if self._pending >= 256:
            self.flush()
        self.status[(outcome.split, outcome.status)] += 1
        if outcome.status != KEPT:
            self.reasons[outcome.reason] += 1
        if outcome.status == FAILED:
            self.failures[outcome.reason] += 1

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write names its real cause: SQLite rolls the transaction back on a full
        disk, and a later COMMIT would only say "no transaction is active"."""
        try:
            with writing(self.path, "the build ledger"):
                yield
        except StorageError:
            if self._db.in_transaction:
                self._db.rollback()
            self._pending = 0
            raise

    def flush(self) -> None:
        if self._pending:
            with self._writing():
                self._db.execute("COMMIT")
            self._pending = 0
        for name, log in self._logs.items():
            with writing(log.name, f"the {name} log"):
                log.flush()

    def reject(self, stage: str, codes: list[str], /, **logged: Any) -> None:
        """One rejected attempt at `stage`: count its codes for the manifest and, when there is
        something to log, append `{"stage": stage, **logged}` to `rejected.jsonl`."""
        self.rejections.setdefault(stage, Counter()).update(codes)
        if logged:
            self.log("rejected", {"stage": stage, **logged})

    def log(self, name: str, entry: dict[str, Any]) -> None:
        with writing(self._logs[name].name, f"the {name} log"):
            self._logs[name].write(orjson.dumps(entry).decode() + "\n")

    def kept(self, split: str, limit: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """The first `limit` kept outcomes of a split in candidate order: (ordinal, payload)."""
        self.flush()
        rows = self._db.execute("SELECT ordinal, payload FROM outcomes WHERE split = ? AND "
                                "status = ? ORDER BY ordinal LIMIT ?", (split, KEPT, limit))
        for ordinal, payload in rows:
            yield ordinal, orjson.loads(payload)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for log in self._logs.values():
                with suppress(OSError):  # flush() above already reported a failed write
                    log.close()
            self._db.close()
