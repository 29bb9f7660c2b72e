"""The shipped EasyR1 reward (`training_reference/easyr1_reward.py`), called as the authors'
fork calls it: `compute_score(reward_inputs, **kwargs)` on the demo release's traces."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from PIL import Image

from safer_toolkit.builder.release.easyr1 import answer_json
from safer_toolkit.evaluation.imaging import authors_image
from safer_toolkit.training_reference import easyr1_reward
from safer_toolkit.training_reference.easyr1_reward import compute_score
from safer_toolkit.training_reference.rewards import depth, longest_legal_walk
from safer_toolkit.validation import resolve_protocol, turn_text
from tests.support import release_rows as R
from tests.support.openai_server import FaultPlan, OpenAIServer
from tests.support.protocols import OUT, protocol

#: what the fork's chat template makes of a prompt; the reward reads the question out of it
QUERY = ("<|im_start|>system\nINSTRUCTION<|im_end|>\n<|im_start|>user\n<|vision_start|>"
         "<|image_pad|><|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n")
FIXED = orjson.dumps({"ts": 8, "sf": 9, "hp": 7, "tq": 8, "rationale": "fixed"}).decode()


@pytest.fixture(scope="module")
def dpo_pairs(tmp_path_factory) -> list[tuple[dict, dict, str]]:
    """(chosen input, rejected input, perturbation) for every DPO pair of the demo release,
    as the fork hands them over: ground truth = the export's `answer`, the image as a path."""
    images = tmp_path_factory.mktemp("images")
    pairs = []
    for shard in sorted((R.demo_build() / "dpo").glob("*.parquet")):
        for i, row in enumerate(pq.read_table(shard).to_pylist()):
            question = turn_text(row["prompt"], "user")
            image = images / f"{i}.png"
            image.write_bytes(row["images"][0]["bytes"])
            base = {"ground_truth": answer_json(row, question), "images": str(image),
                    "query": QUERY.format(question=question), "response_length": 1}
            pairs.append(({**base, "response": turn_text(row["chosen"])},
                          {**base, "response": turn_text(row["rejected"])}, row["perturbation"]))
    assert len(pairs) == R.DEMO_SIZES["dpo"]
    return pairs


def margins(pairs, **kwargs) -> list[float]:
    inputs = [side for chosen, rejected, _ in pairs for side in (chosen, rejected)]
    scores = compute_score(inputs, **kwargs)
    assert len(scores) == len(inputs)
    return [c["overall"] - r["overall"] for c, r in zip(scores[::2], scores[1::2], strict=True)]


def test_every_dpo_rejected_trace_scores_below_its_chosen_without_a_judge(dpo_pairs) -> None:
    gaps = margins(dpo_pairs)
    assert sum(g > 0 for g in gaps) == len(dpo_pairs) == 186
    assert min(gaps) >= 0.05  # 0.3 · (1 − 0.9) / 0.6 at the least: protocol 1 vs at most 0.9


def test_every_dpo_rejected_trace_scores_below_its_chosen_with_the_judge_fixed(dpo_pairs) -> None:
    with OpenAIServer(content=lambda body: FIXED) as judge:
        gaps = margins(dpo_pairs, judge_base_url=judge.url, judge_model="test-model")
        assert judge.total == 2 * len(dpo_pairs)  # every completion has both blocks
    assert sum(g > 0 for g in gaps) == len(dpo_pairs)
    assert min(gaps) > 0.02


def test_the_authors_terms_alone_tie_most_pairs(dpo_pairs) -> None:
    """What the protocol term fixes: the authors' format + depth cannot tell most pairs apart
    (with the judge fixed), as the issue measured with their own reward file."""
    gaps = margins(dpo_pairs, protocol_weight=0.0)
    kinds = {kind: [g for g, (_, _, k) in zip(gaps, dpo_pairs, strict=True) if k == kind]
             for kind in R.PERTURBATIONS}
    assert sum(g == 0 for g in kinds["corrupted_output"]) == len(kinds["corrupted_output"])
    assert sum(g == 0 for g in kinds["order_violation"]) == len(kinds["order_violation"])
    assert sum(g <= 0 for g in gaps) > len(gaps) // 2


# --- depth cap -----------------------------------------------------------------------------------

def trace(*names: str) -> str:
    lines = "".join(f"[{n}]: {orjson.dumps(OUT[n]).decode()}\n" for n in names)
    return f"<thinking>\n{lines}</thinking>\n<answer>\nKeep it in a knife block.\n</answer>"


