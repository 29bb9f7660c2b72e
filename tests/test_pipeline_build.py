"""`safer-toolkit build --preset demo` end to end: sizes, strictly valid gold, caught rejected
sides, disjoint splits, provenance, and byte-identical rebuilds that send no request."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from safer_toolkit import schemas
from safer_toolkit.builder.prompts import render_toolkit_instruction, template_versions
from safer_toolkit.builder.release.export import normalise_question
from safer_toolkit.cli import main
from safer_toolkit.validation import Validator, check_text, resolve_protocol

SIZES = {"sft": 60, "dpo": 186, "grpo": 60, "eval": 20}
CONFIG_FILES = {"sft": "sft/train-00000-of-00001.parquet",
                "dpo": "dpo/train-00000-of-00001.parquet",
                "grpo": "grpo/train-00000-of-00001.parquet",
                "eval": "eval/test-00000-of-00001.parquet"}


def _rows(out: Path, config: str) -> list[dict]:
    return pq.read_table(out / CONFIG_FILES[config]).to_pylist()


def _digests(out: Path) -> dict[str, str]:
    return {c: hashlib.sha256((out / f).read_bytes()).hexdigest() for c, f in CONFIG_FILES.items()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "dataset"
    assert main(["build", "--preset", "demo", "--out", str(out), "--quiet"]) == 0
    return out


def test_demo_has_the_preset_sizes(demo):
    for config, n in SIZES.items():
        assert len(_rows(demo, config)) == n
    manifest = json.loads((demo / "manifest.json").read_text())
    for config, n in SIZES.items():
        assert manifest["counts"]["splits"][config]["rows"] == n
        assert manifest["counts"]["splits"][config]["shortfall"] == 0


def test_every_gold_trace_validates_and_every_rejected_side_is_caught(demo):
    validator = Validator(mode="strict")
    for row in _rows(demo, "sft"):
        result = validator.validate({"protocol": row["protocol"],
                                     "response": row["messages"][2]["content"][0]["text"]})
        assert result.valid, (row["id"], result.codes)
    kinds = set()
    for row in _rows(demo, "dpo"):
        protocol = resolve_protocol(json.loads(row["protocol"]))
        chosen = row["chosen"][0]["content"][0]["text"]
        rejected = row["rejected"][0]["content"][0]["text"]
        assert check_text(chosen, protocol).valid, row["id"]
        codes = sorted({i.code for i in check_text(rejected, protocol).issues
                        if i.severity == "error"})
        assert codes and codes == row["rejected_codes"], row["id"]
        if row["perturbation"] == "wrong_decision":
            assert "decision_conflict" in codes
        kinds.add(row["perturbation"])
    assert kinds == {"wrong_tool", "order_violation", "corrupted_output", "wrong_decision"}


def test_prompts_show_the_protocol_but_not_the_answer(demo):
    for config in ("sft", "dpo", "grpo", "eval"):
        for row in _rows(demo, config):
            turns = row["messages"] if config == "sft" else row["prompt"]
            doc = json.loads(row["protocol"])
            assert turns[0] == {"role": "system", "content": [
                {"type": "text", "text": render_toolkit_instruction(doc)}]}
            assert turns[1]["content"][0] == {"type": "image", "text": None}
            assert turns[1]["content"][1]["text"]  # the question, nothing else
            assert len(turns[1]["content"]) == 2
            assert doc["risk_category"] == row["risk_category"]
            # TRL reads a `label` key in a preference row as KTO's flag: dpo keeps it in protocol
            assert ("label" in row) == (config != "dpo")
            assert doc["label"] == row.get("label", doc["label"])
            assert row["planner_model"] == "safer-offline-planner"
            if config != "grpo":
                assert row["responder_model"] == "safer-offline-responder"
                assert row["judge_model"] == "safer-offline-judge"
    for row in _rows(demo, "eval"):
        expected = {"harmful": ("refuse", "redirect"),
                    "benign": ("comply", "comply_with_caution")}[row["label"]]
        assert row["expected_decision"] in expected


def test_splits_are_disjoint(demo):
    owners: dict[str, str] = {}
    for config in SIZES:
        seen_here = set()
        for row in _rows(demo, config):
            turns = row["messages"] if config == "sft" else row["prompt"]
            keys = {"i" + hashlib.sha256(row["images"][0]["bytes"]).hexdigest(),
                    "q" + normalise_question(turns[1]["content"][1]["text"])}
            for key in keys - seen_here:
                assert owners.setdefault(key, config) == config, (config, row["id"])
            seen_here |= keys


def test_manifest_records_provenance(demo):
    manifest = json.loads((demo / "manifest.json").read_text())
    assert manifest["backend"] == "offline" and "No language model" in manifest["backend_note"]
    assert manifest["prompt_templates"] == template_versions()
    assert manifest["schema_hashes"] == schemas.schema_hashes()
    assert manifest["seed"] == 0 and manifest["preset"] == "demo"
    assert [m["model"] for m in manifest["models"]] == [
        "safer-offline-planner", "safer-offline-responder", "safer-offline-judge"]
    calls = manifest["calls"]
    assert calls["planner"]["calls"] >= 200 and calls["judge"]["prompt_tokens"] > 0
    assert manifest["run"]["sent"] > 0
    accounted = manifest["counts"]["splits"]
    for config in SIZES:
        s = accounted[config]
        assert s["candidates"] == s["kept"] + s["rejected"] + s["failed"]
    assert (demo / "build.toml").read_text().startswith("seed = 0")


def test_rebuilds_are_byte_identical_and_a_finished_build_sends_nothing(demo, tmp_path):
    first = _digests(demo)
    again = tmp_path / "again"
    assert main(["build", "--preset", "demo", "--out", str(again), "--quiet"]) == 0
    assert _digests(again) == first
    assert main(["build", "--preset", "demo", "--out", str(again), "--quiet"]) == 0
    assert _digests(again) == first
    manifest = json.loads((again / "manifest.json").read_text())
    assert manifest["run"]["sent"] == 0 and manifest["run"]["cache_hits"] > 700
    stable = {k: v for k, v in manifest.items() if k not in ("run", "release")}
    previous = json.loads((demo / "manifest.json").read_text())
    assert stable == {k: v for k, v in previous.items() if k not in ("run", "release")}


def test_bad_usage_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["build", "--preset", "demo", "--out", str(tmp_path), "--base-url",
                 "http://127.0.0.1:1/v1"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = 0\n[sizes]\nsft = 1\ndpo = 3\ngrpo = 1\neval = 1\nsfx = 2\n")
    assert main(["build", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"safer-toolkit build: {bad}: sizes: unknown key(s) sfx")


def test_provenance_names_the_models_that_answered_not_the_configured_ones(tmp_path):
    """An offline build of a config naming model-endpoint models (as examples/build.toml does):
    rows, manifest and card name the offline models that answered, keep the configured names
    beside them, and cost nothing."""
    import tomllib

    import tomli_w

    from tests.support.build_config import write_config

    path = write_config(tmp_path / "build.toml", sft=4, dpo=3, grpo=2, eval_=2)
    data = tomllib.loads(path.read_text())
    configured = {"planner": "Qwen/Qwen2.5-VL-72B-Instruct",
                  "responders": "Qwen/Qwen2.5-VL-7B-Instruct", "judge": "gpt-4o-mini"}
    for role, name in configured.items():
        for m in data["models"][role] if role == "responders" else [data["models"][role]]:
            m.update(model=name, price_in=2.5, price_out=10.0)
    path.write_text(tomli_w.dumps(data))
    out = tmp_path / "out"
    assert main(["build", "--config", str(path), "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    roles = {m["role"]: m for m in manifest["models"]}
    assert roles["planner"]["model"] == "safer-offline-planner"
    assert roles["planner"]["configured_model"] == "Qwen/Qwen2.5-VL-72B-Instruct"
    assert roles["judge"]["answered_by"] == {"safer-offline-judge": manifest["calls"]["judge"][
        "calls"]}
    assert all(c["cost_usd"] == 0.0 for c in manifest["calls"].values())
    assert manifest["generator"] == "offline"
    for row in _rows(out, "sft"):
        assert (row["planner_model"], row["responder_model"], row["judge_model"]) == (
            "safer-offline-planner", "safer-offline-responder", "safer-offline-judge")
    card = (out / "README.md").read_text()
    assert "language models" not in card and "`Qwen/Qwen2.5-VL-72B-Instruct`" in card
