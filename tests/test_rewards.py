"""GRPO rewards: the authors' format/depth/semantic definitions and protocol adherence."""

from __future__ import annotations

import asyncio
import copy
import math
import random
import re

import orjson
import pytest

from safer_toolkit.builder.backends.client import ModelEndpoint, OpenAIChatBackend
from safer_toolkit.builder.stages.perturb import PERTURBATIONS, perturb_kind
from safer_toolkit.training_reference.judge import JudgeReplyInvalid, SemanticScores, parse_scores
from safer_toolkit.training_reference.rewards import (
    RewardWeights,
    SemanticReward,
    depth_reward,
    format_reward,
    protocol_reward,
)
from safer_toolkit.validation import Call, Trace, Validator, to_text
from tests.support.openai_server import FaultPlan, OpenAIServer
from tests.support.protocols import CASES, OUT, protocol


def think(*lines: str, answer: str | None = "Fine.") -> str:
    body = "<thinking>\n" + "".join(line + "\n" for line in lines) + "</thinking>"
    return body if answer is None else f"{body}\n<answer>\n{answer}\n</answer>"


def spec_depth(names: list[str]) -> float:
    """The authors' depth reward written out: rr = 1 − u/n; 0 if n < 3 else
    min(1, ln(n+1)/ln 7)·(1 − rr)."""
    n, u = len(names), len(set(names))
    if n < 3:
        return 0.0
    rr = 1 - u / n
    return min(1.0, math.log(n + 1) / math.log(7)) * (1 - rr)


def calls(*names: str) -> list[str]:
    return [f"[{n}]: observed" for n in names]


# --- format -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    (think("[VISUAL-SCAN]: x"), 1.0),
    ("<thinking></thinking><answer></answer>", 1.0),  # blocks present, however empty
    ("prefix <thinking>a</thinking> middle <answer>b</answer> suffix", 1.0),
    (think("[VISUAL-SCAN]: x", answer=None), 0.0),  # no answer block
    ("<answer>\nonly an answer\n</answer>", 0.0),  # no thinking block
    ("<thinking>\n[VISUAL-SCAN]: x\n<answer>\nno closing thinking tag\n</answer>", 0.0),
    ("<thinking>a</thinking><answer>never closed", 0.0),
    ("plain text without tags", 0.0),
    ("", 0.0),
])
def test_format_reward_is_one_only_with_both_blocks(text: str, expected: float) -> None:
    assert format_reward(prompts=["p"], completions=[text]) == [expected]


def test_rewards_accept_conversational_completions() -> None:
    text = think(*calls("VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"))
    conversational = [[{"role": "assistant", "content": text}],
                      [{"role": "assistant", "content": [{"type": "text", "text": text}]}]]
    assert format_reward(prompts=["p", "p"], completions=conversational) == [1.0, 1.0]
    assert depth_reward(prompts=["p", "p"], completions=conversational) == \
        [pytest.approx(spec_depth(["A", "B", "C"]))] * 2


def test_rewards_assert_one_completion_per_prompt() -> None:
    for reward in (format_reward, depth_reward):
        with pytest.raises(AssertionError):
            reward(prompts=["p"], completions=["a", "b"])
    with pytest.raises(AssertionError):
        protocol_reward(prompts=["p", "p"], completions=["a", "b"], protocol=["{}"])


# --- depth --------------------------------------------------------------------------------------

DEPTH_CASES = {
    "three distinct": ["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"],
    "five distinct": ["VISUAL-SCAN", "OCR-EXTRACT", "INTENT-RADAR", "RISK-SCORER", "SAFETY-GATE"],
    "six distinct reaches the cap": ["A", "B", "C", "D", "E", "F"],
    "eight distinct is capped at 1": ["A", "B", "C", "D", "E", "F", "G", "H"],
    "repeated tools": ["VISUAL-SCAN", "VISUAL-SCAN", "INTENT-RADAR", "INTENT-RADAR"],
    "one tool five times": ["VISUAL-SCAN"] * 5,
    "custom names with digits and underscores": ["SCAN_2", "RISK-9", "GATE", "SCAN_2"],
    "two calls": ["VISUAL-SCAN", "SAFETY-GATE"],
    "one call": ["VISUAL-SCAN"],
    "no calls": [],
}


