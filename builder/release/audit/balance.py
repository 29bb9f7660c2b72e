"""The label balance per risk category: how many distinct items of each category are harmful
and how many benign, over all configs. Reported only (a table in the card): a category that is
nearly all one label lets the category stand in for the label."""

from __future__ import annotations

import polars as pl


def label_balance(frames: dict[str, pl.DataFrame]) -> dict[str, dict[str, int]]:
    if not frames:
        return {}
    items = pl.concat([f.select("item", "risk_category", "label") for f in frames.values()]) \
        .unique(subset="item", keep="first")
    counts = items.group_by("risk_category", "label").len().sort("risk_category", "label")
    table: dict[str, dict[str, int]] = {}
    for category, label, n in counts.iter_rows():
        table.setdefault(category, {"harmful": 0, "benign": 0})[label] = n
    return table
