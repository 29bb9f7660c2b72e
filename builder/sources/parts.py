"""Cutting a source into parts that load on their own, for a Ray build's intake.

Loading a source's parts one after another gives exactly what loading it whole gives — the same
items in the same order, with the same ids, and the same skipped records with the same file and
line — so dedup and split assignment cannot tell the difference. The seed corpus is cut into
runs of planned items (planning is a cheap pass, done once; drawing is the work), a local JSONL
file (or an image folder described by one) into runs of lines at line starts, a parquet file into
its row groups. Hub layouts stream through `datasets` and are not cut (`plan_parts` returns
None): a Ray build reads them where it runs and checks and hashes their items on the cluster.
So is any source the planner cannot read (a missing file): loading it whole reports the error as
a one-process build does.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import SOURCE_KINDS, seed_count
from .base import SourceItem

#: Seed items drawn by one part (≈ 3 ms each: a few seconds of work).
SEED_PART = 512
#: JSONL lines, or bytes, read by one part (each line may read and hash an image).
JSONL_PART_LINES = 256
JSONL_PART_BYTES = 8 << 20


@dataclass(frozen=True)
class SourcePart:
    """One part of a `[[sources]]` table: the table itself (local paths made absolute) and
    either the slice of its file to read (`span`, see `local.Part`) or the seed plans to draw."""

    spec: Mapping[str, Any]
    span: tuple[int, int, int] | None = None
    plans: tuple[Any, ...] = ()  # sources.seed.Plan

    def load(self, needed: int, on_bad: Callable[[Any], None]) -> Iterator[SourceItem]:
        if self.spec.get("kind") == "seed":
            from .seed import render_item

            seed = int(self.spec.get("seed", 0))
            return (render_item(plan, seed) for plan in self.plans)
        return SOURCE_KINDS["local"].load({**self.spec, "part": self.span}, needed, on_bad)


def plan_parts(spec: Mapping[str, Any], needed: int) -> list[SourcePart] | None:
    """The parts of one source table, in order; None when it is loaded whole (module doc)."""
    kind = spec.get("kind")
    if kind == "seed":
        return _seed_parts(spec, needed)
    if kind != "local":
        return None
    try:
        return _local_parts(spec)
    except (OSError, ValueError):  # loading it whole says what is wrong, as it always has
        return None


def _seed_parts(spec: Mapping[str, Any], needed: int) -> list[SourcePart] | None:
    from .seed import plans

    try:
        planned = plans(seed_count(spec, needed), int(spec.get("seed", 0)))
        parts = []
        while batch := tuple(itertools.islice(planned, SEED_PART)):
            parts.append(SourcePart(dict(spec), plans=batch))
        return parts
    except ValueError:  # beyond the corpus: the loader says so
        return None


def _local_parts(spec: Mapping[str, Any]) -> list[SourcePart] | None:
    from .local import metadata_file

    spec = {**spec, "path": os.path.abspath(spec["path"])}
    if spec.get("image_root"):
        spec["image_root"] = os.path.abspath(spec["image_root"])
    path = Path(spec["path"])
    if path.is_dir():
        path = metadata_file(path, spec.get("metadata"))
    if path.suffix == ".parquet":
        spans = _row_groups(path)
    elif path.suffix in (".jsonl", ".json"):
        spans = _line_runs(path)
    else:
        return None
    return [SourcePart(spec, span) for span in spans]


def _row_groups(path: Path) -> list[tuple[int, int, int]]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    spans, rows = [], 0
    for group in range(meta.num_row_groups):
        spans.append((group, group + 1, rows))
        rows += meta.row_group(group).num_rows
    return spans


def _line_runs(path: Path) -> list[tuple[int, int, int]]:
    """(start, stop, lines before start) runs of whole lines, read once in blocks."""
    spans: list[tuple[int, int, int]] = []
    start = offset = lines = 0
    run_lines = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            at = 0
            while (newline := block.find(b"\n", at)) >= 0:
                at = newline + 1
                run_lines += 1
                if run_lines >= JSONL_PART_LINES or offset + at - start >= JSONL_PART_BYTES:
                    spans.append((start, offset + at, lines))
                    lines += run_lines
                    start, run_lines = offset + at, 0
            offset += len(block)
    if offset > start:
        spans.append((start, offset, lines))
    return spans