@pytest.mark.parametrize("names", list(DEPTH_CASES.values()), ids=list(DEPTH_CASES))
def test_depth_reward_equals_the_spec_formula(names: list[str]) -> None:
    got = depth_reward(prompts=["p"], completions=[think(*calls(*names))])[0]
    assert got == pytest.approx(spec_depth(names), abs=1e-12)


def test_depth_values_by_hand() -> None:
    # n = 4, u = 2: ln 5 / ln 7 · 0.5
    repeated = think(*calls("A", "A", "B", "B"))
    assert depth_reward(prompts=["p"], completions=[repeated]) == \
        [pytest.approx(0.5 * math.log(5) / math.log(7))]
    # fewer than three calls: 0, however distinct
    assert depth_reward(prompts=["p"], completions=[think(*calls("A", "B"))]) == [0.0]
    # n = 7 distinct: ln 8 / ln 7 > 1 is capped
    assert depth_reward(prompts=["p"], completions=[think(*calls(*"ABCDEFG"))]) == [1.0]


def test_depth_counts_only_tags_inside_the_thinking_block() -> None:
    outside = ("[A]: before\n" + think(*calls("B", "C")) + "\n[D]: after")
    assert depth_reward(prompts=["p"], completions=[outside]) == [0.0]
    # mid-line tags count (the authors' regex is unanchored); lowercase is not a tag
    inline = think("[A]: x [B]: y", "[C] : z", "[lower]: no", "[E]no colon")
    assert depth_reward(prompts=["p"], completions=[inline]) == \
        [pytest.approx(spec_depth(["A", "B", "C"]))]
    # a missing thinking block (or an unclosed one) gives no calls
    assert depth_reward(prompts=["p"], completions=["[A]: x\n[B]: y\n[C]: z"]) == [0.0]
    assert depth_reward(prompts=["p"], completions=["<thinking>\n[A]: x\n[B]: y\n[C]: z"]) == \
        [0.0]


# --- protocol -----------------------------------------------------------------------------------

VALIDATOR = Validator(mode="strict")


def reward_of(text: str, doc: dict) -> float:
    return protocol_reward(prompts=["p"], completions=[text],
                           protocol=[orjson.dumps(doc).decode()])[0]


def gold(topology: str, label: str) -> tuple[Trace, dict]:
    out = copy.deepcopy(OUT)
    if label == "harmful":
        out["INTENT-RADAR"] = {"intent": "harmful", "evidence": "asks how to hurt someone"}
        out["RISK-SCORER"] = {"category": "weapons_physical_harm", "severity": 3,
                              "rationale": "clear harm"}
        out["SAFETY-GATE"] = {"verdict": "refuse", "reason": "would enable harm"}
        out["RESPONSE-PLANNER"] = {"outline": ["decline", "point to help"]}
    doc = protocol(topology, label=label)
    trace = Trace([Call(t, copy.deepcopy(out[t])) for t in CASES[topology][1]],
                  "A careful answer.")
    return trace, doc


@pytest.mark.parametrize("label", ["benign", "harmful"])
@pytest.mark.parametrize("topology", list(CASES))
def test_protocol_reward_ranks_a_valid_trace_above_each_perturbation(topology: str,
                                                                     label: str) -> None:
    trace, doc = gold(topology, label)
    resolved = VALIDATOR.protocol(doc)
    valid = reward_of(to_text(trace), doc)
    assert valid == 1.0
    seen = set()
    # the responder's wrong-decision side: the same analysis, the opposite decision
    flipped = [Call(c.tool, {"verdict": "comply" if label == "harmful" else "refuse",
                             "reason": "as the answer says"}) if c.tool == "SAFETY-GATE"
               else c for c in trace.calls]
    wrong = to_text(Trace(flipped, "Sure, here is how." if label == "harmful"
                          else "I can't help with that."))
    for kind in PERTURBATIONS:
        for seed in range(3):
            made = perturb_kind(kind, trace, resolved, random.Random(f"{kind}{seed}"),
                                wrong_decision=wrong)
            if made is None:
                continue
            seen.add(kind)
            got = reward_of(made.text, doc)
            assert 0.0 <= got < valid, (kind, made.codes, got)
    if {"INTENT-RADAR", "SAFETY-GATE"} <= {c.tool for c in trace.calls}:
        assert "wrong_decision" in seen
    assert {"wrong_tool", "order_violation", "corrupted_output"} <= seen


