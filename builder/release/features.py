"""The release's columns: one `datasets.Features` per config, and the row check behind them.

The features are the single source of truth: the parquet schema is `features.arrow_schema` (so
the files carry the `huggingface` schema metadata and `load_dataset` restores `Image` columns),
and the card's `dataset_info` is written from the same objects. Message content parts share one
struct (`type`, `text`) so Arrow has one type for text and image parts, as TRL's vision formats
expect (`{"type": "image"}` placeholders, images in the `images` column).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datasets import Features, Image, List, Value

from ...validation import turn_text
from ..stages.perturb import PERTURBATIONS  # the kinds DPO rows may carry

#: config name → split name, in release order (`sft` is the default config).
SPLITS: dict[str, str] = {"sft": "train", "dpo": "train", "grpo": "train", "eval": "test"}
DEFAULT_CONFIG = "sft"

_STRING = Value("string")
MESSAGES = List({"role": _STRING, "content": List({"type": _STRING, "text": _STRING})})

_HEAD = {"id": _STRING, "images": List(Image())}
_TAIL = {
    "protocol": _STRING,
    "risk_category": _STRING,
    "label": _STRING,  # not in `dpo` (see `features`)
    "source_dataset": _STRING,
    "source_id": _STRING,
    "source_license": _STRING,
    "source_group": _STRING,  # the item's family (goal / question template); eval shares none
    "planner_model": _STRING,
    "responder_model": _STRING,
    "judge_model": _STRING,
}
_MIDDLE: dict[str, dict[str, Any]] = {
    "sft": {"messages": MESSAGES},
    "dpo": {"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES,
            "perturbation": _STRING, "rejected_codes": List(_STRING)},
    "grpo": {"prompt": MESSAGES},
    "eval": {"prompt": MESSAGES, "expected_decision": _STRING},
}
#: common columns a config leaves out. TRL reads a `label` key as KTO's unpaired-preference flag:
#: its chat-template helper refuses {prompt, chosen, rejected, label}, so a DPO row that kept one
#: would break TRL's vision DPO collator whenever `remove_unused_columns=False`. A DPO row's label
#: is in its `protocol`.
_DROPPED: dict[str, tuple[str, ...]] = {"dpo": ("label",)}
#: message columns of each config and the roles each must hold, in order.
TURNS: dict[str, dict[str, tuple[str, ...]]] = {
    "sft": {"messages": ("system", "user", "assistant")},
    "dpo": {"prompt": ("system", "user"), "chosen": ("assistant",), "rejected": ("assistant",)},
    "grpo": {"prompt": ("system", "user")},
    "eval": {"prompt": ("system", "user")},
}


def features(config: str) -> Features:
    """The `datasets` features of one config (column order is the file's column order)."""
    if config not in SPLITS:
        raise ValueError(f"unknown config {config!r}; the release has {', '.join(SPLITS)}")
    tail = {k: v for k, v in _TAIL.items() if k not in _DROPPED.get(config, ())}
    return Features({**_HEAD, **_MIDDLE[config], **tail})


def _message_problems(column: str, value: Any, roles: tuple[str, ...]) -> tuple[list[str], int]:
    """Problems of one message list, and how many image placeholders it holds."""
    if not isinstance(value, list):
        return [f"`{column}` must be a list of messages"], 0
    found = tuple(m.get("role") if isinstance(m, Mapping) else None for m in value)
    if found != roles:
        return [f"`{column}` roles are {list(found)}; expected {list(roles)}"], 0
    problems: list[str] = []
    images = 0
    for i, message in enumerate(value):
        if set(message) != {"role", "content"} or not isinstance(message["content"], list):
            problems.append(f"`{column}[{i}]` must be {{role, content: [parts]}}")
            continue
        for j, part in enumerate(message["content"]):
            where = f"`{column}[{i}].content[{j}]`"
            if not isinstance(part, Mapping) or set(part) != {"type", "text"}:
                problems.append(f"{where} must be {{type, text}}")
            elif part["type"] == "image":
                images += 1
                if part["text"] is not None:
                    problems.append(f"{where} is an image part with text")
            elif part["type"] != "text" or not isinstance(part["text"], str):
                problems.append(f"{where} must be a text part with a string or an image part")
    return problems, images


def checked_turn(messages: Any, role: str = "assistant") -> str:
    """The text of the last `role` turn of a column that passed `row_problems`, which checks
    every role is there with a list of parts (so `turn_text` finds it)."""
    text = turn_text(messages, role)
    assert text is not None, f"no {role} turn: the row did not pass row_problems"
    return text


def row_problems(config: str, row: Mapping[str, Any]) -> list[str]:
    """What keeps `row` from being a valid row of `config` (empty when it is one).

    Checks the contract's shape, not the trace semantics: columns exactly as the features,
    strings where strings go, images as `{"bytes", "path"}` with a bare file name, message roles
    in order, and one image placeholder per image (TRL pairs them by position).
    """
    expected = features(config)
    problems: list[str] = []
    missing = [c for c in expected if c not in row]
    extra = sorted(c for c in row if c not in expected)
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(extra)}")
    if problems:
        return problems
    for column, feature in expected.items():
        if feature == _STRING and not isinstance(row[column], str):
            problems.append(f"`{column}` must be a string, not {type(row[column]).__name__}")
    images = row["images"]
    if not isinstance(images, list) or not images:
        problems.append("`images` must be a non-empty list")
        images = []
    for i, image in enumerate(images):
        if (not isinstance(image, Mapping) or set(image) != {"bytes", "path"}
                or not isinstance(image["bytes"], bytes) or not image["bytes"]
                or not isinstance(image["path"], str)):
            problems.append(f"`images[{i}]` must be {{bytes: non-empty bytes, path: str}}")
        elif not image["path"] or "/" in image["path"] or "\\" in image["path"]:
            problems.append(f"`images[{i}].path` must be a bare file name, not "
                            f"{image['path']!r}")
    placeholders = 0
    for column, roles in TURNS[config].items():
        found, count = _message_problems(column, row[column], roles)
        problems.extend(found)
        placeholders += count
    if not problems and placeholders != len(images):
        problems.append(f"{placeholders} image placeholder(s) for {len(images)} image(s)")
    if config == "dpo":
        if row["perturbation"] not in PERTURBATIONS:
            problems.append(f"`perturbation` {row['perturbation']!r} is not one of "
                            f"{', '.join(sorted(PERTURBATIONS))}")
        codes = row["rejected_codes"]
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
            problems.append("`rejected_codes` must be a non-empty list of strings")
    return problems
