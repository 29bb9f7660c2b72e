"""SFT → DPO → GRPO through `safer-toolkit train`, on rows the builder's demo preset produces.

The model is a tiny random Qwen2.5-VL built here (tokenizer trained in-process on the demo's
texts, nothing downloaded), warm-started on the demo's SFT conversations so that GRPO's sampled
completions earn different rewards. Each stage runs 2 steps from the shipped 3B config (with
CPU-sized overrides) and loads the previous stage's output; the GRPO judge is a loopback
OpenAI-compatible server.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import orjson
import pytest
from safetensors.torch import load_file

from safer_toolkit.cli import main
from safer_toolkit.training_reference.judge import TEMPLATE_VERSION
from safer_toolkit.training_reference.stage import PROVENANCE_FILE
from safer_toolkit.validation import Call, Trace, library_tools, parse_text, to_text
from tests.support import tiny_qwen_vl
from tests.support.openai_server import OpenAIServer

WARM_STEPS = 200
CPU = ["bf16=false", "dtype=float32", "activation_checkpointing=false", "warmup_steps=0",
       "max_steps=2", "logging_steps=1", "save_strategy=\"no\"", "gradient_accumulation_steps=1",
       "min_pixels=784", "max_pixels=3136", "trl.use_cpu=true"]
STAGE = {
    "sft": ["per_device_train_batch_size=2"],
    "dpo": ["per_device_train_batch_size=2"],
    "grpo": ["per_device_train_batch_size=8", "num_generations=4",
             "max_completion_length=128", "rewards.protocol=0.5"],
}


def _brief(value: object) -> object:
    if isinstance(value, str):
        return value[:24]
    if isinstance(value, list):
        return [_brief(v) for v in value[:2]]
    if isinstance(value, dict):
        return {k: _brief(v) for k, v in value.items()}
    return value


def warm_conversation(messages: list[dict], calls: int) -> list[dict[str, str]]:
    """A text-only SFT conversation whose trace keeps its first `calls` calls, with brief
    strings, and a short answer: enough for the tiny model to learn the format, short enough
    for it to finish a completion within a CPU-sized budget."""
    turns = [{"role": m["role"],
              "content": "".join(p["text"] or "" for p in m["content"] if p["type"] == "text")}
             for m in messages]
    trace = parse_text(turns[-1]["content"]).trace
    brief = [Call(c.tool, _brief(c.output)) for c in trace.calls[:calls]]
    turns[-1]["content"] = to_text(Trace(brief, trace.answer.split(".")[0][:40]))
    return turns


def judge_scores(body: dict) -> str:
    """A deterministic judge: 1–10 scores from a hash of the graded response."""
    text = next(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")
    digest = hashlib.sha256(text.encode()).digest()
    ts, sf, hp, tq = (1 + b % 10 for b in digest[:4])
    return orjson.dumps({"ts": ts, "sf": sf, "hp": hp, "tq": tq, "rationale": "loopback"}
                        ).decode()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "dataset"
    assert main(["build", "--preset", "demo", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def tiny(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, its tokenizer trained on the demo's texts, warm-started on its SFT rows."""
    import datasets

    texts, warm = [], []
    for config in ("sft", "dpo", "grpo"):
        for row in datasets.load_dataset(str(demo), config, split="train"):
            for column in ("messages", "prompt", "chosen", "rejected"):
                for message in row.get(column) or []:
                    texts += [p["text"] for p in message["content"] if p["text"]]
            if config == "sft":
                warm.append(warm_conversation(row["messages"], 1 + len(warm) % 4))
    # The block tags and tool tags as whole tokens: the tiny model learns the format sooner.
    whole = ["<thinking>", "</thinking>", "<answer>", "</answer>",
             *(f"[{name}]:" for name in library_tools())]
    return tiny_qwen_vl.build(tmp_path_factory.mktemp("tiny") / "model", texts, whole=whole,
                              warm=warm, warm_steps=WARM_STEPS)


def weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


def changed(before: dict, after: dict, prefix: str) -> list[str]:
    names = [k for k in before if k.startswith(prefix)]
    assert names, f"no {prefix} weights"
    return [k for k in names if not before[k].equal(after[k])]


