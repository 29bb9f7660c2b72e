"""The GRPO split in the authors' EasyR1 format, so their trainer consumes it unchanged.

EasyR1's `RLHFDataset` reads a JSON/JSONL file (`data.train_files=.../easyr1/train.jsonl`) with
`prompt_key: problem`, `answer_key: answer`, `image_key: images`; it splits the prompt on
`<image>` and puts one image part at each split, so the prompt carries exactly one `<image>` per
image. Image paths are relative to this folder: set `data.image_dir` to it (EasyR1 joins
relative paths with `image_dir`; older versions open them relative to the working directory).

Choices, because EasyR1 builds a single user turn and GRPO rows have no reference answer:
- `problem` = the toolkit instruction rendered from the row's protocol, a blank line, then
  `<image>` and the question — the TRL rows' system and user turns, in the same order. Leave
  `data.format_prompt` unset: the instruction is already there.
- `answer` (EasyR1 hands it to the score function as `ground_truth`) = compact JSON of what a
  reward needs: `question`, `risk_category`, `label` and the `protocol` document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from safer_toolkit.validation import turn_text

IMAGE_TOKEN = "<image>"
#: what a literal `<image>` inside instruction or question text becomes (EasyR1 would count it)
NEUTRAL_TOKEN = "[image]"
_COLUMNS = ["id", "images", "prompt", "protocol", "risk_category", "label"]


def _record(row: Mapping[str, Any], image_names: list[str]) -> tuple[dict[str, Any], int]:
    instruction = turn_text(row["prompt"], "system")
    question = turn_text(row["prompt"], "user")
    neutralised = instruction.count(IMAGE_TOKEN) + question.count(IMAGE_TOKEN)
    instruction = instruction.replace(IMAGE_TOKEN, NEUTRAL_TOKEN)
    question = question.replace(IMAGE_TOKEN, NEUTRAL_TOKEN)
    answer = {"question": question, "risk_category": row["risk_category"],
              "label": row["label"], "protocol": json.loads(row["protocol"])}
    return {
        "id": row["id"],
        "images": image_names,
        "problem": f"{instruction}\n\n{IMAGE_TOKEN * len(image_names)}{question}",
        "answer": json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
    }, neutralised


class EasyR1Writer:
    """Write `dest/train.jsonl` and `dest/images/` one GRPO row at a time, fed by the export as
    it writes the GRPO shards (nothing is read back); a context manager, `counts` once done."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        (dest / "images").mkdir(parents=True, exist_ok=True)
        self._out = (dest / "train.jsonl").open("w", encoding="utf-8", newline="\n")
        self.counts = {"rows": 0, "images": 0, "neutralised_image_tokens": 0}

    def __enter__(self) -> EasyR1Writer:
        return self

    def __exit__(self, *_: object) -> None:
        self._out.close()

    def write(self, row: Mapping[str, Any]) -> None:
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
        self._out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        self._out.write("\n")
        self.counts["rows"] += 1


def write_easyr1(grpo_files: Iterable[Path], dest: Path, *, batch_rows: int = 64) -> dict[str, int]:
    """Write `dest/train.jsonl` and `dest/images/` from GRPO parquet shards, streaming."""
    with EasyR1Writer(dest) as writer:
        for path in grpo_files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows,
                                                           columns=_COLUMNS):
                for row in batch.to_pylist():
                    writer.write(row)
    return writer.counts
