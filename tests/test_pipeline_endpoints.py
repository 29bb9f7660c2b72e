"""`safer-toolkit build` against endpoints that cannot serve it, or serve it badly: it stops in
seconds with the server's own words, stays within its budget, draws more items when losses run
above the reserve, and releases nothing when no row survived."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS, OfflineBackend
from safer_toolkit.builder.config import load_config
from safer_toolkit.builder.pipeline import build
from safer_toolkit.cli import main
from tests.support.build_config import write_config
from tests.support.openai_server import FaultPlan, OpenAIServer

FILES = ("sft/train-00000-of-00001.parquet", "dpo/train-00000-of-00001.parquet",
         "grpo/train-00000-of-00001.parquet", "eval/test-00000-of-00001.parquet")
SMALL = {"sft": 3, "dpo": 3, "grpo": 2, "eval_": 2}
SERVED = tuple(OFFLINE_MODELS.values())


def cli(config: Path, out: Path, *extra: str) -> int:
    return main(["build", "--config", str(config), "--out", str(out), "--backend", "openai",
                 "--quiet", *extra])


def test_a_model_the_server_does_not_serve_stops_the_build_in_seconds(tmp_path, capsys):
    with OpenAIServer(content=OfflineBackend().answer_body, models=("qwen3-8b",),
                      check_model=True) as server:
        config = write_config(tmp_path / "b.toml", base_url=server.url, **SMALL)
        started = time.monotonic()
        assert cli(config, tmp_path / "out") == 1
    assert time.monotonic() - started < 20 and server.total == 0
    err = capsys.readouterr().err
    assert "model 'safer-offline-planner' is not served" in err and "qwen3-8b" in err
    assert not (tmp_path / "out" / "README.md").exists()


def test_a_key_the_server_refuses_stops_the_build_with_its_message_masked(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setenv("SAFER_TEST_KEY", "sk-wrong-0123456789abcdef")
    with OpenAIServer(content=OfflineBackend().answer_body, models=SERVED,
                      require_key="sk-right") as server:
        config = write_config(tmp_path / "b.toml", base_url=server.url, **SMALL)
        assert cli(config, tmp_path / "out", "--api-key-env", "SAFER_TEST_KEY") == 1
    err = capsys.readouterr().err
    assert "Incorrect API key provided: ***" in err and "0123456789abcdef" not in err
    assert server.total == 0


def test_an_unset_key_variable_stops_before_any_call(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SAFER_ABSENT_KEY", raising=False)
    with OpenAIServer(content=OfflineBackend().answer_body, models=SERVED) as server:
        config = write_config(tmp_path / "b.toml", base_url=server.url, **SMALL)
        assert cli(config, tmp_path / "out", "--api-key-env", "judge=SAFER_ABSENT_KEY") == 2
    err = capsys.readouterr().err
    assert "SAFER_ABSENT_KEY is not set (judge's api_key_env)" in err
    assert server.total == 0 and not (tmp_path / "out").exists()


def test_the_budget_stops_the_build_within_its_calls(tmp_path, capsys):
    with OpenAIServer(content=OfflineBackend().answer_body, models=SERVED) as server:
        config = write_config(tmp_path / "b.toml", base_url=server.url, **SMALL)
        assert cli(config, tmp_path / "out", "--max-calls", "12") == 1
    assert server.total <= 12
    out = capsys.readouterr()
    assert "stopped at the budget: 12 of --max-calls 12 requests" in out.out
    assert "budget" in out.err and "--max-calls / --max-cost" in out.err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["run"]["budget"]["exhausted"] and manifest["run"]["budget"]["calls"] == 12


def test_a_build_with_no_surviving_row_releases_nothing_and_says_why(tmp_path, capsys):
    with OpenAIServer(content=lambda body: "I am not sure what you mean.",
                      models=SERVED) as server:
        config = write_config(tmp_path / "b.toml", base_url=server.url, **SMALL)
        assert cli(config, tmp_path / "out") == 1
    out = capsys.readouterr()
    assert "NO ROWS" in out.err and "plan:plan_json" in out.err
    assert "does not enforce it" in out.out  # the preflight saw free text under json_schema
    assert "sft, dpo, grpo, eval tried as many candidates as max_draw allows" in out.out
    state = tmp_path / "out" / ".build"
    manifest = json.loads((state / "manifest.json").read_text())
    splits = manifest["counts"]["splits"]
    assert all(s["rows"] == 0 for s in splits.values())
    # drawing more stopped at max_draw (3×) the prompts each split needs
    assert [s["candidates"] for s in splits.values()] == [9, 4, 6, 6]  # dpo: its reserve
    assert manifest["yield"]["plan"]["rejected"] == 25 and server.total > 0
    assert not any((tmp_path / "out" / name).exists() for name in ("README.md", "sft"))
    assert (state / "calls.sqlite").exists()  # the state stays for a rerun


def _half_the_traces_fail(body: dict[str, Any]) -> str:
    """Offline answers, except that half the items (by image) never get a usable trace."""
    answer = OfflineBackend().answer_body(body)
    if body.get("response_format") is None:
        image = next(p["image_url"]["url"] for m in body["messages"] if m["role"] == "user"
                     and isinstance(m["content"], list) for p in m["content"]
                     if p.get("type") == "image_url")
        if hashlib.sha256(image.encode()).digest()[0] % 2:  # half the items
            return "I would rather not use the tools."
    return answer


def _digests(out: Path) -> dict[str, str]:
    return {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in FILES}


def test_losses_above_the_reserve_draw_more_items_deterministically(tmp_path):
    results = []
    with OpenAIServer(content=_half_the_traces_fail, models=SERVED) as server:
        for name, concurrency in (("wide", 8), ("narrow", 1)):
            config = load_config(write_config(tmp_path / f"{name}.toml", base_url=server.url,
                                              reserve=0.0, concurrency=concurrency,
                                              **{**SMALL, "sft": 6, "dpo": 6, "eval_": 3}))
            results.append(asyncio.run(build(config, tmp_path / name, backend="openai",
                                              progress=False)))
    for result in results:
        assert result.shortfall == {}
        assert result.run["draw_rounds"] >= 1
        assert result.manifest["counts"]["reasons"] == {
            "respond:missing_answer+missing_thinking+tag_structure+too_few_calls": 8}
    assert _digests(tmp_path / "wide") == _digests(tmp_path / "narrow")


@pytest.mark.parametrize("flags", [
    ["--base-url", "URL", "--model", "planner=safer-offline-planner"],
    ["--base-url", "planner=URL", "--base-url", "responder=URL", "--base-url", "judge=URL"],
])
def test_a_preset_runs_against_a_server_from_the_command_line(tmp_path, flags, capsys):
    with OpenAIServer(content=OfflineBackend().answer_body, models=SERVED) as server:
        flags = [f.replace("URL", server.url) for f in flags]
        assert main(["build", "--preset", "demo", "--out", str(tmp_path / "out"), "--quiet",
                     "--backend", "openai", "--max-calls", "40", *flags]) == 1
        assert 0 < server.total <= 40
    manifest = json.loads((tmp_path / "out" / ".build" / "manifest.json").read_text()
                          if not (tmp_path / "out" / "manifest.json").exists()
                          else (tmp_path / "out" / "manifest.json").read_text())
    assert {m["base_urls"][0] for m in manifest["models"]} == {server.url}


def test_a_text_only_server_is_named_and_a_text_only_role_is_served(tmp_path, capsys):
    with OpenAIServer(content=OfflineBackend().answer_body, models=SERVED,
                      text_only=True) as server:
        config_path = write_config(tmp_path / "b.toml", base_url=server.url, **SMALL)
        assert cli(config_path, tmp_path / "refused") == 1
        err = capsys.readouterr().err
        assert 'can only concatenate str (not "list") to str' in err
        assert "set models.planner.images = false" in err
        refused = server.total
        config = load_config(config_path)
        text = replace(config, planner=replace(config.planner, images=False),
                       responders=(replace(config.responders[0], images=False),),
                       judge=replace(config.judge, images=False))
        result = asyncio.run(build(text, tmp_path / "text", backend="openai", progress=False))
    assert refused <= 14 and result.rows > 0 and server.total > refused
    assert all(m["images"] is False for m in result.manifest["models"])


def test_a_text_only_role_is_asked_again_in_text(tmp_path):
    """A rejected reply's feedback turn goes as text too: llama-cpp-python's text chat template
    refuses a content-part list there as anywhere (seen with SmolLM2 behind it)."""
    with OpenAIServer(content=OfflineBackend().answer_body, models=SERVED, text_only=True,
                      faults=FaultPlan(rates={"schema_break": 0.3}, seed=1)) as server:
        config = load_config(write_config(tmp_path / "b.toml", base_url=server.url, **SMALL))
        text = replace(config, planner=replace(config.planner, images=False),
                       responders=(replace(config.responders[0], images=False),),
                       judge=replace(config.judge, images=False))
        result = asyncio.run(build(text, tmp_path / "out", backend="openai", progress=False))
    reasks = sum(sum(c["reasks"].values()) for c in result.manifest["calls"].values())
    assert reasks > 0 and result.rows > 0
    assert all(c["retries"] == {} for c in result.manifest["run"]["calls"].values())
    assert "http_500" not in json.dumps(result.manifest["failures"])
