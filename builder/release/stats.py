"""The card's numbers, computed with polars from the parquet files themselves (never the images).

Everything the card states about the data is read back from what was written, so the card
cannot drift from the files. Results are plain, sorted Python values: rendering is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

#: a call line of the canonical text form: `[NAME]: ` at a line start (docs/protocol.md §3)
CALL_LINE = r"(?m)^\[[A-Z0-9_-]+\]:"


@dataclass
class Statistics:
    rows: dict[str, int] = field(default_factory=dict)
    #: (risk_category, label) → config → rows
    category_label: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    #: topology → config → rows
    topology: dict[str, dict[str, int]] = field(default_factory=dict)
    #: "sft" / "dpo chosen" → number of calls → traces
    calls: dict[str, dict[int, int]] = field(default_factory=dict)
    perturbation: dict[str, int] = field(default_factory=dict)
    rejected_codes: dict[str, int] = field(default_factory=dict)
    expected_decision: dict[str, int] = field(default_factory=dict)
    #: (source_dataset, source_license) → rows
    sources: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (planner, responder, judge) → rows
    models: dict[tuple[str, str, str], int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def licenses(self) -> list[str]:
        return sorted({lic for _, lic in self.sources})


def _assistant_text(column: str) -> pl.Expr:
    return (pl.col(column).list.last().struct.field("content")
            .list.eval(pl.element().struct.field("text").fill_null("")).list.join(""))


def _calls(frame: pl.LazyFrame, column: str) -> pl.LazyFrame:
    """Traces per number of calls (`v`, `len`) in a message column's assistant turn."""
    return _value_counts(frame, _assistant_text(column).str.count_matches(CALL_LINE))


def _value_counts(frame: pl.LazyFrame, expr: pl.Expr) -> pl.LazyFrame:
    return frame.select(expr.alias("v")).group_by("v").len().sort("v")


def _counts(table: pl.DataFrame) -> dict[Any, int]:
    """A `_value_counts` result as value → count."""
    return dict(zip(table["v"].to_list(), table["len"].to_list(), strict=True))


def _queries(config: str, frame: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """Every count the card needs from one config, as lazy queries over its files."""
    label_of = (pl.col("label") if "label" in frame.collect_schema().names()
                else pl.col("protocol").str.json_path_match("$.label"))  # dpo: no column
    queries = {
        "rows": frame.select(pl.len()),
        "category_label": (frame.group_by("risk_category", label_of.alias("label")).len()
                           .sort("risk_category", "label")),
        "topology": _value_counts(frame, pl.col("protocol").str.json_path_match("$.topology")),
        "sources": frame.group_by("source_dataset", "source_license").len(),
        "models": frame.group_by("planner_model", "responder_model", "judge_model").len(),
    }
    if config == "sft":
        queries["calls sft"] = _calls(frame, "messages")
    elif config == "dpo":
        queries["calls dpo chosen"] = _calls(frame, "chosen")
        queries["calls dpo rejected"] = _calls(frame, "rejected")
        queries["perturbation"] = _value_counts(frame, pl.col("perturbation"))
        queries["rejected_codes"] = _value_counts(frame.explode("rejected_codes"),
                                                  pl.col("rejected_codes"))
    elif config == "eval":
        queries["expected_decision"] = _value_counts(frame, pl.col("expected_decision"))
    return queries


def compute(files: Mapping[str, Sequence[Path]]) -> Statistics:
    """Statistics of every config (config → its parquet shards); each config's queries run
    together (`collect_all`), so its files are scanned once, not once per count."""
    stats = Statistics()
    sources: dict[tuple[str, str], int] = {}
    models: dict[tuple[str, str, str], int] = {}
    for config, paths in files.items():
        queries = _queries(config, pl.scan_parquet([str(p) for p in paths]))
        result = dict(zip(queries, pl.collect_all(list(queries.values())), strict=True))
        stats.rows[config] = result["rows"].item()
        for category, label, n in result["category_label"].iter_rows():
            stats.category_label.setdefault((category, label), {})[config] = n
        for name, n in _counts(result["topology"]).items():
            stats.topology.setdefault(name or "unknown", {})[config] = n
        for dataset, lic, n in result["sources"].iter_rows():
            sources[dataset, lic] = sources.get((dataset, lic), 0) + n
        for *keys, n in result["models"].iter_rows():
            models[tuple(keys)] = models.get(tuple(keys), 0) + n
        for key, table in result.items():
            if key.startswith("calls "):  # "calls sft" → stats.calls["sft"]
                stats.calls[key.removeprefix("calls ")] = _counts(table)
        if "perturbation" in result:
            stats.perturbation = _counts(result["perturbation"])
            stats.rejected_codes = _counts(result["rejected_codes"])
        if "expected_decision" in result:
            stats.expected_decision = _counts(result["expected_decision"])
    stats.category_label = dict(sorted(stats.category_label.items()))
    stats.topology = dict(sorted(stats.topology.items()))
    stats.sources = dict(sorted(sources.items()))
    stats.models = dict(sorted(models.items()))
    return stats
