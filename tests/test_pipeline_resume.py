"""Kill -9 a build midway, rerun it: it completes with the same output, no finished call is
sent again, and a rerun of the finished build sends nothing (counted at the server)."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS, OfflineBackend
from safer_toolkit.cli import main
from tests.support.build_config import write_config
from tests.support.openai_server import OpenAIServer

FILES = ("sft/train-00000-of-00001.parquet", "dpo/train-00000-of-00001.parquet",
         "grpo/train-00000-of-00001.parquet", "eval/test-00000-of-00001.parquet")


def _cached(out: Path) -> int:
    path = out / ".build" / "calls.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM calls").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def _build(config: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "safer_toolkit", "build", "--config",
                             str(config), "--out", str(out), "--backend", "openai", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _digests(out: Path) -> dict[str, str]:
    return {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in FILES}


def test_kill_and_resume_resends_no_finished_call(tmp_path):
    offline = OfflineBackend()
    with OpenAIServer(latency=0.05, content=offline.answer_body,
                      models=tuple(OFFLINE_MODELS.values())) as server:
        config = write_config(tmp_path / "build.toml", base_url=server.url, sft=10, dpo=9,
                              grpo=6, eval_=4, concurrency=4)
        out = tmp_path / "dataset"
        first = _build(config, out)
        deadline = time.monotonic() + 60
        while _cached(out) < 30:
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        time.sleep(0.3)  # let requests already on the wire reach the server's counter
        cached_at_kill, sent_before = _cached(out), server.total
        assert not (out / FILES[0]).exists()  # it really died midway

        second = _build(config, out)
        assert second.wait(120) == 0, second.stderr.read().decode()
        resent = server.total - sent_before
        cached = _cached(out)
        # every request of the rerun produced a call the cache did not have at the kill
        assert resent == cached - cached_at_kill
        assert 0 < resent < cached

        third = _build(config, out)
        assert third.wait(120) == 0, third.stderr.read().decode()
        assert server.total == sent_before + resent  # a finished build sends nothing

    reference = tmp_path / "reference"
    assert main(["build", "--config", str(config), "--out", str(reference), "--quiet"]) == 0
    assert _digests(out) == _digests(reference)
