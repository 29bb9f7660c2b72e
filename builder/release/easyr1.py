"""The GRPO and eval splits in the authors' EasyR1 format, so their trainer consumes them.

EasyR1's `RLHFDataset` reads a JSON/JSONL file (`data.train_files=DIR/train.jsonl`,
`data.val_files=DIR/val.jsonl` — its loader needs both) with `prompt_key: problem`,
`answer_key: answer`, `image_key: images`; it splits the prompt on `<image>` and puts one image
part at each split, so the prompt carries exactly one `<image>` per image. Image paths are
relative to this folder: `data.image_dir` must be its absolute path (EasyR1 joins relative
paths with `image_dir`, and silently drops an `image_dir` it cannot find).

- `train.jsonl`: the `grpo` config's rows; `val.jsonl`: the `eval` config's rows (prompts no
  training config has, with what a reward needs; EasyR1 only monitors its reward on them).
- `problem` = the toolkit instruction rendered from the row's protocol, a blank line, then
  `<image>` and the question: EasyR1 builds a single user turn. `easyr1_recipe` ships the
  chat template that lifts that instruction into the system turn, where the SFT/DPO rows
  have it, and the command that runs the authors' fork on this folder. Leave
  `data.format_prompt` unset: the instruction is already there.
- `answer` (EasyR1 hands it to the reward as `ground_truth`) = compact JSON of what a reward
  needs: `question`, `risk_category`, `label` and the `protocol` document
  (`training_reference/easyr1_reward.py` reads it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .features import checked_turn

IMAGE_TOKEN = "<image>"
#: what a literal `<image>` inside instruction or question text becomes (EasyR1 would count it)
NEUTRAL_TOKEN = "[image]"
#: what ends the instruction in `problem` (the chat template in `easyr1_recipe` relies on it)
INSTRUCTION_END = "\n\n"
#: the files of the export; a config (the release's) → the file its rows go to
TRAIN_FILE, VAL_FILE = "train.jsonl", "val.jsonl"
FILE_OF_CONFIG = {"grpo": TRAIN_FILE, "eval": VAL_FILE}
_COLUMNS = ["id", "images", "prompt", "protocol", "risk_category", "label"]


def answer_json(row: Mapping[str, Any], question: str) -> str:
    """A row's `answer`: what the reward reads as `ground_truth` (compact JSON); a row without
    `label` (a DPO row) takes it from its protocol."""
    protocol = json.loads(row["protocol"])
    answer = {"question": question, "risk_category": row["risk_category"],
              "label": row.get("label", protocol.get("label")), "protocol": protocol}
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


def _record(row: Mapping[str, Any], image_names: list[str]) -> tuple[dict[str, Any], int]:
    instruction = checked_turn(row["prompt"], "system")
    question = checked_turn(row["prompt"], "user")
    neutralised = instruction.count(IMAGE_TOKEN) + question.count(IMAGE_TOKEN)
    instruction = instruction.replace(IMAGE_TOKEN, NEUTRAL_TOKEN)
    question = question.replace(IMAGE_TOKEN, NEUTRAL_TOKEN)
    return {
        "id": row["id"],
        "images": image_names,
        "problem": f"{instruction}{INSTRUCTION_END}{IMAGE_TOKEN * len(image_names)}{question}",
        "answer": answer_json(row, question),
    }, neutralised


class EasyR1Writer:
    """Write `dest/train.jsonl`, `dest/val.jsonl`, `dest/images/` and the recipe files
    (`easyr1_recipe`) one row at a time, fed by the export as it writes the GRPO and eval
    shards (nothing is read back); a context manager, `counts` once done."""

    def __init__(self, dest: Path) -> None:
        from .easyr1_recipe import write_recipe

        self.dest = dest
        (dest / "images").mkdir(parents=True, exist_ok=True)
        self._out = {name: (dest / name).open("w", encoding="utf-8", newline="\n")
                     for name in (TRAIN_FILE, VAL_FILE)}
        write_recipe(dest)
        self.counts = {"rows": 0, "val_rows": 0, "images": 0, "neutralised_image_tokens": 0}

    def __enter__(self) -> EasyR1Writer:
        return self

    def __exit__(self, *_: object) -> None:
        for out in self._out.values():
            out.close()

    def writer_for(self, config: str) -> Callable[[Mapping[str, Any]], None] | None:
        """What writes one row of the release's `config` here (None: not exported)."""
        file = FILE_OF_CONFIG.get(config)
        return None if file is None else lambda row: self.write(row, file)

    def write(self, row: Mapping[str, Any], file: str = TRAIN_FILE) -> None:
        names = []
        for image in row["images"]:
            digest = hashlib.sha256(image["bytes"]).hexdigest()
            # sources name every image with its format's extension (`SourceItem.image_name`)
            extension = Path(image["path"] or "").suffix.lower()
            # 256 sub-folders keep each folder far below the Hub's 10k entries
            name = f"images/{digest[:2]}/{digest}{extension}"
            target = self.dest / name
            if not target.exists():
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(image["bytes"])
                self.counts["images"] += 1
            names.append(name)
        record, neutralised = _record(row, names)
        self.counts["neutralised_image_tokens"] += neutralised
        out = self._out[file]
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        self.counts["rows" if file == TRAIN_FILE else "val_rows"] += 1


def write_easyr1(grpo_files: Iterable[Path], dest: Path, *, eval_files: Iterable[Path] = (),
                 batch_rows: int = 64) -> dict[str, int]:
    """Write the export into `dest` from GRPO (and eval) parquet shards, streaming."""
    with EasyR1Writer(dest) as writer:
        for file, paths in ((TRAIN_FILE, grpo_files), (VAL_FILE, eval_files)):
            for path in paths:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows,
                                                               columns=_COLUMNS):
                    for row in batch.to_pylist():
                        writer.write(row, file)
    return writer.counts