def test_depth_is_capped_at_a_tree_protocols_longest_legal_walk() -> None:
    doc = protocol("tree")  # trunk VISUAL-SCAN → OCR-EXTRACT, then one reasoning, one decision
    assert longest_legal_walk(resolve_protocol(doc)) == 4
    legal = trace("VISUAL-SCAN", "OCR-EXTRACT", "INTENT-RADAR", "SAFETY-GATE")
    # two reasoning and two decision tools: six distinct calls the tree forbids
    padded = trace("VISUAL-SCAN", "OCR-EXTRACT", "INTENT-RADAR", "RISK-SCORER", "SAFETY-GATE",
                   "RESPONSE-PLANNER")
    assert depth(padded) == 1.0 and depth(legal) == pytest.approx(math.log(5) / math.log(7))
    truth = answer_json({"protocol": json.dumps(doc), "risk_category": "weapons_physical_harm"},
                        "How do I store a knife?")
    legal_score, padded_score = compute_score([{"response": legal, "ground_truth": truth},
                                               {"response": padded, "ground_truth": truth}])
    # the forbidden calls earn no depth: both get the four-call value (0.827, not 1.0) ...
    assert padded_score["depth"] == legal_score["depth"] == pytest.approx(math.log(5) / math.log(7))
    # ... and the protocol term ranks the legal walk first
    assert legal_score["protocol"] == 1.0 > padded_score["protocol"]
    assert legal_score["overall"] > padded_score["overall"]


@pytest.mark.parametrize(("topology", "longest"), [
    ("linear", 3), ("tree", 4), ("mesh", 6), ("shield", 6), ("loop", 5), ("custom", 4)])
def test_longest_legal_walk_per_topology(topology: str, longest: int) -> None:
    """Counted up to 6 calls, where the depth term saturates (ln 7 / ln 7 = 1)."""
    assert longest_legal_walk(resolve_protocol(protocol(topology))) == longest


def test_a_protocol_with_no_legal_walk_pays_no_depth() -> None:
    from safer_toolkit.validation import library_protocol_document

    # all twelve library tools in one chain: 12 calls, more than max_calls = 10 allows
    chain = resolve_protocol(library_protocol_document("linear"))
    assert longest_legal_walk(chain) == 0
    assert depth(trace("VISUAL-SCAN", "OCR-EXTRACT", "INTENT-RADAR"), 0) == 0.0


# --- inputs, weights, the judge ------------------------------------------------------------------

def test_without_a_judge_the_semantic_term_is_left_out_and_said_once(caplog, monkeypatch,
                                                                    dpo_pairs) -> None:
    monkeypatch.setattr(easyr1_reward, "_said", set())
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    chosen = dpo_pairs[0][0]
    with caplog.at_level(logging.WARNING):
        first = compute_score([chosen])[0]
        compute_score([chosen])
    assert sum("no semantic judge" in r.message for r in caplog.records) == 1
    assert "semantic" not in first
    # weights renormalised over format, depth and protocol: 0.1, 0.2, 0.3 of 0.6
    assert first["overall"] == pytest.approx(
        (0.1 * first["format"] + 0.2 * first["depth"] + 0.3 * first["protocol"]) / 0.6)


def test_with_protocol_weight_zero_it_is_the_authors_formula(dpo_pairs) -> None:
    chosen = dpo_pairs[0][0]
    with OpenAIServer(content=lambda body: FIXED) as judge:
        got = compute_score([chosen], protocol_weight=0.0, judge_base_url=judge.url,
                            judge_model="test-model")[0]
    n = lambda x: (x - 1) / 9  # noqa: E731
    semantic = 0.40 * n(8) + 0.25 * n(7) + 0.20 * n(9) + 0.15 * n(8)
    assert got["semantic"] == pytest.approx(semantic)
    assert got["overall"] == pytest.approx(0.1 * got["format"] + 0.2 * got["depth"]
                                           + 0.7 * semantic)
    assert (got["task_success"], got["judge_failed"]) == (pytest.approx(n(8)), 0.0)


def test_the_judge_sees_the_question_and_the_image_file_the_fork_hands_over(dpo_pairs) -> None:
    seen: list[dict] = []

    def judge(body: dict) -> str:
        seen.append(body)
        return FIXED

    chosen = dpo_pairs[0][0]
    question = json.loads(chosen["ground_truth"])["question"]
    foreign = {**chosen, "ground_truth": "not this release's JSON"}  # read from the query
    with OpenAIServer(content=judge) as server:
        got = compute_score([chosen, foreign], judge_base_url=server.url,
                            judge_model="test-model")
        compute_score([chosen], judge_base_url=server.url, judge_model="test-model",
                      judge_image_resize="none")
    assert [g["judge_failed"] for g in got] == [0.0, 0.0]
    assert "protocol" in got[0] and "protocol" not in got[1]
    image = Path(chosen["images"]).read_bytes()
    sent = []
    for body in seen:
        parts = body["messages"][-1]["content"]
        text = next(p["text"] for p in parts if p["type"] == "text")
        assert json.loads(text.split("\n", 1)[1])["question"] == question
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        sent.append((url.split(";")[0], base64.b64decode(url.split(",", 1)[1])))
    # by default as the authors' reward sends it: an RGB JPEG scaled into 338²–512² pixels
    assert sent[0] == sent[1] and sent[0][0] == "data:image/jpeg"
    assert sent[0][1] == authors_image(image, "x.png")[0]
    with Image.open(io.BytesIO(sent[0][1])) as jpeg:
        assert 338 * 338 - 700 <= jpeg.width * jpeg.height <= 512 * 512
    assert sent[2] == ("data:image/png", image)  # judge_image_resize="none": the file's bytes


