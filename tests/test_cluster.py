"""`build --ray` on a local Ray cluster this module starts (2 CPUs) and stops by its own pid.

A demo build through `safer-toolkit serve` on two shards writes the one-process build's bytes;
a shard worker killed mid-build is restarted and repeats at most the calls it had in flight,
the driver killed with `kill -9` is resumed by a rerun, and a finished build reruns with no
call; the endpoint's concurrency is one bound across the shards (the loopback server counts
its peak in flight). Without `--ray` nothing imports Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS, OfflineBackend
from safer_toolkit.cli import main
from tests.support.build_config import write_config
from tests.support.openai_server import OpenAIServer
from tests.support.ray_cluster import RAY_ENV, ray_cluster

ENV = {**os.environ, **RAY_ENV, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
BOUND = 3


@pytest.fixture(scope="module")
def address():
    with ray_cluster(cpus=2) as found:
        yield found


def _command(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "safer_toolkit", "build", "--out", str(out), "--quiet", *args]


def _release(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != ".build"}


def _same_release(a: Path, b: Path) -> None:
    fa, fb = _release(a), _release(b)
    assert fa.keys() == fb.keys()
    assert [n for n in fa if n != "manifest.json" and fa[n] != fb[n]] == []
    ma, mb = (json.loads(f["manifest.json"]) for f in (fa, fb))
    assert {k: v for k, v in ma.items() if k != "run"} == \
        {k: v for k, v in mb.items() if k != "run"}


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_a_ray_demo_build_through_serve_writes_the_one_process_bytes(address, tmp_path):
    serve = subprocess.Popen([sys.executable, "-m", "safer_toolkit", "serve", "--port", "0"],
                             stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        url = serve.stdout.readline().split()[-1]
        args = ("--preset", "demo", "--backend", "openai", "--base-url", url)
        one = subprocess.run(_command(tmp_path / "one", *args), env=ENV, capture_output=True,
                             text=True, timeout=300)
        assert one.returncode == 0, one.stderr[-2000:]
        ray = subprocess.run(_command(tmp_path / "ray", *args, "--ray", address,
                                      "--ray-shards", "2"),
                             env=ENV, capture_output=True, text=True, timeout=300)
        assert ray.returncode == 0, ray.stderr[-2000:]
    finally:
        serve.terminate()
        serve.wait(10)
    _same_release(tmp_path / "one", tmp_path / "ray")
    cluster = _manifest(tmp_path / "ray")["run"]["cluster"]
    tried = sum(s["candidates"] for s in _manifest(tmp_path / "ray")["counts"]["splits"]
                .values())
    assert sum(n["items"] for n in cluster["nodes"].values()) == tried == 202
    assert sum(n["shards"] for n in cluster["nodes"].values()) == 2
    assert sum(n["items"] for n in cluster["intake"].values()) > 202
    assert "demo" in ray.stdout and "sent" in ray.stdout  # the summary, as a one-process build


def _wait(predicate, build: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert build.poll() is None, build.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _repeated(server: OpenAIServer) -> int:
    """Answers the server finished more than once for the same request."""
    return sum(n - 1 for n in server.finished.values() if n > 1)


@contextlib.contextmanager
def _served_config(tmp_path: Path, latency: float, concurrency: int, **sizes: int):
    """A loopback server answering as the offline models, and a build config pointing at it."""
    offline = OfflineBackend()
    with OpenAIServer(latency=latency, content=offline.answer_body,
                      models=tuple(OFFLINE_MODELS.values())) as server:
        yield server, write_config(tmp_path / "build.toml", base_url=server.url,
                                   concurrency=concurrency, **sizes)


def test_killed_workers_and_driver_repeat_only_calls_in_flight(address, tmp_path):
    out = tmp_path / "dataset"
    with _served_config(tmp_path, 0.05, BOUND, sft=10, dpo=9, grpo=6, eval_=4) as (server,
                                                                                   config):
        command = _command(out, "--config", str(config), "--backend", "openai", "--ray",
                           address, "--ray-shards", "2")
        first = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        try:
            _wait(lambda: server.total >= 20, first)
            shard = out / ".build" / "shards" / "shard-0.json"
            killed = json.loads(shard.read_text())["pid"]
            os.kill(killed, signal.SIGKILL)  # a worker, mid-shard
            at_kill = server.total
            _wait(lambda: server.total >= at_kill + 20, first)
            assert json.loads(shard.read_text())["pid"] != killed  # Ray restarted it
            assert _repeated(server) <= BOUND
            os.kill(first.pid, signal.SIGKILL)  # the driver
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
        assert not (out / "manifest.json").exists()  # it really died midway

        second = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-2000:]
        assert _repeated(server) <= 2 * BOUND  # each kill repeats at most what was in flight
        assert server.max_in_flight <= BOUND  # one bound for both shards
        cluster = _manifest(out)["run"]["cluster"]
        assert cluster["calls_absorbed"] > 0 and cluster["gate"]["peak_in_flight"] == {
            "planner+responder[0]+judge": BOUND}

        sent = server.total
        third = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        assert third.returncode == 0, third.stderr[-2000:]
        assert server.total == sent  # a finished build sends nothing
        assert _manifest(out)["run"]["sent"] == 0

    reference = tmp_path / "reference"
    assert main(["build", "--config", str(config), "--out", str(reference), "--quiet"]) == 0
    for split in ("sft", "dpo", "grpo", "eval"):
        assert sorted(p.read_bytes() for p in (out / split).glob("*.parquet")) == \
            sorted(p.read_bytes() for p in (reference / split).glob("*.parquet"))


def test_max_calls_counts_every_shards_requests(address, tmp_path):
    out = tmp_path / "dataset"
    with _served_config(tmp_path, 0.02, 4, sft=6, dpo=6, grpo=4, eval_=4) as (server, config):
        build = subprocess.run(_command(out, "--config", str(config), "--backend", "openai",
                                        "--ray", address, "--ray-shards", "2",
                                        "--max-calls", "20"),
                               env=ENV, capture_output=True, text=True, timeout=300)
        assert build.returncode == 1, build.stderr[-2000:]  # short of rows: the budget
        assert server.total == 20  # preflight included, across both shards
    found = out / "manifest.json"
    manifest = json.loads((found if found.exists() else out / ".build" / "manifest.json")
                          .read_text())
    assert manifest["run"]["budget"]["calls"] == 20
    assert "stopped at the budget: 20 of --max-calls 20" in build.stdout


def test_without_ray_nothing_imports_ray(tmp_path):
    config = write_config(tmp_path / "build.toml", sft=2, dpo=3, grpo=2, eval_=2)
    code = ("import sys; from safer_toolkit.cli import main; "
            f"code = main(['build', '--config', {str(config)!r}, '--out', "
            f"{str(tmp_path / 'out')!r}, '--quiet']); "
            "print(code, sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    found = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True,
                           text=True, timeout=120)
    assert found.stdout.split()[-2:] == ["0", "[]"], found.stderr[-2000:]


def test_item_tallies_merge_by_kind():
    """What an item's `Build` counted (counters, dicts of them, numbers, dataclasses) adds up on
    the driver; a kind it cannot add is an error, never a dropped figure."""
    from collections import Counter
    from dataclasses import dataclass, field

    from safer_toolkit.builder.cluster.items import merge_tally

    @dataclass
    class Tally:
        scores: dict = field(default_factory=lambda: {"safety": Counter()})
        judged: int = 0

    total = Tally()
    for _ in range(2):
        total = merge_tally(total, Tally({"safety": Counter({4: 1, 5: 2})}, 3))
    assert total == Tally({"safety": Counter({4: 2, 5: 4})}, 6)
    yields = {"plan": Counter(first_try=1)}
    assert merge_tally(yields, {"plan": Counter(re_asked=1)}) == {
        "plan": Counter(first_try=1, re_asked=1)}
    with pytest.raises(TypeError):
        merge_tally(object(), object())
