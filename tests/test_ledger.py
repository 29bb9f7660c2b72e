"""The ledger: rejections are counted for the manifest and logged for inspection."""

from __future__ import annotations

import json

from safer_toolkit.builder.ledger import Ledger


def test_a_rejection_is_counted_and_logged_with_its_stage_first(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.reject("plan", ["plan_schema"], split="sft", item="a", codes=["plan_schema"])
    ledger.reject("judge", ["below_threshold"])  # counted, nothing to log
    ledger.close()
    lines = (tmp_path / "rejected.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"stage": "plan", "split": "sft", "item": "a", "codes": ["plan_schema"]}]
    assert list(json.loads(lines[0])) == ["stage", "split", "item", "codes"]
    assert ledger.rejections == {"plan": {"plan_schema": 1}, "judge": {"below_threshold": 1}}