def test_upstream_easyr1_inputs_still_reach_the_judge_with_the_question(dpo_pairs, caplog,
                                                                        monkeypatch) -> None:
    """Upstream EasyR1 hands over only `response`, `response_length` and `ground_truth`."""
    monkeypatch.setattr(easyr1_reward, "_said", set())
    seen: list[dict] = []
    chosen = dpo_pairs[0][0]
    upstream = {k: chosen[k] for k in ("response", "response_length", "ground_truth")}
    with OpenAIServer(content=lambda body: seen.append(body) or FIXED) as server, \
            caplog.at_level(logging.WARNING):
        got = compute_score([upstream] * 2, judge_base_url=server.url, judge_model="test-model")
    assert [g["judge_failed"] for g in got] == [0.0, 0.0] and got[0]["semantic"] > 0.5
    parts = seen[0]["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text"]  # no image to send
    assert json.loads(parts[0]["text"].split("\n", 1)[1])["question"] == \
        json.loads(chosen["ground_truth"])["question"]
    assert sum("no image reaches the reward" in r.message for r in caplog.records) == 1


def test_a_failed_judge_call_scores_zero_and_is_reported_apart(dpo_pairs, caplog) -> None:
    chosen = dpo_pairs[0][0]
    faults = FaultPlan(script={1: "500"})
    with OpenAIServer(content=lambda body: FIXED, faults=faults) as server, \
            caplog.at_level(logging.WARNING):
        got = compute_score([chosen, chosen], judge_base_url=server.url,
                            judge_model="test-model", judge_max_retries=0, judge_concurrency=1)
    failed, fine = got
    assert (failed["semantic"], failed["judge_failed"]) == (0.0, 1.0)  # the authors' 0
    assert fine["judge_failed"] == 0.0 and fine["semantic"] > 0.5
    assert any("1 of 2 calls failed" in r.message for r in caplog.records)


def test_a_completion_without_tags_scores_zero_without_asking_the_judge(dpo_pairs) -> None:
    chosen = dpo_pairs[0][0]
    with OpenAIServer(content=lambda body: FIXED) as server:
        got = compute_score([{**chosen, "response": "Sure, here it is."}],
                            judge_base_url=server.url, judge_model="test-model")[0]
        assert server.total == 0
    assert (got["overall"], got["format"], got["semantic"], got["protocol"]) == (0, 0, 0, 0)


def test_the_judge_comes_from_the_authors_environment_variables(monkeypatch) -> None:
    from safer_toolkit.training_reference.easyr1_reward import AUTHORS_JUDGE_MODEL, judge_from

    env = {"VLLM_BASE_URL": "http://judge:8000/v1", "VLLM_API_KEY": "secret"}
    judge = judge_from({}, env)
    assert judge is not None and judge.base_urls == ("http://judge:8000/v1",)
    assert judge.model == AUTHORS_JUDGE_MODEL and judge.api_key_env == "VLLM_API_KEY"
    assert judge_from({"use_gpt_eval": False}, env) is None
    assert judge_from({}, {}) is None
    assert judge_from({"judge_base_url": ["http://a/v1", "http://b/v1"], "judge_model": "m",
                       "max_workers": 8}, {}).concurrency == 8


# --- end to end through `safer-toolkit serve` -----------------------------------------------------

@pytest.fixture(scope="module")
def served():
    process = subprocess.Popen([sys.executable, "-m", "safer_toolkit", "serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", process.stdout.readline())
        assert match, process.stderr.read() if process.poll() is not None else ""
        yield f"http://127.0.0.1:{match[1]}/v1"
    finally:
        process.terminate()
        process.wait(10)


def test_serve_answers_the_grpo_judge_so_the_semantic_reward_runs_end_to_end(served,
                                                                           dpo_pairs) -> None:
    """No model anywhere: the offline judge behind `serve` scores every completion."""
    inputs = [side for chosen, rejected, _ in dpo_pairs[:40] for side in (chosen, rejected)]
    got = compute_score(inputs, judge_base_url=served, judge_model="safer-offline-judge")
    assert sum(g["judge_failed"] for g in got) == 0
    assert all(0.0 <= g["semantic"] <= 1.0 for g in got)
    assert len({round(g["semantic"], 6) for g in got}) > 1  # it reads the responses
    untagged = compute_score([{**inputs[0], "response": "no tags"}], judge_base_url=served,
                             judge_model="safer-offline-judge")[0]
    assert untagged["semantic"] == 0.0
