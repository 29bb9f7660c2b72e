"""One build at a time per output folder: an exclusive lock on `DIR/.build/lock`.

Two builds into one `--out` would share its call cache, ledger and split files: started
together the second died inside SQLite, started apart the last one silently won. The lock is a
kernel `flock` held on an open file for the length of the build, so it can never outlive its
process: a build killed with `kill -9` leaves only the file, and the next build takes it over
at once (atomically — two reruns cannot both get it) and says whose it was. The file names the
holder (pid, host, start time, command) so a refused build can say who has the folder. It is
never deleted (a deleted lock file lets two processes lock two different files); a clean exit
empties it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import StateError
from .storage import writing

LOCK_FILE = "lock"


class OutDirLocked(StateError, RuntimeError):
    """Another build holds the folder; `holder` is what its lock file says (may be empty)."""

    def __init__(self, out_dir: Path, holder: dict[str, Any]) -> None:
        self.out_dir, self.holder = out_dir, holder
        who = f"{holder_text(holder)}: {holder.get('command')}" if holder else \
            "details not written yet"
        super().__init__(f"{out_dir} is being written by another build ({who}); wait for it to "
                         "finish or choose another --out")


def _read(fd: int) -> dict[str, Any]:
    data = os.pread(fd, 64 * 1024, 0)
    try:
        found = orjson.loads(data) if data.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def holder_text(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid')} on host {holder.get('host')}, started "
            f"{holder.get('started_at')}")


class BuildLock:
    """`with BuildLock(out_dir, state_dir):` — raises `OutDirLocked` when another build holds
    the folder. `stale` is what a killed build left behind (its lock taken over), else None."""

    def __init__(self, out_dir: Path, state_dir: Path) -> None:
        self.out_dir, self.path = Path(out_dir), Path(state_dir) / LOCK_FILE
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    def __enter__(self) -> BuildLock:
        with writing(self.path, "the build lock"):  # a read-only folder, a full disk
            return self._acquire()

    def _acquire(self) -> BuildLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise OutDirLocked(self.out_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.stale = _read(fd) or None  # a holder that did not empty the file was killed
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "command": " ".join(["safer-toolkit", *sys.argv[1:]])[:2000]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, orjson.dumps(me), 0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a clean end leaves nothing to take over
        except OSError:
            pass  # the lock itself still goes with the descriptor
        finally:
            os.close(self._fd)  # releases the flock
            self._fd = None
