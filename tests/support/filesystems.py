"""Real file-system failures for tests: a read-only folder and a cap on file size.

Both are the operating system's own refusals, not mocks. A folder is made read-only by
permissions when the tests run unprivileged (root ignores permissions) and by remounting a
tmpfs read-only when they run as root; where neither is possible the test is skipped. A full
disk is stood in for by `RLIMIT_FSIZE` in a child process (with SIGXFSZ ignored, a write past
the cap fails with EFBIG as a write to a full disk fails with ENOSPC), which needs no
privilege anywhere.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def freezable_folder(path: Path) -> Iterator[Callable[[], None]]:
    """`path`, writable until the yielded `freeze()` makes it and everything in it read-only."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        def freeze() -> None:
            for root, dirs, files in os.walk(path):
                for name in [*dirs, *files]:
                    (Path(root) / name).chmod(0o444 if name in files else 0o555)
            path.chmod(0o555)

        try:
            yield freeze
        finally:
            for root, _dirs, files in os.walk(path):
                Path(root).chmod(0o755)
                for name in files:
                    (Path(root) / name).chmod(0o644)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode:
        pytest.skip("running as root without the right to mount a tmpfs")
    try:
        yield lambda: subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    finally:  # lazily if a file in it is still open, so no mount is ever left behind
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], check=False)


def file_size_cap(limit: int) -> Callable[[], None]:
    """A `preexec_fn`: files written by the child stop at `limit` bytes (EFBIG beyond)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply
