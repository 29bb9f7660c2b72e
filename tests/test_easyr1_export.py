"""The EasyR1 export of the demo release, consumed as the authors' fork consumes it.

EasyR1/verl is not installed here: `rlhf_rows` reimplements only its dataset loader's contract
(`RLHFDataset` in the authors' fork, `verl/utils/dataset.py`: how it opens `train_files` /
`val_files`, splits the prompt on `<image>`, joins image paths with `image_dir` and opens
them), minimal and written for this test. `check-export` is run through the CLI, and
`run_grpo.sh` for real, with `python3 -m verl.trainer.main` answered by a stub that records its
arguments (the only fake: the trainer's process boundary).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from safer_toolkit.builder.release.easyr1_recipe import CHAT_TEMPLATE, RUN_SCRIPT_FILE
from safer_toolkit.cli import main
from safer_toolkit.training_reference.easyr1_reward import read_target
from tests.support import release_rows as R

#: the authors' `examples/safer_toolkit.sh` as shipped (TRAIN_DATA given as the folder,
#: VAL_DATA empty, IMAGE_DIR=null, their format prompt)
AUTHORS_SCRIPT_ARGS = ["config=examples/config.yaml", "data.train_files={dir}",
                       "data.val_files=", "data.image_dir=null",
                       "data.format_prompt=./examples/format_prompt/toolkit.jinja",
                       "worker.reward.reward_function="
                       "./examples/reward_function/safer_toolkit.py:compute_score"]
#: the keys of the fork's `examples/config.yaml` that matter here (the values it ships)
FORK_CONFIG = {"data": {"train_files": "hiyouga/math12k@train",
                        "val_files": "hiyouga/math12k@test", "prompt_key": "problem",
                        "answer_key": "answer", "image_key": "images", "image_dir": None,
                        "max_prompt_length": 2048, "rollout_batch_size": 512,
                        "format_prompt": "./examples/format_prompt/math.jinja"},
               "worker": {"reward": {"reward_function":
                                     "./examples/reward_function/math.py:compute_score"}}}


def rlhf_rows(data_path: str, image_dir: str | None, *, prompt_key: str = "problem",
              answer_key: str = "answer", image_key: str = "images"
              ) -> Iterator[tuple[list[dict[str, Any]], list[Image.Image], str]]:
    """(messages, images, ground_truth) per example, as RLHFDataset builds them with no
    format prompt."""
    data_path, _, split = data_path.partition("@")
    split = split or "train"
    if os.path.isdir(data_path):  # the type of the folder's first listing entry
        file_type = os.path.splitext(os.listdir(data_path)[0])[-1][1:].replace("jsonl", "json")
        dataset = datasets.load_dataset(file_type, data_dir=data_path, split=split)
    else:
        file_type = os.path.splitext(data_path)[-1][1:].replace("jsonl", "json")
        dataset = datasets.load_dataset(file_type, data_files=data_path, split=split)
    for example in dataset:
        content: list[dict[str, Any]] = []
        for i, piece in enumerate(example[prompt_key].split("<image>")):
            if i:
                content.append({"type": "image"})
            if piece:
                content.append({"type": "text", "text": piece})
        names = example[image_key]
        if image_dir is not None and names and isinstance(names[0], str):
            names = [os.path.join(image_dir, name) for name in names]
        images = []
        for name in names:
            image = Image.open(name)
            image.load()
            images.append(image.convert("RGB") if image.mode != "RGB" else image)
        yield [{"role": "user", "content": content}], images, example[answer_key]


@pytest.fixture(scope="module")
def release() -> Path:
    return R.demo_build()


def rows_of(release: Path, config: str) -> list[dict[str, Any]]:
    return [row for shard in sorted((release / config).glob("*.parquet"))
            for row in pq.read_table(shard).to_pylist()]


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


@pytest.mark.parametrize(("file", "config"), [("train.jsonl", "grpo"), ("val.jsonl", "eval")])
def test_the_fork_loads_every_row_with_its_image(release, tmp_path, monkeypatch, file, config):
    folder = release / "easyr1"
    monkeypatch.chdir(tmp_path)  # the fork is launched from its own checkout, not from here
    loaded = list(rlhf_rows(str(folder / file), str(folder)))
    rows = rows_of(release, config)
    assert len(loaded) == len(rows) == R.DEMO_SIZES[config]
    by_id = {row["id"]: row for row in rows}
    records = [json.loads(line) for line in (folder / file).read_text().splitlines()]
    for (messages, images, truth), record in zip(loaded, records, strict=True):
        row = by_id[record["id"]]
        parts = messages[0]["content"]
        assert [p["type"] for p in parts] == ["text", "image", "text"]
        assert len(images) == len(row["images"]) == 1
        assert images[0].tobytes() == pixels(row["images"][0]["bytes"])
        target = read_target(truth)  # what the shipped reward reads as `ground_truth`
        assert target.protocol is not None and target.protocol.id == json.loads(
            row["protocol"])["id"]
        assert target.question == parts[2]["text"]


def test_without_image_dir_the_fork_cannot_open_the_images(release, tmp_path, monkeypatch):
    """The breakage `check-export` reports for `data.image_dir=null`."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError):
        next(rlhf_rows(str(release / "easyr1" / "train.jsonl"), None))


def test_the_lifted_chat_template_renders_grpo_prompts_as_the_sft_rows_render(release):
    """With `data.override_chat_template` = the shipped template, a GRPO prompt reaches the
    policy exactly as the TRL rows' system + user turns do under Qwen2.5-VL's own template."""
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    from tests.support.tiny_qwen_vl import train_tokenizer

    tokenizer = train_tokenizer(["<thinking></thinking>"], vocab_size=300)
    folder = release / "easyr1"

    def render(messages: list[dict], template: str) -> str:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=True)

    for file, config in (("train.jsonl", "grpo"), ("val.jsonl", "eval")):
        by_id = {row["id"]: row for row in rows_of(release, config)}
        ids = [json.loads(line)["id"] for line in (folder / file).read_text().splitlines()]
        for (messages, _, _), rid in zip(rlhf_rows(str(folder / file), str(folder)), ids,
                                         strict=True):
            trl_prompt = by_id[rid]["prompt"]
            expected = render(trl_prompt, qwen2_5_vl_chat_template)
            assert render(messages, CHAT_TEMPLATE) == expected
            assert expected.startswith("<|im_start|>system\n" + trl_prompt[0]["content"][0]["text"])
            # Qwen's own template puts the instruction behind its default system prompt
            assert render(messages, qwen2_5_vl_chat_template) != expected
    # any other conversation renders exactly as under Qwen's template
    others = [[{"role": "user", "content": "plain text"}],
              [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}],
              [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
               {"role": "assistant", "content": "a"}, {"role": "user", "content": "again"}]]
    for messages in others:
        assert render(messages, CHAT_TEMPLATE) == render(messages, qwen2_5_vl_chat_template)


# --- check-export --------------------------------------------------------------------------------

def check(capsys, folder: Path, *arguments: str, cwd: Path | None = None) -> tuple[int, str]:
    argv = ["check-export", *(["--cwd", str(cwd)] if cwd else []), "easyr1", str(folder)]
    code = main([*argv, "--", *arguments] if arguments else argv)
    return code, capsys.readouterr().out


@pytest.fixture()
def fork(tmp_path) -> Path:
    """A launch directory laid out like the fork's checkout (only what the checks read)."""
    import yaml

    root = tmp_path / "fork"
    (root / "examples" / "format_prompt").mkdir(parents=True)
    (root / "examples" / "reward_function").mkdir()
    (root / "examples" / "config.yaml").write_text(yaml.safe_dump(FORK_CONFIG))
    (root / "examples" / "format_prompt" / "toolkit.jinja").write_text("{{ content }}")
    (root / "examples" / "reward_function" / "safer_toolkit.py").write_text("")
    return root


def test_check_export_names_the_four_breakages_of_the_authors_script(release, capsys, fork):
    folder = release / "easyr1"
    args = [a.format(dir=folder) for a in AUTHORS_SCRIPT_ARGS]
    code, out = check(capsys, folder, *args, cwd=fork)
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert any("data.image_dir is not set" in e and "FileNotFoundError" in e for e in errors)
    assert any("data.train_files=" in e and "is a folder" in e and "IndexError" in e
               for e in errors)
    assert any("data.val_files is not set" in e for e in errors)
    assert any("data.format_prompt=" in e and "stacks a second" in e for e in errors)
    assert "not the toolkit's easyr1_reward.py" in out  # their reward: a warning, it runs


@pytest.mark.parametrize(("change", "expected"), [
    ("data.image_dir=easyr1", "not found from"),  # relative: resolved from the launch dir
    ("data.image_dir={dir}/images", "not this export's folder"),
    ("data.val_files={dir}/missing.jsonl", "no such file"),
    ("data.rollout_batch_size=256", "exceeds the 60 training records"),
    ("data.prompt_key=prompt", "the records' key is 'problem'"),
])
def test_check_export_catches_each_broken_setting(release, capsys, fork, change, expected):
    folder = release / "easyr1"
    good = recipe_args(folder)
    key = change.split("=")[0]
    args = [a for a in good if not a.startswith(key + "=")] + [change.format(dir=folder)]
    code, out = check(capsys, folder, *args, cwd=fork)
    assert code == 1 and expected in out


def recipe_args(folder: Path) -> list[str]:
    from safer_toolkit.builder.release.easyr1_recipe import overrides, reward_file

    args = ["config=examples/config.yaml",
            *overrides(str(folder.resolve()), "/models/dpo", reward_file())]
    return [a for a in args if not a.startswith("data.rollout_batch_size")] + \
        ["data.rollout_batch_size=32"]  # the demo has 60 training records


def test_check_export_passes_the_recipe_and_prints_it_for_the_folder(release, capsys, fork):
    folder = release / "easyr1"
    code, out = check(capsys, folder, *recipe_args(folder), cwd=fork)
    assert (code, [line for line in out.splitlines() if line.startswith(("error", "warn"))]) \
        == (0, [])
    # a prompt limit below the longest prompt runs, but the fork silently drops those rows
    short = [a for a in recipe_args(folder) if "max_prompt_length" not in a]
    code, out = check(capsys, folder, *short, "data.max_prompt_length=1024", cwd=fork)
    assert code == 0 and "warning: data.max_prompt_length=1024" in out
    code, out = check(capsys, release)  # the dataset folder is fine too
    assert code == 0 and "60 train.jsonl, 20 val.jsonl records, 80 images" in out
    assert f"data.image_dir={folder.resolve()}" in out
    assert "data.rollout_batch_size=32" in out  # sized to the 60 records


def test_check_export_finds_a_broken_folder(release, capsys, tmp_path):
    folder = tmp_path / "easyr1"
    shutil.copytree(release / "easyr1", folder)
    (folder / "val.jsonl").unlink()
    first = json.loads((folder / "train.jsonl").read_text().splitlines()[0])
    (folder / first["images"][0]).unlink()
    code, out = check(capsys, folder)
    assert code == 1
    assert "val.jsonl: missing" in out and f"image {first['images'][0]!r} is not under" in out


def test_run_grpo_sh_passes_the_check(release, capsys, fork, tmp_path):
    """The shipped script, run from a fork checkout: the arguments it hands the trainer (a stub
    `verl.trainer.main` records them) pass `check-export` — absolute paths, from anywhere."""
    stub = fork / "verl" / "trainer"
    stub.mkdir(parents=True)
    (fork / "verl" / "__init__.py").write_text("")
    (stub / "__init__.py").write_text("")
    record = tmp_path / "argv.json"
    (stub / "main.py").write_text(f"import json, sys\njson.dump(sys.argv[1:], "
                                  f"open({str(record)!r}, 'w'))\n")
    env = {**os.environ, "MODEL_PATH": "/models/dpo", "N_GPUS": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = release / "easyr1" / RUN_SCRIPT_FILE
    done = subprocess.run(["bash", str(script), "data.rollout_batch_size=32"], cwd=fork,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    argv = json.loads(record.read_text())
    assert argv[0] == "config=examples/config.yaml" and "trainer.n_gpus_per_node=2" in argv
    code, out = check(capsys, release / "easyr1", *argv, cwd=fork)
    assert code == 0, out
    # without MODEL_PATH it says what is missing instead of starting
    env.pop("MODEL_PATH")
    done = subprocess.run(["bash", str(script)], cwd=fork, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "MODEL_PATH" in done.stderr


def test_the_card_names_the_fork_and_gives_absolute_paths(release):
    card = (release / "README.md").read_text()
    section = card[card.index("### The authors' EasyR1 trainer"):]
    section = section[:section.index("\n## ")]
    assert "https://github.com/Duebassx/SaFeR_ToolKit" in section and "hiyouga/EasyR1" in section
    for needed in ("val.jsonl", "run_grpo.sh", "data.format_prompt=null", "check-export",
                   "data.image_dir=/ABSOLUTE/PATH/TO/DATASET/easyr1", "chat_template.jinja"):
        assert needed in section
    assert "repository root" not in section
