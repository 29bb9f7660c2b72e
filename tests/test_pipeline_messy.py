"""Builds through the loopback server's messy-model mode: each way real models and servers
misbehave is read, repaired or re-asked, counted — and the released rows are byte for byte the
rows of a build whose model never misbehaved."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS, OfflineBackend
from safer_toolkit.builder.config import load_config
from safer_toolkit.builder.pipeline import BuildResult, build
from safer_toolkit.builder.stages.constrain import FORM_NAMES
from tests.support.build_config import write_config
from tests.support.openai_server import Messy, OpenAIServer

FILES = ("sft/train-00000-of-00001.parquet", "dpo/train-00000-of-00001.parquet",
         "grpo/train-00000-of-00001.parquet", "eval/test-00000-of-00001.parquet")
SMALL = {"sft": 3, "dpo": 3, "grpo": 2, "eval_": 2}
ROLES = ("planner", "responder[0]", "judge")


def digests(out: Path) -> dict[str, str]:
    return {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in FILES}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, dict[str, str]]:
    """The rows of builds whose model never misbehaves, per size."""
    found = {}
    for name, sizes in {"small": SMALL, "mixed": {"sft": 8, "dpo": 9, "grpo": 6,
                                                  "eval_": 5}}.items():
        tmp = tmp_path_factory.mktemp(f"clean-{name}")
        config = load_config(write_config(tmp / "build.toml", **sizes))
        asyncio.run(build(config, tmp / "out", progress=False))
        found[name] = digests(tmp / "out")
    return found


def messy_build(tmp_path: Path, *, messy: Messy | None = None, json_schema: str = "accept",
                sizes: dict[str, int] = SMALL) -> tuple[BuildResult, OpenAIServer]:
    with OpenAIServer(content=OfflineBackend().answer_body, messy=messy,
                      json_schema=json_schema, models=tuple(OFFLINE_MODELS.values())) as server:
        config = load_config(write_config(tmp_path / "build.toml", base_url=server.url,
                                          **sizes))
        result = asyncio.run(build(config, tmp_path / "out", backend="openai",
                                   progress=False))
    return result, server


def full(result: BuildResult) -> bool:
    return result.shortfall == {} and all(
        s["rows"] == s["target"] > 0 for s in result.manifest["counts"]["splits"].values())


def repairs(result: BuildResult, kind: str) -> dict[str, int]:
    return {role: result.manifest["calls"][role]["repairs"].get(kind, 0) for role in ROLES}


def used(result: BuildResult) -> dict[str, int]:
    return {role: result.manifest["calls"][role]["calls"] for role in ROLES}


# Every reply misbehaves the same way: each is repaired once for it, nothing is asked again.
@pytest.mark.parametrize(("mess", "kind"), [
    ("fence", "fence"), ("chatter", "chatter"), ("think", "think_block"),
    ("reasoning", "reasoning_field")])
def test_every_reply_wrapped_is_read_once_repaired(tmp_path, clean, mess, kind):
    result, server = messy_build(tmp_path, messy=Messy({mess: 1.0}))
    assert full(result) and digests(tmp_path / "out") == clean["small"]
    assert repairs(result, kind) == used(result)
    assert server.mess_counts[mess] == server.total
    manifest = result.manifest
    assert all(manifest["calls"][r]["reasks"] == {} for r in ROLES)
    for stage in ("plan", "respond", "judge"):  # every exchange valid, none on the first try
        y = manifest["yield"][stage]
        assert y["repaired"] > 0 and y["first_try"] == y["re_asked"] == y["failed"] == 0


def test_near_json_is_repaired_in_json_replies_and_trace_calls(tmp_path, clean):
    result, _ = messy_build(tmp_path, messy=Messy({"near_json": 1.0}))
    assert full(result) and digests(tmp_path / "out") == clean["small"]
    quotes, commas = repairs(result, "single_quotes"), repairs(result, "trailing_comma")
    assert {r: quotes[r] + commas[r] for r in ROLES} == used(result)
    assert sum(quotes.values()) and sum(commas.values())


def test_tool_names_in_another_case_are_matched_to_the_protocol(tmp_path, clean):
    result, _ = messy_build(tmp_path, messy=Messy({"tool_case": 1.0}))
    assert full(result) and digests(tmp_path / "out") == clean["small"]
    found, calls = repairs(result, "tool_name"), used(result)
    assert found["planner"] >= 3 * calls["planner"]  # every listed tool
    assert found["responder[0]"] >= 3 * calls["responder[0]"]  # every call of every trace
    assert found["judge"] == 0 and result.manifest["yield"]["judge"]["repaired"] == 0


def test_keys_in_another_order_and_unknown_keys_are_dropped(tmp_path, clean):
    result, _ = messy_build(tmp_path, messy=Messy({"key_order": 1.0}))
    assert full(result) and digests(tmp_path / "out") == clean["small"]
    unknown, calls = repairs(result, "unknown_key"), used(result)
    assert unknown["planner"] == calls["planner"] and unknown["judge"] == calls["judge"]
    assert unknown["responder[0]"] >= 3 * calls["responder[0]"]  # one per trace call
    assert repairs(result, "key_order")["responder[0]"] >= calls["responder[0]"]


def test_cut_replies_are_asked_again_with_more_room(tmp_path, clean):
    result, _server = messy_build(tmp_path, messy=Messy({"length": 0.5}))
    assert full(result) and digests(tmp_path / "out") == clean["small"]
    manifest = result.manifest
    cut = {r: manifest["calls"][r]["truncations"] for r in ROLES}
    assert sum(cut.values()) > 0
    assert {r: manifest["calls"][r]["reasks"].get("finish_length", 0) for r in ROLES} == cut
    assert sum(y["re_asked"] for y in manifest["yield"].values()) > 0
    assert all(y["failed"] == 0 for y in manifest["yield"].values())
    grown = [json.loads(line) for line in
             (tmp_path / "out" / ".build" / "failures.jsonl").read_text().splitlines()]
    assert grown == []  # no item lost to a cut reply


@pytest.mark.parametrize(("json_schema", "constrain", "says"), [
    ("reject_400", "json_object", "refused `json_schema` (http_400"),
    ("reject_500", "json_object", "Input should be 'text' or 'json_object'"),
    ("ignore", "none", "does not enforce it"),
])
def test_a_server_that_refuses_or_ignores_json_schema_gets_a_fallback(
        tmp_path, clean, json_schema, constrain, says):
    result, _server = messy_build(tmp_path, json_schema=json_schema)
    assert full(result) and digests(tmp_path / "out") == clean["small"]
    sent = {m["role"]: m["constrain"]["sent"] for m in result.manifest["models"]}
    form = FORM_NAMES[constrain]
    assert sent == {"planner": form, "responder[0]": "free text", "judge": form}
    enforced = {m["role"]: m["constrain"]["enforced"] for m in result.manifest["models"]}
    assert enforced == {"planner": json_schema != "ignore", "responder[0]": None,
                        "judge": json_schema != "ignore"}
    assert says in result.summary
    preflight = result.manifest["run"]["preflight"]
    # refused probes are sent once each: never retried as if the server were failing
    assert preflight["sent"] == 3 + 2 * (json_schema != "ignore")
    assert sum(c["retries"].get("http_500", 0) for c in result.manifest["run"]["calls"]
               .values()) == 0


def test_a_mixed_messy_run_at_30_percent_fills_every_split(tmp_path, clean):
    sizes = {"sft": 8, "dpo": 9, "grpo": 6, "eval_": 5}
    result, server = messy_build(tmp_path, messy=Messy.even(0.3, seed=4), sizes=sizes)
    assert full(result) and digests(tmp_path / "out") == clean["mixed"]
    assert set(server.mess_counts) == set(Messy.even(0.3).rates)
    manifest = result.manifest
    kinds = {k for r in ROLES for k in manifest["calls"][r]["repairs"]}
    assert {"fence", "chatter", "think_block", "reasoning_field", "tool_name",
            "unknown_key"} <= kinds
    assert sum(manifest["calls"][r]["truncations"] for r in ROLES) > 0
    assert result.run["sent"] <= 1.35 * sum(used(result).values())


def test_a_rerun_of_a_messy_build_sends_nothing_and_counts_the_same(tmp_path):
    messy = Messy.even(0.3, seed=5)
    first, _server = messy_build(tmp_path, messy=messy)
    again, server_again = messy_build(tmp_path, messy=messy)
    assert again.run["sent"] == 0 and server_again.total == 0

    def stable(manifest: dict[str, Any]) -> dict[str, Any]:  # the servers' ports differ
        found = {k: v for k, v in manifest.items() if k not in ("run", "release")}
        found["models"] = [{k: v for k, v in m.items() if k != "base_urls"}
                           for m in manifest["models"]]
        return found

    assert stable(again.manifest) == stable(first.manifest)
