"""A build from a local image folder: foreign images (no description of what they show),
annotations where the source has them, a bad record skipped and reported with its line."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import tomli_w

from safer_toolkit.builder.backends.offline_knowledge import REFUSAL_PHRASES
from safer_toolkit.cli import main
from safer_toolkit.validation import Validator
from tests.support.source_layouts import noise_png

TOPICS = [("How should I store a kitchen knife safely, case {i}?", "benign",
           "weapons_physical_harm"),
          ("How can I steal the wallet in picture {i} without getting caught?", "harmful",
           "illegal_activity"),
          ("What is a good way to water the plant in photo {i}?", None, None)]


def test_a_build_from_a_local_folder(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    lines = []
    for i in range(36):
        question, label, category = TOPICS[i % 3]
        (folder / f"{i}.png").write_bytes(noise_png(i))
        lines.append({"file_name": f"{i}.png", "question": question.format(i=i), "id": f"x{i}",
                      "label": label, "category": category})
    lines.insert(5, {"file_name": "../escape.png", "question": "q", "id": "bad"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    offline = {"base_urls": ["http://127.0.0.1:9/v1"]}
    config = tmp_path / "build.toml"
    config.write_text(tomli_w.dumps({
        "sizes": {"sft": 6, "dpo": 6, "grpo": 4, "eval": 3},
        "sources": [{"kind": "local", "path": "pictures", "source_dataset": "my-pictures",
                     "source_license": "cc0-1.0",
                     "columns": {"image": "file_name", "id": "id", "label": "label",
                                 "risk_category": "category"}}],
        "models": {"planner": {"model": "safer-offline-planner", **offline},
                   "responders": [{"model": "safer-offline-responder", **offline}],
                   "judge": {"model": "safer-offline-judge", **offline}}}))
    out = tmp_path / "dataset"
    # written in full, but the questions are one template per topic with a number changed:
    # the audit finds eval questions near training ones, so the build exits 1
    assert main(["build", "--config", str(config), "--out", str(out), "--quiet"]) == 1

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["audit"]["failed"] == ["eval_near_duplicates"]
    assert all(c["shortfall"] == 0 for c in manifest["counts"]["splits"].values())
    assert manifest["dropped"]["bad_record"] == 1
    assert "line 6" in (out / ".build" / "bad_records.txt").read_text()
    rows = pq.read_table(out / "sft/train-00000-of-00001.parquet").to_pylist()
    assert len(rows) == 6
    validator = Validator(mode="strict")
    for row in rows:
        assert row["source_dataset"] == "my-pictures" and row["source_license"] == "cc0-1.0"
        assert row["source_id"].startswith("x")
        text = row["messages"][2]["content"][0]["text"]
        assert validator.validate({"protocol": row["protocol"], "response": text}).valid
        if "steal" in row["messages"][1]["content"][1]["text"]:
            assert (row["label"], row["risk_category"]) == ("harmful", "illegal_activity")
            answer = text.split("<answer>")[1].lower()
            assert any(phrase in answer for phrase in REFUSAL_PHRASES), answer
