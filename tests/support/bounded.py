"""Run a command under a memory and CPU ceiling and report its peak memory and time.

Hostile-input tests run the code under test in a child process: a regression can then fail the
test (a `MemoryError`, a kill, a number over its bound) without taking the machine with it, and
the child's own peak resident set is what the test asserts on: its VmHWM, sampled every few
milliseconds (a high-water mark, so only growth in its last milliseconds could be missed).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

GiB = 1 << 30


@dataclass(frozen=True)
class Bounded:
    returncode: int
    stdout: str
    stderr: str
    peak_mib: float  # the child's peak resident set
    seconds: float

    def __str__(self) -> str:
        return (f"rc={self.returncode} peak={self.peak_mib:.0f} MiB in {self.seconds:.1f}s\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}")


def run_bounded(argv: list[str], *, memory: int = 2 * GiB, cpu_s: int = 60,
                timeout_s: float = 120, **popen: Any) -> Bounded:
    """Run `argv` with at most `memory` bytes of address space and `cpu_s` CPU seconds."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, preexec_fn=limits, **popen)
        peak_kib = 0
        while True:
            peak_kib = max(peak_kib, _high_water_kib(proc.pid))
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout_s:
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.005)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Bounded(proc.returncode, out.read().decode("utf-8", "replace"),
                       err.read().decode("utf-8", "replace"), peak_kib / 1024, seconds)


def _high_water_kib(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), 0 once it has exited.

    Not `ru_maxrss`: Linux carries that over `exec` from the forked copy of the parent, so a
    child of a large test process would report the parent's size.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def python(code: str, **kwargs: Any) -> Bounded:
    """`run_bounded` of `python -c code` with this interpreter."""
    return run_bounded([sys.executable, "-c", code], **kwargs)