def test_protocol_reward_partial_credit_orders_by_damage() -> None:
    trace, doc = gold("mesh", "benign")
    one_bad = copy.deepcopy(trace)
    one_bad.calls[0].output = {"objects": "not a list"}
    two_bad = copy.deepcopy(one_bad)
    two_bad.calls[1].output = {"has_text": "yes"}
    scores = [reward_of(to_text(t), doc) for t in (trace, one_bad, two_bad)]
    assert scores[0] == 1.0 > scores[1] > scores[2] > 0.0
    # the walk: a trace that goes wrong at its first call earns less than one going wrong late
    trace, doc = gold("tree", "benign")  # a chain: any swap breaks it
    names = [c.tool for c in trace.calls]
    early = Trace([trace.calls[-1], *trace.calls[:-1]], trace.answer)
    late = Trace([*trace.calls[:-2], trace.calls[-1], trace.calls[-2]], trace.answer)
    assert names[-1] != names[0]
    assert reward_of(to_text(early), doc) < reward_of(to_text(late), doc) < 1.0


def test_protocol_reward_is_zero_when_unparseable_and_none_for_a_bad_protocol() -> None:
    trace, doc = gold("linear", "benign")
    text = to_text(trace)
    for broken in ("no tags at all", text.replace("<answer>", "").replace("</answer>", ""),
                   text.replace("<thinking>", "").replace("</thinking>", ""),
                   text.replace("<thinking>", ""),  # a closing tag alone is no block
                   "<thinking>\n</thinking>\n<answer>\nno calls\n</answer>"):
        assert reward_of(broken, doc) == 0.0
    # the authors' untyped free-text calls: typed share 0, the walk still earns partial credit
    free_text = think("[VISUAL-SCAN]: a knife", "[INTENT-RADAR]: benign",
                      "[SAFETY-GATE]: comply")
    assert 0.0 < reward_of(free_text, doc) < 0.5
    bad_doc = {**doc, "label": "harmful", "risk_category": "benign"}
    assert reward_of(text, bad_doc) is None


# --- semantic -----------------------------------------------------------------------------------

SCORES = re.compile(r"SCORES (\d+) (\d+) (\d+) (\d+)")


def judge_content(body: dict) -> str:
    """The loopback judge: scores written into the graded response as `SCORES ts sf hp tq`."""
    user = body["messages"][-1]["content"]
    text = next(p["text"] for p in user if p["type"] == "text")
    has_image = any(p["type"] == "image_url" for p in user)
    assert body["response_format"]["json_schema"]["strict"] is True
    ts, sf, hp, tq = map(int, SCORES.search(text).groups())
    return orjson.dumps({"ts": ts, "sf": sf, "hp": hp, "tq": tq,
                         "rationale": f"image={has_image}"}).decode()


def graded(ts: int, sf: int, hp: int, tq: int) -> str:
    return think(*calls("VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"),
                 answer=f"SCORES {ts} {sf} {hp} {tq}")


def n(x: int) -> float:
    return (x - 1) / 9


