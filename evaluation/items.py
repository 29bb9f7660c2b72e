"""The `eval` config as items to evaluate: read from a built dataset folder or a Hub repository.

Rows follow the release contract (`prompt` = [system, user(image, question)], `images`,
`protocol`, `risk_category`, `label`, `expected_decision`, `id`). Images are kept as their
original encoded bytes (never decoded here: the model server and the judge read them). A row
that cannot be evaluated is kept as an item with its `problem`, so it is reported, never lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import EvaluationError

#: An image larger than this is not sent to any endpoint.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_QUESTION_CHARS = 20_000
MAX_IMAGES = 8


class DatasetError(EvaluationError, ValueError):
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


#: `SPLIT-00000-of-00001.parquet`, as `datasets` and `safer-toolkit build` name shards.
_SHARD = re.compile(r"(?P<split>[\w.]+?)-\d{5}-of-\d{5}\.parquet")
_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}")


def _split_files(folder: Path, dataset: str, config: str, split: str) -> list[Path]:
    """The parquet files of `config`/`split` in a dataset folder. A folder whose files are
    not named by split is read whole; one that names other splits but not this one is an
    error naming them (never another split read in its place)."""
    files = sorted((folder / config).glob("*.parquet"))
    if not files:
        raise DatasetError(f"{dataset}: no {config}/{split}-*.parquet files")
    named = {f: m["split"] for f in files if (m := _SHARD.fullmatch(f.name))}
    if not named:
        return files
    chosen = [f for f, name in named.items() if name == split]
    if not chosen:
        raise DatasetError(f"{dataset}: config {config!r} has no split {split!r} (it has "
                           f"{', '.join(sorted(set(named.values())))}); check --split")
    return chosen


def _check_hub_id(dataset: str) -> None:
    """A dataset argument that is not a folder must be a Hub dataset that exists and can be
    reached: say so at once, naming both, instead of retrying a download for half a minute."""
    from huggingface_hub import HfApi, constants

    if not _HUB_ID.fullmatch(dataset):
        raise DatasetError(f"{dataset}: no such dataset folder, and not a Hub dataset id "
                           "(ORG/NAME) either")
    if constants.HF_HUB_OFFLINE:
        return  # `datasets` reads its local cache (and says so when the id is not in it)
    try:
        HfApi().dataset_info(dataset, timeout=10)
    except Exception as exc:  # not found, private, or no network: one line either way
        found = getattr(getattr(exc, "response", None), "status_code", None)
        why = (f"the Hub has no dataset {dataset} you can read (HTTP {found}; a private one "
               "needs `hf auth login`)" if found else
               f"the Hub cannot be reached to look for it ({type(exc).__name__})")
        raise DatasetError(f"{dataset}: no such dataset folder, and {why}") from None


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
            data = datasets.load_dataset("parquet", split="train", data_files=[
                str(f) for f in _split_files(folder, dataset, config, split)])
        else:
            _check_hub_id(dataset)
            data = datasets.load_dataset(dataset, config, split=split)
        if "images" in data.column_names:
            data = data.cast_column("images", List(Image(decode=False)))
    except DatasetError:
        raise
    except Exception as exc:  # datasets raises many kinds; the user needs the one line
        raise DatasetError(f"{dataset} (config {config!r}, split {split!r}): "
                           f"{type(exc).__name__}: {exc}") from None
    return items_from_rows(data)
