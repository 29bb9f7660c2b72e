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
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from safer_toolkit.builder.release.checks import turn_text

IMAGE_TOKEN = "<image>"
#: what a literal `<image>` inside instruction or question text becomes (EasyR1 would count it)
NEUTRAL_TOKEN = "[image]"
_COLUMNS = ["id", "images", "prompt", "protocol", "risk_category", "label"]


def _extension(image: dict[str, Any]) -> str:
    suffix = Path(image["path"] or "").suffix.lower()
    if suffix:
        return suffix
    from PIL import Image

    with Image.open(io.BytesIO(image["bytes"])) as opened:
        return "." + (opened.format or "bin").lower()


def _record(row: dict[str, Any], image_names: list[str]) -> tuple[dict[str, Any], int]:
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


def write_easyr1(grpo_files: Iterable[Path], dest: Path, *, batch_rows: int = 64) -> dict[str, int]:
    """Write `dest/train.jsonl` and `dest/images/` from the GRPO parquet shards, streaming."""
    (dest / "images").mkdir(parents=True, exist_ok=True)
    rows = images = neutralised = 0
    with (dest / "train.jsonl").open("w", encoding="utf-8", newline="\n") as out:
        for path in grpo_files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows,
                                                           columns=_COLUMNS):
                for row in batch.to_pylist():
                    names = []
                    for image in row["images"]:
                        digest = hashlib.sha256(image["bytes"]).hexdigest()
                        # 256 sub-folders keep each folder far below the Hub's 10k entries
                        name = f"images/{digest[:2]}/{digest}{_extension(image)}"
                        target = dest / name
                        if not target.exists():
                            target.parent.mkdir(exist_ok=True)
                            target.write_bytes(image["bytes"])
                            images += 1
                        names.append(name)
                    record, count = _record(row, names)
                    neutralised += count
                    out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                    out.write("\n")
                    rows += 1
    return {"rows": rows, "images": images, "neutralised_image_tokens": neutralised}
