"""Errors writing a build's or an evaluation's own state (cache, ledger, logs), made readable.

SQLite and the file system report a full disk or a read-only folder in their own words, and
SQLite can hide the cause behind a later symptom ("cannot commit - no transaction is active"
after a write that failed). `writing(path, what)` turns any such failure into a `StorageError`
that names the file and says what to do. It is fatal by design: a build that cannot record its
work stops, with its finished calls kept, rather than marking every item failed.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StateError

_HINTS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
          errno.EACCES: "permission denied", errno.EPERM: "permission denied",
          errno.EDQUOT: "the disk quota is exceeded", errno.EFBIG: "the file is too large"}
_SQLITE_HINTS = (("disk is full", "the disk is full"), ("readonly", "the folder is read-only"),
                 ("unable to open", "it cannot be created or opened (read-only folder?)"))


class StorageError(StateError, OSError):
    """State that could not be written or opened; the message names the file and the cause."""


def describe(exc: BaseException) -> str:
    """The cause in plain words, with the library's own text after it."""
    if isinstance(exc, OSError) and exc.errno in _HINTS:
        return f"{_HINTS[exc.errno]} ({exc.strerror})"
    text = str(exc)
    hint = next((h for needle, h in _SQLITE_HINTS if needle in text), None)
    return f"{hint} ({text})" if hint else text or type(exc).__name__


@contextmanager
def writing(path: str | Path, what: str) -> Iterator[None]:
    """Run a write to `path` (`what` it holds: "the call cache"); failures become StorageError."""
    try:
        yield
    except StorageError:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"cannot write {what} {path}: {describe(exc)}") from exc