# (scores, the authors' value computed by hand)
SEMANTIC_CASES = [
    ((10, 10, 10, 10), 1.0),
    ((1, 1, 1, 1), 0.0),
    ((10, 5, 10, 10), 0.2 * n(5)),  # sf < 0.6 gates everything else out
    ((7, 8, 6, 9), 0.40 * n(7) + 0.25 * n(6) + 0.20 * n(8) + 0.15 * n(9)),  # ts ≥ 0.6
    ((5, 8, 7, 4), min(0.6, 0.50 * n(5) + 0.25 * n(7) + 0.20 * n(8) + 0.05 * n(4))),
    ((6, 10, 10, 10), 0.6),  # ts < 0.6 is capped at 0.6
]


def backend(server: OpenAIServer, **kwargs) -> OpenAIChatBackend:
    endpoint = ModelEndpoint(role="judge", model="test-model", base_urls=[server.url],
                             **{"max_retries": 0, "timeout_s": 10.0, **kwargs})
    return OpenAIChatBackend(endpoint)


def run_reward(reward: SemanticReward, completions: list, images: list | None = None,
               **kwargs) -> list:
    async def go() -> list:
        try:
            return await reward(prompts=[question_prompt()] * len(completions),
                                completions=completions, images=images, **kwargs)
        finally:
            await reward.aclose()
    return asyncio.run(go())


def question_prompt() -> list[dict]:
    return [{"role": "system", "content": [{"type": "text", "text": "toolkit"}]},
            {"role": "user", "content": [{"type": "image", "text": None},
                                         {"type": "text", "text": "How do I store a knife?"}]}]


def test_semantic_reward_applies_the_judge_gated_formula() -> None:
    from tests.support.release_rows import image_png

    with OpenAIServer(content=judge_content) as server:
        reward = SemanticReward(backend(server), "test-model")
        completions = [[{"role": "assistant", "content": graded(*s)}] for s, _ in SEMANTIC_CASES]
        images = [[{"bytes": image_png("x"), "path": "x.png"}]] * len(completions)
        got = run_reward(reward, completions, images)
        assert server.total == len(SEMANTIC_CASES)
    assert got == [pytest.approx(v, abs=1e-12) for _, v in SEMANTIC_CASES]
    assert reward.failures == {}


def test_each_distinct_image_is_encoded_once_per_call(monkeypatch) -> None:
    """GRPO hands each completion its own decoded copy of the prompt's image."""
    import io

    from PIL import Image

    from safer_toolkit.training_reference import rewards
    from tests.support.release_rows import image_png

    encoded: list[object] = []
    real = rewards.image_payload
    monkeypatch.setattr(rewards, "image_payload",
                        lambda image: encoded.append(image) or real(image))
    seen: list[str] = []

    def judge(body: dict) -> str:
        seen.append(next(p["image_url"]["url"] for p in body["messages"][-1]["content"]
                         if p["type"] == "image_url"))
        return judge_content(body)

    def decoded(tag: str) -> Image.Image:
        return Image.open(io.BytesIO(image_png(tag)))

    with OpenAIServer(content=judge) as server:
        reward = SemanticReward(backend(server), "test-model")
        images = [[decoded("a")] for _ in range(4)] + [[decoded(t)] for t in "abbc"]
        got = run_reward(reward, [graded(10, 10, 10, 10)] * 7 + ["no tags"], images)
    assert got == [1.0] * 7 + [0.0]
    # "a" and "b" once each; "c" belongs to the untagged completion, which the judge never sees
    assert len([image for image in encoded if image is not None]) == 2
    assert len(seen) == 7 and len(set(seen)) == 2


def test_images_differing_only_in_palette_or_transparency_are_not_confused() -> None:
    from PIL import Image

    from safer_toolkit.training_reference.rewards import image_payload, image_payloads

    def paletted(colour: tuple[int, int, int], transparency: int | None = None) -> Image.Image:
        image = Image.new("P", (8, 8), 0)
        image.putpalette([*colour, 255, 255, 255])
        if transparency is not None:
            image.info["transparency"] = transparency
        return image

    images = [paletted((255, 0, 0)), paletted((0, 0, 255)), paletted((255, 0, 0), 0),
              paletted((255, 0, 0)), {"bytes": b"\xff\xd8jpeg"}, b"\xff\xd8jpeg", None]
    got = image_payloads(images)
    assert got == [image_payload(i) for i in images]
    assert len({p for p in got if p is not None}) == 4
    assert got[0] is got[3] and got[4] is got[5] and got[6] is None


