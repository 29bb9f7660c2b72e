"""Hostile source records (issue #13, case 3 and the source part of case 6): one bad record is
skipped and logged with its file and line whatever it raises, and a bad source table is a
config error naming the key, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w

from safer_toolkit.builder.sources.hub import load_mis
from safer_toolkit.builder.sources.intake import BadRecord, Columns
from safer_toolkit.builder.sources.local import load_image_folder
from safer_toolkit.cli import main
from tests.support.source_layouts import mis, noise_png, png

NAMES = {"source_dataset": "my-set", "source_license": "cc0-1.0"}
DEEP = '{"file_name": ' + "[" * 5000 + "]" * 5000 + ', "question": "q"}'
OFFLINE = {"base_urls": ["http://127.0.0.1:9/v1"]}


def _folder(root: Path, count: int) -> Path:
    """`count` good records, with hostile ones at lines 2, 3 and 4 of metadata.jsonl."""
    root.mkdir(parents=True)
    lines = []
    for i in range(count):
        (root / f"{i}.png").write_bytes(noise_png(i))
        lines.append(json.dumps({"file_name": f"{i}.png", "id": f"x{i}",
                                 "question": f"How should I store kitchen knife number {i}?"}))
    lines[1:1] = [json.dumps({"file_name": {"bytes": "not bytes"}, "question": "q", "id": "b1"}),
                  DEEP, json.dumps({"file_name": {"path": {"nested": 1}}, "question": "q",
                                    "id": "b3"})]
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_a_record_that_raises_anything_is_skipped_with_its_line(tmp_path) -> None:
    folder = _folder(tmp_path / "set", 3)
    bad: list[BadRecord] = []
    items = list(load_image_folder(folder, on_bad=bad.append, **NAMES,
                                   columns=Columns(image="file_name", id="id")))
    assert [i.source_id for i in items] == ["x0", "x1", "x2"]
    assert [b.where for b in bad] == ["line 2", "line 3", "line 4"]
    assert all(b.file.endswith("metadata.jsonl") for b in bad)
    assert "image bytes of type str" in bad[0].reason
    assert "RecursionError" in bad[1].reason  # named, not raised
    assert "no image" in bad[2].reason


def test_a_multi_image_record_whose_picture_is_truncated_is_skipped(tmp_path) -> None:
    whole = png((10, 20, 30), (40, 30))
    images = {"a.png": whole, "b.png": whole, "cut.png": whole[: len(whole) // 2]}
    records = [{"id": 1, "question": "Is this safe?", "image_path1": "a.png",
                "image_path2": "cut.png", "category": "Illegal Activity"},
               {"id": 2, "question": "Is this safe too?", "image_path1": "a.png",
                "image_path2": "b.png", "category": "Illegal Activity"}]
    root = mis(tmp_path / "mis", records, images)
    bad: list[BadRecord] = []
    items = list(load_mis(str(root), on_bad=bad.append))
    assert [i.source_id for i in items] == ["2"]
    assert [b.where for b in bad] == ["row 0"] and "OSError" in bad[0].reason


def _config(tmp_path: Path, source: dict) -> Path:
    config = tmp_path / "build.toml"
    config.write_text(tomli_w.dumps({
        "sizes": {"sft": 4, "dpo": 3, "grpo": 3, "eval": 3},
        "sources": [{"kind": "local", "path": "set", **NAMES,
                     "columns": {"image": "file_name", "id": "id"}, **source}],
        "models": {"planner": {"model": "safer-offline-planner", **OFFLINE},
                   "responders": [{"model": "safer-offline-responder", **OFFLINE}],
                   "judge": {"model": "safer-offline-judge", **OFFLINE}}}))
    return config


def test_a_build_survives_hostile_source_records(tmp_path, capsys) -> None:
    _folder(tmp_path / "set", 30)
    out = tmp_path / "out"
    code = main(["build", "--config", str(_config(tmp_path, {})), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dropped"]["bad_record"] == 3
    logged = (out / ".build" / "bad_records.txt").read_text().splitlines()
    assert [line.split("metadata.jsonl:")[1].split(":")[0] for line in logged] == [
        "line 2", "line 3", "line 4"]


@pytest.mark.parametrize(("source", "named"), [
    ({"limits": {"max_pixels": "many"}}, "sources[0].limits.max_pixels"),
    ({"limits": {"max_pixel": 10}}, "sources[0].limits: unknown key(s) max_pixel"),
    ({"limits": 5}, "sources[0].limits: must be a table"),
    ({"colums": {"image": "file_name"}}, "sources[0]: unknown key(s) colums"),
])
def test_a_bad_local_source_table_is_a_config_error(tmp_path, capsys, source, named) -> None:
    _folder(tmp_path / "set", 2)
    code = main(["build", "--config", str(_config(tmp_path, source)), "--out",
                 str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and named in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()  # refused before anything was written
