"""Reading the authors' EasyR1 GRPO format back into TRL GRPO rows.

The writer is the release's (`safer_toolkit.builder.release.easyr1.write_easyr1`, which lays
down `DIR/easyr1/train.jsonl` + `images/`); this module is its inverse, so a folder in that
format — ours, or a third party's with the same keys — trains with `safer-toolkit train grpo`
(`dataset_format = "easyr1"`). A record is `{"id", "images": [relative paths], "problem",
"answer"}`; `problem` is `instruction`, a blank line, one `<image>` per image, then the
question; `answer` is JSON with `question`, `risk_category`, `label` and `protocol` (a foreign
`answer` that is not such JSON leaves those columns empty: the protocol reward then gives None).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..builder.release.easyr1 import IMAGE_TOKEN
from ..errors import TrainingError

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_IMAGES_PER_RECORD = 16


class RecordUnusable(TrainingError, ValueError):
    """One EasyR1 record that cannot become a training row (the message names file:line)."""


def _text(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def _image(root: Path, name: Any, where: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise RecordUnusable(f"{where}: an image entry is not a relative path")
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise RecordUnusable(f"{where}: image path {name!r} leaves {root}")
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise RecordUnusable(f"{where}: image {name!r} is {size} bytes "
                                 f"(limit {MAX_IMAGE_BYTES})")
        return {"bytes": path.read_bytes(), "path": path.name}
    except OSError as exc:
        raise RecordUnusable(f"{where}: cannot read image {name!r} ({exc.strerror})") from None


def record_to_row(record: Any, root: Path, where: str) -> dict[str, Any]:
    """One EasyR1 record → a TRL GRPO row (the dataset's `grpo` columns)."""
    if not isinstance(record, dict):
        raise RecordUnusable(f"{where}: not a JSON object")
    problem, names = record.get("problem"), record.get("images") or []
    if not isinstance(problem, str) or not isinstance(names, list):
        raise RecordUnusable(f"{where}: needs a string `problem` and a list `images`")
    if len(names) > MAX_IMAGES_PER_RECORD:
        raise RecordUnusable(f"{where}: {len(names)} images (limit {MAX_IMAGES_PER_RECORD})")
    if problem.count(IMAGE_TOKEN) != len(names):
        raise RecordUnusable(f"{where}: {problem.count(IMAGE_TOKEN)} {IMAGE_TOKEN} markers "
                             f"for {len(names)} images")
    at = problem.find(IMAGE_TOKEN)
    instruction = problem[:at].removesuffix("\n\n") if at >= 0 else ""
    question = problem[at:].replace(IMAGE_TOKEN, "") if at >= 0 else problem
    try:
        answer = json.loads(record.get("answer") or "")
    except (TypeError, json.JSONDecodeError):
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    protocol = answer.get("protocol")
    user = [{"type": "image", "text": None} for _ in names] + _text(question)
    prompt = ([{"role": "system", "content": _text(instruction)}] if instruction else []) + \
        [{"role": "user", "content": user}]
    return {
        "id": str(record.get("id", "")),
        "images": [_image(root, n, where) for n in names],
        "prompt": prompt,
        "protocol": json.dumps(protocol, ensure_ascii=False, separators=(",", ":"))
        if isinstance(protocol, dict) else None,
        "risk_category": answer.get("risk_category"),
        "label": answer.get("label"),
    }


def read_easyr1(path: str | Path, *, max_rows: int | None = None) -> Iterator[dict[str, Any]]:
    """TRL GRPO rows from an EasyR1 folder (with `train.jsonl`) or a `.jsonl` file.

    A bad record is logged with its file:line and skipped; the rest still load."""
    path = Path(path)
    file = path / "train.jsonl" if path.is_dir() else path
    root = file.parent.resolve()
    count = skipped = 0
    with file.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if max_rows is not None and count >= max_rows:
                break
            where = f"{file}:{lineno}"
            if len(raw) > MAX_LINE_BYTES:
                log.warning("%s: line longer than %d bytes; skipped", where, MAX_LINE_BYTES)
                skipped += 1
                continue
            if not raw.strip():
                continue
            try:
                yield record_to_row(json.loads(raw), root, where)
                count += 1
            except json.JSONDecodeError as exc:
                log.warning("%s: not JSON (%s); skipped", where, exc.msg)
                skipped += 1
            except RecordUnusable as exc:
                log.warning("%s; skipped", exc)
                skipped += 1
    if skipped:
        log.warning("%s: %d record(s) skipped, %d read", file, skipped, count)


def load_dataset(path: str | Path, *, max_rows: int | None = None) -> Any:
    """A `datasets.Dataset` of GRPO rows (images decoded by the `Image` feature)."""
    import datasets

    rows = list(read_easyr1(path, max_rows=max_rows))
    if not rows:
        raise ValueError(f"{path}: no usable EasyR1 records")
    part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
    features = datasets.Features({
        "id": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        "prompt": datasets.List({"role": datasets.Value("string"),
                                 "content": datasets.List(part)}),
        "protocol": datasets.Value("string"),
        "risk_category": datasets.Value("string"),
        "label": datasets.Value("string"),
    })
    return datasets.Dataset.from_list(rows, features=features)
