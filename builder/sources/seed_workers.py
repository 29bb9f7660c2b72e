"""Drawing the seed corpus in worker processes, safely from a process that runs threads.

Not `multiprocessing`: forking a process that runs threads can leave a child stuck on a lock
another thread held at the fork (the build runs inside an event loop; tests and notebooks run
servers and kernels in threads), and its fork-server and spawn start methods re-import the
caller's `__main__` in every worker, so a script without the `if __name__ == "__main__"` guard
would run again in each. Each worker is instead a fresh `python -m` of the seed corpus module
(`WORKER_MODULE`, which calls `work`) — started by `subprocess` (fork+exec, safe with threads)
with the parent's `sys.path` — told on its command line (count, seed, its number k, the number
of workers W, the chunk size).

Worker k makes one cheap pass over the plans and draws chunks k, k + W, k + 2W, … — each
picture from its own `random.Random` seeded by (seed, index) — writing every item to stdout as
a length-prefixed pickle. The parent reads all pipes as data arrives (a worker far ahead is left
to block on its pipe) and yields the items in index order: byte-identical to a serial draw.
"""

from __future__ import annotations

import os
import pickle
import selectors
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator, Iterable
from typing import IO, Any

from ...errors import BuildError
from .base import SourceItem

#: what a worker runs (`python -m`): the seed corpus module, whose `__main__` calls `work`
#: (named, not imported: the corpus imports this module, never the other way round)
WORKER_MODULE = "safer_toolkit.builder.sources.seed"
CHUNK = 64  # consecutive items a worker draws before the next worker's turn
_FRAME = struct.Struct(">I")
_READ = 1 << 20
_AHEAD = 8 << 20  # bytes read ahead from one worker before it is left to wait
#: glibc: keep each picture's ~1 MB buffers in the heap instead of mapping and unmapping them
#: (a fresh interpreter otherwise spends ~12% of its drawing time in page faults; ignored
#: by other C libraries)
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(16 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


class WorkersFailed(BuildError, RuntimeError):
    """A worker could not start or stopped before drawing its share."""


class _Worker:
    """One worker process and the bytes read from it that are not yet items."""

    def __init__(self, args: list[str]) -> None:
        self.errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        env = {**os.environ, **_MALLOC, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self.process = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, *args],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=self.errors, env=env)
        except BaseException:
            self.errors.close()
            raise
        assert self.process.stdout is not None
        self.fd = self.process.stdout.fileno()
        self.buffer = bytearray()
        self.start = 0  # where the unread part of `buffer` begins
        self.ended = False

    @property
    def ahead(self) -> int:
        """Bytes read from the worker and not yet taken."""
        return len(self.buffer) - self.start

    def take(self) -> memoryview | None:
        """The next whole record, or None until more bytes arrive."""
        if self.ahead < _FRAME.size:
            return None
        (size,) = _FRAME.unpack_from(self.buffer, self.start)
        begin = self.start + _FRAME.size
        if len(self.buffer) < begin + size:
            return None
        self.start = begin + size
        return memoryview(self.buffer)[begin:self.start]

    def read(self) -> None:
        if self.start:  # drop what was taken before the buffer grows again
            del self.buffer[:self.start]
            self.start = 0
        data = os.read(self.fd, _READ)
        if data:
            self.buffer += data
        else:
            self.ended = True

    def failure(self) -> WorkersFailed:
        code = self.process.wait()
        self.errors.seek(0)
        lines = self.errors.read().decode("utf-8", "replace").strip().splitlines()
        return WorkersFailed(f"worker exited with status {code} before drawing its share"
                             + (f": {lines[-1]}" if lines else ""))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.errors.close()


def draw(count: int, seed: int, workers: int,
         chunk: int = CHUNK) -> Generator[SourceItem, None, None]:  # closed by the caller
    """Items 0 … count − 1 of the seed corpus, in order, drawn by `workers` processes.

    Raises `WorkersFailed` (or `OSError`) when a worker cannot start or dies; the items
    yielded before that are correct, so a caller can draw the rest itself.
    """
    pool: list[_Worker] = []
    selector = selectors.DefaultSelector()
    try:
        for k in range(workers):
            pool.append(_Worker([str(count), str(seed), str(k), str(workers), str(chunk)]))
        for index in range(count):
            worker = pool[(index // chunk) % workers]
            while (record := worker.take()) is None:
                if worker.ended:
                    raise worker.failure()
                _wait(selector, pool, worker)
            with record:
                item = pickle.loads(record)
            yield item
    finally:
        selector.close()
        for worker in pool:
            worker.stop()


def _wait(selector: selectors.BaseSelector, pool: list[_Worker], needed: _Worker) -> None:
    """Read what the workers have written, listening to those not too far ahead (and always
    to the one whose item comes next)."""
    for w in pool:
        listen = not w.ended and (w is needed or w.ahead < _AHEAD)
        if listen and w.fd not in selector.get_map():
            selector.register(w.fd, selectors.EVENT_READ, w)
        elif not listen and w.fd in selector.get_map():
            selector.unregister(w.fd)
    for key, _ in selector.select():
        key.data.read()


def work(planned: Iterable[Any], render: Callable[[Any], SourceItem], count: int, k: int,
         workers: int, chunk: int) -> None:
    """A worker's side: render its chunks of `planned` (objects with an `index`) and write each
    item to stdout, length-prefixed. Run by the seed corpus module's `__main__`."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")  # the records' own channel ...
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # ... which a stray print cannot corrupt
    frames: list[bytes] = []
    for plan in planned:
        if (plan.index // chunk) % workers == k:
            record = pickle.dumps(render(plan), protocol=pickle.HIGHEST_PROTOCOL)
            frames += (_FRAME.pack(len(record)), record)
        if frames and (plan.index % chunk == chunk - 1 or plan.index == count - 1):
            out.write(b"".join(frames))  # a chunk at a time: the parent wakes once for it
            out.flush()
            frames.clear()
    out.close()
