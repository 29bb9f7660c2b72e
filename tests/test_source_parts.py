"""A source cut into parts (what a Ray build's intake tasks load) gives exactly what loading it
whole gives: the same items in the same order, and the same skipped records, same lines."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from safer_toolkit.builder.sources import SOURCE_KINDS, parts
from safer_toolkit.builder.sources.parts import plan_parts
from tests.support.source_layouts import png


def _whole(spec: dict, needed: int = 0) -> tuple[list, list[str]]:
    bad: list = []
    items = list(SOURCE_KINDS[spec["kind"]].load(spec, needed, bad.append))
    return items, [str(b) for b in bad]


def _cut(spec: dict, needed: int = 0) -> tuple[list, list[str], int]:
    planned = plan_parts(spec, needed)
    assert planned is not None
    bad: list = []
    items = [item for part in planned for item in part.load(needed, bad.append)]
    return items, [str(b) for b in bad], len(planned)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An image folder described by a metadata.jsonl of 40 lines, three of them bad."""
    root = tmp_path / "images"
    root.mkdir()
    lines = []
    for i in range(40):
        (root / f"{i}.png").write_bytes(png((i * 6, 255 - i * 6, i % 7 * 30)))
        lines.append(json.dumps({"file_name": f"{i}.png", "question": f"What is shown in {i}?"}))
    lines[3] = "{not json"
    lines[17] = json.dumps({"file_name": "../escape.png", "question": "Out?"})
    lines[38] = json.dumps({"file_name": "missing.png", "question": "Where?"})
    lines.insert(20, "")  # a blank line keeps its number
    (root / "metadata.jsonl").write_text("\n".join(lines))  # no newline at the end
    return root


def test_jsonl_line_runs_load_as_the_whole_file(folder: Path, monkeypatch):
    monkeypatch.setattr(parts, "JSONL_PART_LINES", 7)
    spec = {"kind": "local", "path": str(folder), "source_dataset": "mine",
            "source_license": "cc0-1.0"}
    whole, whole_bad = _whole(spec)
    cut, cut_bad, count = _cut(spec)
    assert count == 6  # 41 lines in runs of 7
    assert [i.source_id for i in cut] == [i.source_id for i in whole]
    assert cut == whole and len(whole) == 37
    assert cut_bad == whole_bad and len(whole_bad) == 3
    assert "metadata.jsonl:line 4" in whole_bad[0] and "line 40" in whole_bad[-1]


def test_parquet_row_groups_load_as_the_whole_file(tmp_path: Path):
    records = [{"question": f"Is {i} safe?", "image": {"bytes": png((i, i, 200)), "path": None}}
               for i in range(30)]
    records[11]["question"] = ""
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(records), path, row_group_size=8)
    spec = {"kind": "local", "path": str(path), "source_dataset": "mine",
            "source_license": "cc0-1.0"}
    whole, whole_bad = _whole(spec)
    cut, cut_bad, count = _cut(spec)
    assert count == 4
    assert cut == whole and len(cut) == 29
    assert cut_bad == whole_bad == [f"{path}:row 11: missing or empty question"]


def test_seed_parts_draw_the_same_items(monkeypatch):
    monkeypatch.setattr(parts, "SEED_PART", 16)
    spec = {"kind": "seed", "count": 40, "seed": 3}
    whole, _ = _whole(spec)
    cut, _, count = _cut(spec)
    assert count == 3 and cut == whole and len(cut) == 40


def test_what_cannot_be_cut_is_loaded_whole(tmp_path: Path):
    assert plan_parts({"kind": "hub", "layout": "spa_vl"}, 10) is None
    # a missing file: the whole load reports it, as a one-process build does
    assert plan_parts({"kind": "local", "path": str(tmp_path / "nope.jsonl"),
                       "source_dataset": "x", "source_license": "y"}, 10) is None
