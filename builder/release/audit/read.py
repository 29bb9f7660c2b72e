"""What the audit reads from a release: the text columns of each config, with polars.

Only the columns a figure needs are read, and the images only by `images.py`, shard by shard.
A row's *item* (the group of the grouped cross-validation) is `source_dataset/source_id`: DPO
rows of one prompt, and a prompt's chosen and rejected sides, always fall in the same fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

CONFIGS = ("sft", "dpo", "grpo", "eval")
TRAINING = ("sft", "dpo", "grpo")
#: the `<answer>` block of a text-form trace (docs/protocol.md §3)
ANSWER = r"(?s)<answer>\s*(.*?)\s*</answer>"


def shards(folder: Path, config: str) -> list[Path]:
    """The parquet files of one config (sorted), empty when the release lacks it."""
    return sorted((Path(folder) / config).glob("*.parquet"))


def _turn_text(column: str, index: int) -> pl.Expr:
    """The text parts of message `index` (negative from the end) of a message column, joined."""
    return (pl.col(column).list.get(index).struct.field("content")
            .list.eval(pl.element().struct.field("text").fill_null("")).list.join(""))


def _item() -> pl.Expr:
    return pl.concat_str(pl.col("source_dataset"), pl.lit("/"), pl.col("source_id"))


@dataclass(frozen=True)
class ReleaseText:
    """One frame per config. Every frame has `item`, `system`, `question`, `label`,
    `risk_category` and `group` (the `source_group` column, or the item where the release has
    none); `sft` adds `answer`, `dpo` adds `chosen`, `rejected` and `perturbation`."""

    frames: dict[str, pl.DataFrame]
    has_groups: bool


def read_release(folder: Path) -> ReleaseText:
    """The text of every config present in `folder` (a release or an export's staging folder)."""
    frames: dict[str, pl.DataFrame] = {}
    has_groups = True
    for config in CONFIGS:
        files = shards(folder, config)
        if not files:
            continue
        lazy = pl.scan_parquet([str(p) for p in files])
        names = lazy.collect_schema().names()
        turns = "messages" if config == "sft" else "prompt"
        label = (pl.col("label") if "label" in names
                 else pl.col("protocol").str.json_path_match("$.label"))
        group = pl.col("source_group") if "source_group" in names else _item()
        has_groups &= "source_group" in names
        columns = [_item().alias("item"), _turn_text(turns, 0).alias("system"),
                   _turn_text(turns, 1).alias("question"), label.alias("label"),
                   pl.col("risk_category"), group.alias("group")]
        if config == "sft":
            columns.append(_turn_text("messages", -1).str.extract(ANSWER, 1).fill_null("")
                           .alias("answer"))
        if config == "dpo":
            columns += [_turn_text("chosen", -1).alias("chosen"),
                        _turn_text("rejected", -1).alias("rejected"), pl.col("perturbation")]
        frames[config] = lazy.select(columns).collect()
    return ReleaseText(frames, has_groups and bool(frames))
