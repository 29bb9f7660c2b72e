"""What consumers do with a release: TRL's data path, the validator, EasyR1, leak checks.

Every check runs on two releases: rows made here in the contract's format, and the real
`safer-toolkit build --preset demo`. Rows are read back with `datasets.load_dataset` from the
folder (offline), exactly as a user gets them; TRL runs its own data utilities and collators
on them with a real Qwen2.5-VL processor (tokenizer trained here, nothing downloaded).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import pytest

from safer_toolkit.builder.release.export import write_dataset
from safer_toolkit.builder.release.features import PERTURBATIONS, SPLITS
from safer_toolkit.builder.stages.dedup import normalise_question
from safer_toolkit.validation import Validator, turn_text
from tests.support import release_rows as R

#: the columns TRL's DPOTrainer keeps for a vision dataset (`_set_signature_columns_if_needed`)
DPO_VISION_COLUMNS = ("prompt", "chosen", "rejected", "image", "images")


@pytest.fixture(scope="module", params=["rows", "demo"])
def release(request, tmp_path_factory) -> Path:
    """Rows made here in the contract's format, and the real `build --preset demo`."""
    if request.param == "demo":
        return R.demo_build()
    out = tmp_path_factory.mktemp("consumers")
    write_dataset(out, R.rows(), manifest=R.manifest())
    return out


@pytest.fixture(scope="module")
def loaded(release, tmp_path_factory) -> dict[str, datasets.Dataset]:
    cache = str(tmp_path_factory.mktemp("hf-cache"))
    loaded = {c: datasets.load_dataset(str(release), c, split=s, cache_dir=cache)
              for c, s in SPLITS.items()}
    assert {c: d.num_rows for c, d in loaded.items()} == R.DEMO_SIZES  # the demo preset's too
    return loaded


@pytest.fixture(scope="module")
def processor():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from safer_toolkit.training_reference.processing import ImageOnlyQwen2_5_VLProcessor
    from tests.support.tiny_qwen_vl import train_tokenizer

    tokenizer = train_tokenizer(["<thinking>[VISUAL-SCAN]: {} </thinking><answer>ok</answer>"])
    images = Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2,
                                      min_pixels=28 * 28, max_pixels=56 * 56)
    return ImageOnlyQwen2_5_VLProcessor(image_processor=images, tokenizer=tokenizer,
                                        chat_template=tokenizer.chat_template)


def _image_tokens(processor, input_ids) -> list[int]:
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    rows = input_ids.tolist() if hasattr(input_ids, "tolist") else input_ids
    return [sum(1 for t in ids if t == pad) for ids in rows]


