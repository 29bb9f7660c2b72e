"""A build against an endpoint that misbehaves in every way finishes, fills its splits from the
reserve, and accounts for every item: kept, rejected with its reason, or failed with its reason."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow.parquet as pq

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS, OfflineBackend
from safer_toolkit.builder.config import load_config
from safer_toolkit.builder.pipeline import build
from safer_toolkit.builder.recipes import stages
from safer_toolkit.validation import Validator
from tests.support.build_config import write_config
from tests.support.openai_server import FaultPlan, OpenAIServer

RATES = {"429": 0.06, "500": 0.06, "drop": 0.05, "hang": 0.03, "bad_json": 0.05,
         "schema_break": 0.08, "length": 0.02, "content_filter": 0.02}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_faults_are_survived_and_every_item_is_accounted_for(tmp_path):
    script = {3: "length", 5: "content_filter", 7: "schema_break", 9: "hang", 11: "drop"}
    faults = FaultPlan(script=script, rates=RATES, seed=7, retry_after=0.05, hang_s=1.0)
    with OpenAIServer(content=OfflineBackend().answer_body, faults=faults,
                      models=tuple(OFFLINE_MODELS.values())) as server:
        config = load_config(write_config(
            tmp_path / "build.toml", base_url=server.url, sft=8, dpo=9, grpo=6, eval_=4,
            concurrency=8, timeout_s=0.4, max_retries=2, reserve=2.0))
        out = tmp_path / "dataset"
        result = asyncio.run(build(config, out, backend="openai", progress=False))
        assert set(server.fault_counts) == set(RATES)

    manifest = result.manifest
    splits = manifest["counts"]["splits"]
    assert result.shortfall == {} and result.internal_errors == 0
    for name, target in {"sft": 8, "dpo": 9, "grpo": 6, "eval": 4}.items():
        s = splits[name]
        assert s["rows"] == target
        assert s["candidates"] == s["kept"] + s["rejected"] + s["failed"]
    outcomes = sum(s["rejected"] + s["failed"] for s in splits.values())
    assert outcomes == sum(manifest["counts"]["reasons"].values())
    assert sum(s["failed"] for s in splits.values()) > 0  # the faults did cost items

    failures = _jsonl(out / ".build" / "failures.jsonl")
    assert len(failures) == sum(manifest["failures"].values())
    reasons = {f["reason"] for f in failures}
    assert reasons <= {f"{stage}:{tag}" for stage in stages()  # perturb asks for wrong decisions
                       for tag in ("http_429", "http_500", "connection", "timeout", "bad_json",
                                   "finish_length", "finish_content_filter", "bad_output",
                                   "no_choices")}, reasons
    assert any(r.endswith(("finish_length", "finish_content_filter")) for r in reasons)
    rejected = _jsonl(out / ".build" / "rejected.jsonl")
    assert {"plan", "respond"} <= {r["stage"] for r in rejected}  # schema-breaking content
    assert all(r.get("codes") or r.get("problem") for r in rejected)
    assert "plan_schema" in manifest["rejections"]["plan"]
    # retries by reason are recorded per role, though every role shares the one endpoint
    calls = manifest["run"]["calls"]
    retried = {reason for c in calls.values() for reason in c["retries"]}
    assert {"http_429", "http_500", "connection", "timeout", "bad_json"} <= retried
    assert all(c["attempts"] >= c["sent"] > 0 for c in calls.values())
    assert sum(c["attempts"] for c in calls.values()) + manifest["run"]["preflight"][
        "attempts"] == server.total

    validator = Validator(mode="strict")
    for row in pq.read_table(out / "sft/train-00000-of-00001.parquet").to_pylist():
        assert validator.validate({"protocol": row["protocol"],
                                   "response": row["messages"][2]["content"][0]["text"]}).valid
