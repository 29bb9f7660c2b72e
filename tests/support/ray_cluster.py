"""A local Ray cluster owned by a test: `ray start --head --block` as a child process.

It listens on 127.0.0.1 only, keeps its session files in a private temporary folder, has token
authentication and usage statistics off, and is stopped by its own pid (SIGTERM ends the
processes it started) — never by a global `ray stop`, which would end other users' clusters.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: What every process that talks to the test cluster needs in its environment.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def ray_cluster(cpus: int = 2, timeout: float = 120.0) -> Iterator[str]:
    """Start a head node with `cpus` CPUs; yields its address (`127.0.0.1:PORT`)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are capped
    port = _free_port()
    ray = Path(sys.executable).with_name("ray")
    log = Path(temp) / "head.log"
    with log.open("wb") as out:
        head = subprocess.Popen(
            [str(ray), "start", "--head", "--block", f"--num-cpus={cpus}", f"--port={port}",
             "--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--temp-dir={temp}",
             "--disable-usage-stats"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **RAY_ENV},
            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not _listening(port):
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray head did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)  # its own session: only what it started
            head.wait(10)
        shutil.rmtree(temp, ignore_errors=True)
