"""The authors' EasyR1 GRPO format: the release's writer and the trainer's reader are inverses."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from safer_toolkit.builder.release.easyr1 import write_easyr1
from safer_toolkit.training_reference.easyr1 import load_dataset, read_easyr1
from tests.support.release_rows import grpo_row


def text_of(messages: list[dict], role: str) -> str:
    return "".join(p["text"] for m in messages if m["role"] == role
                   for p in m["content"] if p["type"] == "text")


def write(tmp_path: Path, rows: list[dict]) -> Path:
    shard = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), shard)
    dest = tmp_path / "easyr1"
    write_easyr1([shard], dest)
    return dest


def test_reading_the_release_export_gives_back_the_grpo_rows(tmp_path: Path) -> None:
    rows = [grpo_row(i) for i in range(6)]
    back = list(read_easyr1(write(tmp_path, rows)))
    assert [r["id"] for r in back] == [r["id"] for r in rows]
    for original, read in zip(rows, back, strict=True):
        assert [m["role"] for m in read["prompt"]] == ["system", "user"]
        assert text_of(read["prompt"], "system") == text_of(original["prompt"], "system")
        assert text_of(read["prompt"], "user") == text_of(original["prompt"], "user")
        assert read["prompt"][1]["content"][0] == {"type": "image", "text": None}
        assert [i["bytes"] for i in read["images"]] == [i["bytes"] for i in original["images"]]
        assert json.loads(read["protocol"]) == json.loads(original["protocol"])
        assert (read["risk_category"], read["label"]) == (original["risk_category"],
                                                          original["label"])


def test_the_reader_makes_a_trl_ready_dataset(tmp_path: Path) -> None:
    from trl.data_utils import is_conversational, prepare_multimodal_messages

    ds = load_dataset(write(tmp_path, [grpo_row(i) for i in range(3)]), max_rows=2)
    row = ds[0]
    assert len(ds) == 2 and row["images"][0].size == (48, 48)
    assert is_conversational(row)
    prepared = prepare_multimodal_messages(row["prompt"], images=row["images"])
    assert prepared[1]["content"][0]["image"] is row["images"][0]


def test_bad_records_are_skipped_with_file_and_line(tmp_path: Path, caplog) -> None:
    dest = write(tmp_path, [grpo_row(0)])
    good = (dest / "train.jsonl").read_text().strip()
    record = json.loads(good)
    lines = [
        good,
        "not json",
        json.dumps({**record, "images": ["../../etc/passwd"]}),  # leaves the folder
        json.dumps({**record, "images": []}),  # an <image> marker without its image
        json.dumps({**record, "images": ["images/missing.png"]}),
        json.dumps(["a list"]),
        "",
        json.dumps({"id": "foreign", "images": [record["images"][0]],
                    "problem": "<image>What is this?", "answer": "a cat"}),
    ]
    (dest / "train.jsonl").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        back = list(read_easyr1(dest / "train.jsonl"))
    assert [r["id"] for r in back] == [record["id"], "foreign"]
    foreign = back[1]
    assert [m["role"] for m in foreign["prompt"]] == ["user"]
    assert text_of(foreign["prompt"], "user") == "What is this?"
    assert foreign["protocol"] is None and foreign["label"] is None
    messages = "\n".join(r.message for r in caplog.records)
    for lineno, why in ((2, "not JSON"), (3, "leaves"), (4, "markers"), (5, "cannot read"),
                        (6, "not a JSON object")):
        assert f"train.jsonl:{lineno}" in messages and why in messages
    assert "5 record(s) skipped, 2 read" in messages
