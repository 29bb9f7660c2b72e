"""Two builds into one `--out` (issue #13, case 2): one holds the folder for its whole length,
the other is refused naming it (pid, host); a lock left by a killed build is taken over and the
rerun still resumes from the cache."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS, OfflineBackend
from safer_toolkit.builder.lock import BuildLock, OutDirLocked
from tests.support.build_config import write_config
from tests.support.openai_server import OpenAIServer

SERVED = tuple(OFFLINE_MODELS.values())


def _build(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "safer_toolkit", "build", "--config",
                             str(config), "--out", str(out), "--backend", "openai", "--quiet",
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _holder(out: Path) -> dict:
    lock = out / ".build" / "lock"
    text = lock.read_text() if lock.exists() else ""
    return json.loads(text) if text.strip() else {}


def _cached(out: Path) -> int:
    with sqlite3.connect(f"file:{out / '.build' / 'calls.sqlite'}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM calls").fetchone()[0]


def _wait_for_holder(out: Path, process: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 60
    while not (holder := _holder(out)):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return holder


def test_builds_started_together_one_runs_the_other_is_refused(tmp_path) -> None:
    # the endpoint answers slowly until one build has been refused, so neither can finish first
    with OpenAIServer(latency=1.0, content=OfflineBackend().answer_body, models=SERVED) as server:
        config = write_config(tmp_path / "build.toml", base_url=server.url, sft=3, dpo=3,
                              grpo=2, eval_=2, concurrency=2)
        out = tmp_path / "dataset"
        builds = [_build(config, out, "--seed", "0"), _build(config, out, "--seed", "1")]
        deadline = time.monotonic() + 60
        while all(b.poll() is None for b in builds):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.latency = 0.0
        codes = [b.wait(180) for b in builds]
        errors = [b.stderr.read() for b in builds]
    assert sorted(codes) == [0, 1], errors
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert "Traceback" not in errors[loser]
    assert f"pid {builds[winner].pid} on host {socket.gethostname()}" in errors[loser]
    assert "is being written by another build" in errors[loser]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == winner  # the refused build wrote nothing over the winner's
    assert _holder(out) == {}  # released on a clean end


def test_a_killed_builds_lock_is_taken_over_and_the_rerun_resumes(tmp_path) -> None:
    with OpenAIServer(latency=0.1, content=OfflineBackend().answer_body, models=SERVED) as server:
        config = write_config(tmp_path / "build.toml", base_url=server.url, sft=3, dpo=3,
                              grpo=2, eval_=2, concurrency=2)
        out = tmp_path / "dataset"
        first = _build(config, out)
        _wait_for_holder(out, first)
        while server.total < 10:
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert _holder(out)["pid"] == first.pid  # left behind by the killed build
        time.sleep(0.3)  # let requests already on the wire reach the server's counter
        cached_at_kill, sent_before = _cached(out), server.total
        second = _build(config, out)
        assert second.wait(180) == 0
        message = second.stderr.read()
        assert f"taking over {out} from a build that no longer runs (pid {first.pid}" in message
        # resumed: the rerun sent only the calls the cache did not have at the kill
        assert cached_at_kill > 0 and server.total - sent_before == _cached(out) - cached_at_kill
    assert (out / "manifest.json").exists() and _holder(out) == {}


def test_the_lock_in_process_names_its_holder(tmp_path) -> None:
    with BuildLock(tmp_path, tmp_path / ".build") as held:
        assert held.stale is None
        try:
            with BuildLock(tmp_path, tmp_path / ".build"):
                raise AssertionError("a second lock was granted")
        except OutDirLocked as exc:
            assert exc.holder["pid"] == os.getpid()
            assert str(tmp_path) in str(exc)
    with BuildLock(tmp_path, tmp_path / ".build") as again:
        assert again.stale is None  # a clean release leaves nothing stale