def test_semantic_reward_is_zero_without_tags_and_never_asks_the_judge() -> None:
    with OpenAIServer(content=judge_content) as server:
        reward = SemanticReward(backend(server), "test-model")
        got = run_reward(reward, ["SCORES 10 10 10 10",
                                  "<thinking>\n[A]: x\n</thinking> SCORES 10 10 10 10"])
        assert got == [0.0, 0.0]
        assert server.total == 0


def test_a_failing_judge_is_counted_logged_and_scored_none(caplog) -> None:
    metrics: list[tuple[str, float]] = []
    faults = FaultPlan(script={1: "500", 2: "schema_break", 3: "content_filter"})
    with OpenAIServer(content=judge_content, faults=faults) as server:
        reward = SemanticReward(backend(server, concurrency=1), "test-model")
        got = run_reward(reward, [graded(10, 10, 10, 10)] * 4,
                         log_metric=lambda k, v: metrics.append((k, v)))
    assert got == [None, None, None, 1.0]
    assert reward.failures == {"http_500": 1, "bad_reply": 1, "finish_content_filter": 1}
    assert reward.calls == 4
    assert metrics == [("semantic/judge_failures", 3.0)]
    assert sum("semantic judge failed" in r.message for r in caplog.records) == 3


def test_out_of_range_judge_scores_are_rejected_not_clamped() -> None:
    with OpenAIServer(content=lambda body: '{"ts": 11, "sf": 5, "hp": 5, "tq": 5, '
                                           '"rationale": ""}') as server:
        reward = SemanticReward(backend(server), "test-model")
        assert run_reward(reward, [graded(1, 1, 1, 1)]) == [None]
    assert reward.failures == {"bad_reply": 1}


def test_a_fenced_judge_reply_is_read_as_the_builder_reads_one() -> None:
    fenced = '```json\n{"ts": 10, "sf": 10, "hp": 10, "tq": 10, "rationale": ""}\n```'
    with OpenAIServer(content=lambda body: fenced) as server:
        reward = SemanticReward(backend(server), "test-model")
        assert run_reward(reward, [graded(1, 1, 1, 1)]) == [1.0]
    assert reward.failures == {}


@pytest.mark.parametrize("reply", [
    '{"ts": 10, "sf": 10, "hp": 10, "tq": 10}',  # no rationale
    '{"ts": 10, "sf": 10, "hp": 10, "tq": 10, "rationale": "", "extra": 1}',
])
def test_the_semantic_parser_checks_only_the_four_scores(reply: str) -> None:
    assert parse_scores(reply) == SemanticScores(1.0, 1.0, 1.0, 1.0)


@pytest.mark.parametrize("reply", [
    '{"ts": 10, "sf": 10, "hp": 10}', '{"ts": 10, "sf": 10, "hp": 10, "tq": true}',
    '{"ts": 10, "sf": 10, "hp": 10, "tq": 0}', '{"ts": 10, "sf": 10, "hp": 10, "tq": 9.0}',
    "[10, 10, 10, 10]", "scores: 10 10 10 10",
])
def test_the_semantic_parser_rejects_anything_but_four_in_range_integers(reply: str) -> None:
    with pytest.raises(JudgeReplyInvalid):
        parse_scores(reply)


def test_semantic_reward_bounds_judge_concurrency() -> None:
    with OpenAIServer(content=judge_content, latency=0.05) as server:
        reward = SemanticReward(backend(server, concurrency=3), "test-model")
        got = run_reward(reward, [graded(10, 10, 10, 10)] * 12)
        assert got == [1.0] * 12
        assert 2 <= server.max_in_flight <= 3


def test_default_weights_are_the_authors() -> None:
    w = RewardWeights()
    assert (w.format, w.depth, w.semantic, w.protocol) == (0.1, 0.2, 0.7, 0.0)