def _expected_tokens(grid) -> list[int]:
    return [int(t * h * w) // 4 for t, h, w in grid.tolist()]  # merge_size 2 → 4 patches a token


def test_every_config_is_conversational_and_prepares_with_its_images(loaded):
    from trl.data_utils import is_conversational, prepare_multimodal_messages

    for config, dataset in loaded.items():
        for row in dataset.select(range(3)):
            assert is_conversational(row), config
            column = "messages" if config == "sft" else "prompt"
            prepared = prepare_multimodal_messages(row[column], images=row["images"])
            filled = [p for m in prepared for p in m["content"] if p["type"] == "image"]
            assert [p["image"] for p in filled] == row["images"]


def test_sft_rows_with_every_column_through_trls_vision_collator(loaded, processor):
    """What `remove_unused_columns=False` hands the collator: the whole row, `label` included.
    SFT's vision collator renders `messages` with the processor's own chat template and never
    looks at `label`, so the SFT config keeps its column."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    rows = [dict(r) for r in loaded["sft"].select(range(3))]
    assert rows[0]["label"] in ("harmful", "benign")
    batch = DataCollatorForVisionLanguageModeling(processor=processor)(rows)
    assert batch["input_ids"].shape[0] == 3 and batch["labels"].shape == batch["input_ids"].shape
    assert _image_tokens(processor, batch["input_ids"]) == \
        _expected_tokens(batch["image_grid_thw"])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert "<thinking>" in text and "[VISUAL-SCAN]:" in text


def test_dpo_rows_through_trls_vision_preference_collator(loaded, processor):
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    rows = [{k: r[k] for k in DPO_VISION_COLUMNS if k in r} for r in loaded["dpo"].select(range(3))]
    batch = DataCollatorForVisionPreference(processor=processor)(rows)
    assert batch["input_ids"].shape[0] == 6  # chosen and rejected of each pair
    assert batch["completion_mask"].sum() > 0
    assert _image_tokens(processor, batch["input_ids"]) == \
        _expected_tokens(batch["image_grid_thw"])


def test_dpo_rows_with_every_column_through_trls_vision_preference_collator(loaded, processor):
    """The whole DPO row, as `remove_unused_columns=False` delivers it: no `label` column, so
    TRL's chat-template helper sees a plain preference row and the collator takes it."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    rows = [dict(r) for r in loaded["dpo"].select(range(3))]
    assert "label" not in rows[0] and json.loads(rows[0]["protocol"])["label"]
    assert {"perturbation", "rejected_codes", "protocol", "risk_category"} <= set(rows[0])
    batch = DataCollatorForVisionPreference(processor=processor)(rows)
    assert batch["input_ids"].shape[0] == 6
    assert _image_tokens(processor, batch["input_ids"]) == \
        _expected_tokens(batch["image_grid_thw"])


def test_a_label_key_is_what_trl_refuses_in_a_preference_row(loaded, processor):
    """Why `dpo` has no `label`: TRL takes {prompt, chosen, rejected, label} for a malformed
    KTO row. If TRL ever accepts it, this test says the column could come back."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    row = dict(loaded["dpo"][0])
    row["label"] = json.loads(row["protocol"])["label"]
    with pytest.raises(KeyError, match="label"):
        DataCollatorForVisionPreference(processor=processor)([row])


@pytest.mark.parametrize("config", ["grpo", "eval"])
def test_prompt_rows_through_the_chat_template_as_grpo_renders_them(loaded, processor, config):
    from trl.data_utils import prepare_multimodal_messages

    rows = loaded[config].select(range(3))
    prompts = [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]
    out = processor.apply_chat_template(conversation=prompts, add_generation_prompt=True,
                                        tokenize=True, return_dict=True)
    assert _image_tokens(processor, out["input_ids"]) == \
        _expected_tokens(out["image_grid_thw"])
    assert processor.tokenizer.decode(out["input_ids"][0]).endswith("<|im_start|>assistant\n")


def test_sft_and_chosen_traces_validate_strictly_and_rejected_sides_fail(loaded):
    validator = Validator(mode="strict")
    for row in loaded["sft"]:
        result = validator.validate({"protocol": row["protocol"],
                                     "response": turn_text(row["messages"])})
        assert result.valid, (row["id"], [i.code for i in result.issues])
    for row in loaded["dpo"]:
        chosen = validator.validate({"protocol": row["protocol"],
                                     "response": turn_text(row["chosen"])})
        assert chosen.valid, row["id"]
        rejected = validator.validate({"protocol": row["protocol"],
                                       "response": turn_text(row["rejected"])})
        assert not rejected.valid, row["id"]
        assert row["perturbation"] in PERTURBATIONS
        assert row["rejected_codes"]
        assert set(row["rejected_codes"]) <= {i.code for i in rejected.issues}


def test_no_image_or_normalised_question_appears_in_two_configs(release):
    import pyarrow.parquet as pq

    owners: dict[tuple[str, str], set[str]] = {}
    for config in SPLITS:
        for path in sorted((release / config).glob("*.parquet")):
            for row in pq.read_table(path).to_pylist():
                prompt = row["messages"] if config == "sft" else row["prompt"]
                keys = [("image", hashlib.sha256(i["bytes"]).hexdigest()) for i in row["images"]]
                keys.append(("question", normalise_question(turn_text(prompt, "user"))))
                for key in keys:
                    owners.setdefault(key, set()).add(config)
    assert len(owners) > 300
    assert [key for key, configs in owners.items() if len(configs) > 1] == []


def test_easyr1_export_is_what_easyr1_reads(release, loaded):
    folder = release / "easyr1"
    records = datasets.load_dataset("json", data_files=str(folder / "train.jsonl"),
                                    split="train")  # as EasyR1's RLHFDataset loads a file
    assert records.column_names == ["id", "images", "problem", "answer"]
    grpo = {r["id"]: r for r in loaded["grpo"]}
    assert sorted(records["id"]) == sorted(grpo)
    for record in records:
        row = grpo[record["id"]]
        # EasyR1 splits the prompt on <image> and puts one image part at each split
        pieces = record["problem"].split("<image>")
        assert len(pieces) - 1 == len(record["images"]) == len(row["images"])
        assert pieces[0] == turn_text(row["prompt"], "system") + "\n\n"
        assert pieces[-1] == turn_text(row["prompt"], "user")
        for name in record["images"]:
            data = (folder / name).read_bytes()  # relative to data.image_dir = easyr1/
            digest = hashlib.sha256(data).hexdigest()
            assert name == f"images/{digest[:2]}/{digest}.png"
        answer = json.loads(record["answer"])
        assert json.loads(row["protocol"]) == answer["protocol"]
        assert (answer["risk_category"], answer["label"]) == (row["risk_category"], row["label"])


def test_easyr1_export_reads_back_into_the_grpo_rows(release, loaded):
    from safer_toolkit.training_reference.easyr1 import read_easyr1

    grpo = {r["id"]: r for r in loaded["grpo"].cast_column(
        "images", datasets.List(datasets.Image(decode=False)))}
    back = list(read_easyr1(release / "easyr1"))
    assert len(back) == len(grpo)
    for row in back:
        original = grpo[row["id"]]
        assert row["prompt"] == original["prompt"]
        assert [i["bytes"] for i in row["images"]] == [i["bytes"] for i in original["images"]]
        assert json.loads(row["protocol"]) == json.loads(original["protocol"])


def test_demo_dpo_and_sft_rows_batch_in_trls_trainers_with_remove_unused_columns_false(
        tmp_path):
    """The real trainers, not just their collators: `DPOTrainer` and `SFTTrainer` on the demo
    build's rows with every column kept, one batch each from their own data loaders."""
    from transformers import AutoModelForImageTextToText
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from safer_toolkit.training_reference.processing import load_processor
    from tests.support import tiny_qwen_vl

    demo = R.demo_build()
    cache = str(tmp_path / "hf-cache")
    rows = {c: datasets.load_dataset(str(demo), c, split="train", cache_dir=cache).select(range(4))
            for c in ("sft", "dpo")}
    folder = tiny_qwen_vl.build(tmp_path / "model",
                                [turn_text(r["messages"]) for r in rows["sft"]])
    common = {"bf16": False, "use_cpu": True, "max_length": None, "report_to": "none",
              "activation_checkpointing": False,
              "per_device_train_batch_size": 2, "remove_unused_columns": False}
    for config, trainer_class, args_class in (("dpo", DPOTrainer, DPOConfig),
                                              ("sft", SFTTrainer, SFTConfig)):
        model = AutoModelForImageTextToText.from_pretrained(folder)
        trainer = trainer_class(model=model, train_dataset=rows[config],
                                processing_class=load_processor(str(folder)),
                                args=args_class(output_dir=str(tmp_path / config), **common))
        assert ("label" in trainer.train_dataset.column_names) == (config == "sft")
        batch = next(iter(trainer.get_train_dataloader()))
        assert batch["input_ids"].shape[0] == (4 if config == "dpo" else 2), config
        assert batch["pixel_values"].shape[0] > 0
