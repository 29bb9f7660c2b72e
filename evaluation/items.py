"""The `eval` config as items to evaluate: read from a built dataset folder or a Hub repository.

Rows follow the release contract (`prompt` = [system, user(image, question)], `images`,
`protocol`, `risk_category`, `label`, `expected_decision`, `id`). Images are kept as their
original encoded bytes (never decoded here: the model server and the judge read them). A row
that cannot be evaluated is kept as an item with its `problem`, so it is reported, never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

#: An image larger than this is not sent to any endpoint.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_QUESTION_CHARS = 20_000
MAX_IMAGES = 8


class DatasetError(ValueError):
    """The dataset cannot be read at all (the message names it)."""


@dataclass(frozen=True)
class EvalItem:
    """One evaluation prompt: the question, its image(s) and the reference labels."""

    id: str
    question: str
    images: tuple[tuple[bytes, str], ...]  # (encoded bytes, file name)
    protocol: str  # the row's protocol document as JSON text
    risk_category: str
    label: str
    expected_decision: str
    problem: str | None = None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _question(prompt: Any) -> str:
    if not isinstance(prompt, list):
        return ""
    user = next((m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"), None)
    content = user.get("content") if user else None
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(p["text"] for p in content if isinstance(p, Mapping)
                     and p.get("type") == "text" and isinstance(p.get("text"), str))


def _images(value: Any) -> tuple[list[tuple[bytes, str]], str | None]:
    if not isinstance(value, list) or not value:
        return [], "`images` is empty"
    if len(value) > MAX_IMAGES:
        return [], f"{len(value)} images; at most {MAX_IMAGES} are sent"
    images = []
    for i, image in enumerate(value):
        data = image.get("bytes") if isinstance(image, Mapping) else None
        if not isinstance(data, bytes) or not data:
            return [], f"`images[{i}]` has no bytes"
        if len(data) > MAX_IMAGE_BYTES:
            return [], f"`images[{i}]` is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}"
        name = Path(_text(image.get("path")) or f"image-{i}.png").name
        images.append((data, name))
    return images, None


def item_from_row(index: int, row: Mapping[str, Any]) -> EvalItem:
    """An item from one row; what is wrong with the row goes into `problem`."""
    rid = row.get("id")
    item_id = str(rid) if isinstance(rid, str | int) and str(rid) else f"row-{index}"
    question = _question(row.get("prompt"))
    images, problem = _images(row.get("images"))
    if not isinstance(rid, str | int) or not str(rid):
        problem = "the row has no `id`"
    elif not question.strip():
        problem = "the row's `prompt` has no user question"
    elif len(question) > MAX_QUESTION_CHARS:
        problem = f"the question is {len(question)} characters; the limit is {MAX_QUESTION_CHARS}"
    return EvalItem(id=item_id, question=question, images=tuple(images),
                    protocol=_text(row.get("protocol")),
                    risk_category=_text(row.get("risk_category")) or "unknown",
                    label=_text(row.get("label")) or "unknown",
                    expected_decision=_text(row.get("expected_decision")),
                    problem=None if problem is None else f"row {index}: {problem}")


def items_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[EvalItem]:
    """Items in row order; a repeated id is a problem of the later row."""
    items: list[EvalItem] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        item = item_from_row(index, row)
        if item.id in seen and item.problem is None:
            item = replace(item, id=f"{item.id}#row-{index}",
                           problem=f"row {index}: id {item.id!r} repeats an earlier row")
        seen.add(item.id)
        items.append(item)
    return items


def load_eval_items(dataset: str, config: str = "eval", split: str = "test") -> list[EvalItem]:
    """The items of `config`/`split` in `dataset` (a dataset folder or a Hub repo id).

    A folder is read from its `CONFIG/SPLIT-*.parquet` files (what `safer-toolkit build`
    writes, card or not); anything else is passed to `datasets.load_dataset` as a repo id.
    Raises `DatasetError` when nothing can be read.
    """
    import datasets
    from datasets import Image, List

    folder = Path(dataset)
    try:
        if folder.is_dir():
            files = sorted((folder / config).glob(f"{split}-*.parquet")) or \
                sorted((folder / config).glob("*.parquet"))
            if not files:
                raise DatasetError(f"{dataset}: no {config}/{split}-*.parquet files")
            data = datasets.load_dataset("parquet", data_files=[str(f) for f in files],
                                         split="train")
        else:
            data = datasets.load_dataset(dataset, config, split=split)
        if "images" in data.column_names:
            data = data.cast_column("images", List(Image(decode=False)))
    except DatasetError:
        raise
    except Exception as exc:  # datasets raises many kinds; the user needs the one line
        raise DatasetError(f"{dataset} (config {config!r}, split {split!r}): "
                           f"{type(exc).__name__}: {exc}") from None
    return items_from_rows(data)