def test_sft_dpo_grpo_chain_on_demo_rows(demo: Path, tiny: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    runs = tmp_path / "runs"
    common = [f"dataset={demo}", f"output_root={runs}", *CPU]
    previous = tiny
    with OpenAIServer(content=judge_scores, models=("loopback-judge",)) as judge:
        for stage in ("sft", "dpo", "grpo"):
            extra = [f"model={tiny}"] if stage == "sft" else []
            if stage == "grpo":
                extra += [f'judge.base_urls=["{judge.url}"]', 'judge.model="loopback-judge"',
                          "judge.max_retries=0"]
            t0 = time.monotonic()
            assert main(["train", stage, "--config", "qwen2_5_vl_3b", *common, *STAGE[stage],
                         *extra]) == 0
            out = runs / stage
            record = json.loads((out / PROVENANCE_FILE).read_text())
            print(f"{stage}: {time.monotonic() - t0:.1f} s, losses {record['losses']}")
            assert record["input_model"] == str(previous)  # each stage starts from the last
            assert record["global_steps"] == 2 and len(record["losses"]) == 2
            assert all(math.isfinite(x) for x in record["losses"])
            before, after = weights(previous), weights(out)
            assert before.keys() == after.keys()
            assert changed(before, after, "visual."), f"{stage} left the vision tower as it was"
            assert changed(before, after, "model."), f"{stage} left the language model as it was"
            assert all(bool(v.isfinite().all()) for v in after.values())
            previous = out
        judged = judge.total
    grpo_log = [e for e in record["log_history"] if "reward_std" in e]
    for e in grpo_log:
        print("grpo step:", {k: round(v, 3) for k, v in e.items()
                             if k.startswith("reward") or k == "completions/mean_length"})
    assert any(e["reward_std"] > 0 for e in grpo_log), "GRPO saw no reward variance"
    for name in ("format_reward", "depth_reward", "semantic_reward", "protocol_reward"):
        assert all(f"rewards/{name}/mean" in e for e in grpo_log)
    assert judged > 0 and record["judge"]["calls"] == judged
    assert record["judge"]["template_version"] == TEMPLATE_VERSION
    assert record["judge"]["failures"] == {}
    print(f"chain: {time.monotonic() - started:.1f} s")


def test_lora_stage_saves_the_adapter_and_a_merged_model(demo: Path, tiny: Path,
                                                         tmp_path: Path) -> None:
    assert main(["train", "sft", "--config", "qwen2_5_vl_3b", f"dataset={demo}",
                 f"model={tiny}", f"output_root={tmp_path}", *CPU, "max_steps=1",
                 "per_device_train_batch_size=2", "learning_rate=1e-2",
                 "lora.enabled=true", "lora.r=4", "lora.alpha=8",
                 'lora.target_modules=["q_proj", "v_proj"]']) == 0
    out = tmp_path / "sft"
    assert (out / "adapter" / "adapter_config.json").is_file()
    probe = tmp_path / "probe"
    probe.touch()  # the provenance record gets a plain new file's mode, not mkstemp's 0600
    assert (out / PROVENANCE_FILE).stat().st_mode == probe.stat().st_mode
    assert not [p.name for p in out.iterdir() if p.name.startswith(f".{PROVENANCE_FILE}")]
    before, after = weights(tiny), weights(out)
    assert before.keys() == after.keys()  # merged: plain weights, no lora_A/lora_B left
    moved = set(changed(before, after, "model."))
    assert moved and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in moved)


def test_grpo_trains_from_the_easyr1_export(demo: Path, tiny: Path, tmp_path: Path) -> None:
    assert main(["train", "grpo", "--config", "qwen2_5_vl_3b", "dataset_format=\"easyr1\"",
                 f"dataset={demo / 'easyr1'}", f"model={tiny}", f"output_root={tmp_path}",
                 *CPU, "max_steps=1", "per_device_train_batch_size=4", "num_generations=4",
                 "max_completion_length=32", "rewards.semantic=0", "rewards.protocol=0.5"]) == 0
    record = json.loads((tmp_path / "grpo" / PROVENANCE_FILE).read_text())
    assert record["rows"] == 60 and record["global_steps"] == 1
    assert all(math.isfinite(x) for x in record["losses"])
    assert "rewards/protocol_reward/mean" in record["log_history"][0]
