"""The whole evaluation loop on a machine with no model: `safer-toolkit serve` (its own process)
answers as the model under test — with the generic prompt and with the toolkit instruction — and
as the judge."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS
from safer_toolkit.cli import main
from safer_toolkit.evaluation import read_results
from tests.support.eval_data import ITEMS, write_eval_dataset


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-m", "safer_toolkit", "serve", "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("serving the offline backend on "), line
        yield line.split(" on ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(10)


def test_serve_is_model_and_judge_for_both_prompts(served: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    dataset = write_eval_dataset(tmp_path / "dataset")
    runs = {}
    for prompt in ("generic", "toolkit"):
        out = runs[prompt] = tmp_path / prompt
        assert main(["eval", "--dataset", str(dataset), "--out", str(out), "--prompt", prompt,
                     "--model-base-url", served, "--model", OFFLINE_MODELS["responder"],
                     "--judge-base-url", served, "--judge-model", OFFLINE_MODELS["judge"]]) == 0
        results = read_results(out / "results.jsonl")
        assert [r["id"] for r in results] == [item[0] for item in ITEMS]
        assert all(r["missing"] is None and r["scores"] for r in results)
        by_id = {r["id"]: r for r in results}
        # harmful items are declined (the trace says so) and judged safe; benign ones answered
        for rid, label, *_ in ITEMS:
            decision = by_id[rid]["decision"]
            assert decision["source"] == "trace"
            assert decision["declined"] is (label == "harmful"), (prompt, rid, decision)
            assert by_id[rid]["scores"]["safety"] == 3
        strict = {rid: r["validator"]["strict"]["valid"] for rid, r in by_id.items()}
        if prompt == "toolkit":  # the responder follows each row's own protocol
            assert all(strict.values()), by_id
        else:  # without the instruction it walks the whole library as a mesh: valid only
            # where the row's protocol is the library under mesh or loop (a mesh plus back-edges)
            assert strict == {item[0]: item[3] in ("mesh", "loop") for item in ITEMS}
    capsys.readouterr()
    assert main(["eval", "compare", str(runs["generic"]), str(runs["toolkit"])]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("overall") and "protocol valid strict %" in line)
    assert row.split()[-3:] == ["37.50", "100.00", "+62.50"]
    metrics = orjson.loads((runs["toolkit"] / "metrics.json").read_bytes())
    assert metrics["overall"]["over_refusal_rate"]["pct"] == 0.0
    assert metrics["overall"]["unsafe_compliance_rate"]["pct"] == 0.0


def test_serve_judges_with_and_without_the_reference(served: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """The offline judge behind `serve` answers eval's default (image, question and response
    only) and the informed variant; on these items it reads the same labels the rows carry."""
    dataset = write_eval_dataset(tmp_path / "dataset")
    scores = {}
    for informed in (False, True):
        out = tmp_path / str(informed)
        assert main(["eval", "--dataset", str(dataset), "--out", str(out), "--prompt", "toolkit",
                     "--model-base-url", served, "--model", OFFLINE_MODELS["responder"],
                     "--judge-base-url", served, "--judge-model", OFFLINE_MODELS["judge"],
                     *(["--judge-sees-reference"] if informed else [])]) == 0
        results = read_results(out / "results.jsonl")
        assert all(r["missing"] is None for r in results)
        scores[informed] = {r["id"]: (r["scores"], r["rationale"]) for r in results}
        metrics = orjson.loads((out / "metrics.json").read_bytes())
        assert metrics["provenance"]["judge"]["sees_reference"] is informed
    capsys.readouterr()
    assert {k: s for k, (s, _) in scores[False].items()} == \
        {k: s for k, (s, _) in scores[True].items()}
    assert {rationale.split(";")[0] for _, rationale in scores[True].values()} == \
        {"Reference harmful", "Reference benign"}
    assert {rationale.split(";")[0] for _, rationale in scores[False].values()} == \
        {"Read as harmful", "Read as benign"}  # its own reading, never a reference


def test_eval_reads_what_the_demo_build_writes(served: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    import pyarrow.parquet as pq

    dataset = tmp_path / "demo"
    assert main(["build", "--preset", "demo", "--out", str(dataset)]) == 0
    out = tmp_path / "run"
    assert main(["eval", "--dataset", str(dataset), "--out", str(out), "--prompt", "toolkit",
                 "--model-base-url", served, "--model", OFFLINE_MODELS["responder"],
                 "--judge-base-url", served, "--judge-model", OFFLINE_MODELS["judge"]]) == 0
    capsys.readouterr()
    rows = pq.read_table(sorted((dataset / "eval").glob("test-*.parquet")),
                         columns=["id", "label", "risk_category"]).to_pylist()
    results = read_results(out / "results.jsonl")
    assert [(r["id"], r["label"], r["risk_category"]) for r in results] == \
        [(r["id"], r["label"], r["risk_category"]) for r in rows]
    assert len(results) == 20 and all(r["scores"] for r in results)
    # the offline responder follows every row's protocol exactly
    assert all(r["validator"]["strict"]["valid"] for r in results)
    metrics = orjson.loads((out / "metrics.json").read_bytes())
    assert metrics["provenance"]["dataset"]["items"] == 20
    assert metrics["problems"] == {"dataset_problems": []}
