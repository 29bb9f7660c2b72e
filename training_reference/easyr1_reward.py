"""The GRPO reward for the authors' EasyR1 trainer, with the protocol it was missing.

EasyR1 loads a reward file by path and calls `compute_score(reward_inputs, **kwargs)` once per
batch (`REWARD_TYPE = "batch"`); each input carries `response`, `ground_truth` (the record's
`answer`: this release's JSON with `question`, `risk_category`, `label` and `protocol`),
`query` (the chat-templated prompt) and `images` (the prompt's first image, a path under
`data.image_dir`). It returns one dict per input with `overall` (the reward) and the terms,
which EasyR1 averages into its metrics:

    worker.reward.reward_function=/ABS/PATH/TO/easyr1_reward.py:compute_score

Terms, each in 0…1:
- `format`, `depth`, `semantic`: the authors' definitions (`rewards.py`), except
  that depth counts at most the protocol's longest legal walk (`rewards.longest_legal_walk`),
  so calls the protocol forbids earn nothing;
- `protocol`: adherence to the row's own protocol by the project's validator
  (`rewards.protocol_adherence`: 1 strictly valid, at most 0.9 otherwise).
`overall` is their weighted mean over the terms present (weights 0.1 / 0.2 / 0.7 as the
authors', protocol 0.3 — `*_weight` keyword arguments). With `protocol_weight=0` and a judge it
is the authors' reward. Without a judge the semantic term is left out and the other weights
renormalised (said once in the log); a row whose `ground_truth` carries no usable protocol
gets no protocol term (and an uncapped depth), said once per protocol.

The judge is any OpenAI-compatible endpoint, asked `judge.semantic_request` (a strict JSON
schema, four 1–10 scores); `safer-toolkit serve` answers it offline. It is configured by
keyword arguments (`worker.reward.reward_function_kwargs`) or, as the authors' reward reads it,
by the environment: `VLLM_BASE_URL`, `VLLM_MODEL_NAME`, `VLLM_API_KEY`. A failed judge call
scores semantic 0, as the authors' reward does, and is reported separately as `judge_failed`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..validation import ProtocolInvalid
from .judge import SemanticScores, gated_semantic
from .rewards import (
    RewardWeights,
    SemanticReward,
    depth,
    has_blocks,
    image_payloads,
    longest_legal_walk,
    protocol_adherence,
    row_protocol,
)

log = logging.getLogger(__name__)

REWARD_NAME = "safer_toolkit"
REWARD_TYPE = "batch"  # EasyR1 hands over the whole batch at once

#: the authors' judge model when only their base URL is set (their reward's default)
AUTHORS_JUDGE_MODEL = "Qwen/Qwen3-VL-32B-Instruct"
MAX_IMAGE_BYTES = 32 * 1024 * 1024
_VISION_END = "<|vision_end|>"
_TURN_ENDS = ("<|im_end|>", "<|im_start|>assistant")


def weighted_mean(weights: RewardWeights, terms: Mapping[str, float]) -> float:
    """The weighted mean of the terms present (0 when every present weight is 0)."""
    total = sum(getattr(weights, k) for k in terms)
    return sum(getattr(weights, k) * v for k, v in terms.items()) / total if total else 0.0


@dataclass(frozen=True)
class Judge:
    """Where the semantic judge is and how it is called."""

    base_urls: tuple[str, ...]
    model: str
    api_key_env: str | None = None
    concurrency: int = 64
    timeout_s: float = 120.0
    max_retries: int = 3
    send_image: bool = True
    #: `authors`: the image as the authors' reward sends it; `none`: the file's bytes
    image_resize: str = "authors"


_said: set[str] = set()


def _say_once(key: str, message: str, *args: Any) -> None:
    if key not in _said:
        _said.add(key)
        log.warning(message, *args)


def judge_from(kwargs: Mapping[str, Any], environ: Mapping[str, str] = os.environ
               ) -> Judge | None:
    """The judge named by the keyword arguments, else by the authors' environment variables;
    None when there is none (or `use_gpt_eval=False`, the authors' switch)."""
    if not kwargs.get("use_gpt_eval", True):
        return None
    urls = kwargs.get("judge_base_url") or environ.get("VLLM_BASE_URL") or ""
    urls = tuple(u for u in ([urls] if isinstance(urls, str) else urls) if u)
    if not urls:
        return None
    key_env = kwargs.get("judge_api_key_env")
    if key_env is None and environ.get("VLLM_API_KEY"):
        key_env = "VLLM_API_KEY"
    return Judge(base_urls=urls,
                 model=kwargs.get("judge_model") or environ.get("VLLM_MODEL_NAME")
                 or AUTHORS_JUDGE_MODEL,
                 api_key_env=key_env,
                 concurrency=int(kwargs.get("judge_concurrency")
                                 or kwargs.get("max_workers") or Judge.concurrency),
                 timeout_s=float(kwargs.get("judge_timeout_s", Judge.timeout_s)),
                 max_retries=int(kwargs.get("judge_max_retries", Judge.max_retries)),
                 send_image=bool(kwargs.get("judge_sees_image", True)),
                 image_resize=str(kwargs.get("judge_image_resize", "authors")))


@dataclass(frozen=True)
class Target:
    """What a row's `ground_truth` gives the reward: the question and the resolved protocol."""

    question: str | None
    protocol: Any  # a resolved `Protocol`, or None


def read_target(ground_truth: Any) -> Target:
    """The question and protocol in this release's `answer` JSON; a foreign `ground_truth`
    (or an unusable protocol, said once) gives None for what it lacks."""
    try:
        answer = orjson.loads(ground_truth) if isinstance(ground_truth, str | bytes) \
            else ground_truth
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        return Target(None, None)
    question = answer.get("question") if isinstance(answer.get("question"), str) else None
    doc = answer.get("protocol")
    if doc is None:
        return Target(question, None)
    try:
        return Target(question, row_protocol(doc))
    except ProtocolInvalid as exc:
        _say_once(f"protocol:{exc}", "a row's protocol is unusable (%s): its completions get no "
                  "protocol term and an uncapped depth", exc)
        return Target(question, None)


def user_query(query: str) -> str:
    """The question in a chat-templated prompt, read as the authors' reward reads it: the text
    after the last image, up to the end of the user turn."""
    content = query.split(_VISION_END)[-1]
    for token in _TURN_ENDS:
        content = content.split(token)[0]
    return content.strip()


def _image_bytes(image: Any) -> Any:
    """What `rewards.image_payload` takes: a path (EasyR1's `image_dir` + name) or a data URL
    becomes its bytes (bounded); bytes, {"bytes"} and PIL images pass through."""
    if isinstance(image, list | tuple):
        image = image[0] if image else None
    if isinstance(image, str) and image.startswith("data:image/"):
        return base64.b64decode(image.split(",", 1)[-1])
    if isinstance(image, str | Path):
        path = Path(image)
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"{path}: larger than {MAX_IMAGE_BYTES} bytes")
        return path.read_bytes()
    return image


def structural_terms(response: str, target: Target) -> dict[str, float]:
    """`format`, `depth` (capped by the protocol) and, with a protocol, `protocol`."""
    terms = {"format": 1.0 if has_blocks(response) else 0.0}
    if target.protocol is None:
        terms["depth"] = depth(response)
        return terms
    terms["depth"] = depth(response, longest_legal_walk(target.protocol))
    terms["protocol"] = protocol_adherence(response, target.protocol)
    return terms


def _judged(scores: SemanticScores | None) -> dict[str, float]:
    """The semantic term and the judge's scores; a failed call scores 0, as the authors'
    reward does (their fallback is the lowest score on every axis), and is flagged."""
    if scores is None:
        return {"semantic": 0.0, "task_success": 0.0, "safety_compliance": 0.0,
                "helpfulness": 0.0, "tool_quality": 0.0, "judge_failed": 1.0}
    return {"semantic": gated_semantic(scores), "task_success": scores.ts,
            "safety_compliance": scores.sf, "helpfulness": scores.hp,
            "tool_quality": scores.tq, "judge_failed": 0.0}


_UNTAGGED = {"semantic": 0.0, "task_success": 0.0, "safety_compliance": 0.0,
             "helpfulness": 0.0, "tool_quality": 0.0, "judge_failed": 0.0}


def _judge_images(judge: Judge, inputs: Sequence[Mapping[str, Any]],
                  asked: Sequence[bool]) -> list[tuple[bytes, str] | None]:
    """What the judge is shown of each input's image: none where it is not asked or sees no
    image; else the image, read once per distinct file and, with `image_resize="authors"`,
    preprocessed as the authors' reward sends it (RGB JPEG, 338²–512² pixels)."""
    from ..evaluation.imaging import authors_image

    done: dict[Any, Any] = {}
    images = []
    for item, ask in zip(inputs, asked, strict=True):
        image = item.get("images") if ask and judge.send_image else None
        key = image if isinstance(image, str | Path) else id(image)
        if key not in done:
            try:
                data = _image_bytes(image)
                if judge.image_resize == "authors" and isinstance(data, bytes):
                    data = authors_image(data, "image")[0]
                done[key] = data
            except (OSError, ValueError) as exc:
                _say_once(f"image:{type(exc).__name__}", "the judge gets no image where it "
                          "cannot be read (%s); first case only", exc)
                done[key] = None
        images.append(done[key])
    return image_payloads(images)


async def _semantic(judge: Judge, inputs: Sequence[Mapping[str, Any]],
                    targets: Sequence[Target]) -> list[dict[str, float]]:
    from ..builder.backends.client import ModelEndpoint, OpenAIChatBackend

    endpoint = ModelEndpoint("judge", judge.model, list(judge.base_urls), judge.api_key_env,
                             concurrency=judge.concurrency, timeout_s=judge.timeout_s,
                             max_retries=judge.max_retries)
    reward = SemanticReward(OpenAIChatBackend(endpoint), judge.model,
                            send_image=judge.send_image)
    texts = [str(i.get("response") or "") for i in inputs]
    asked = [has_blocks(t) for t in texts]  # a missing tag scores 0 without asking
    if judge.send_image and any("images" not in i for i in inputs):
        _say_once("no-images", "no image reaches the reward (upstream EasyR1 passes none; the "
                  "authors' fork does): the judge sees the question and the response only")
    payloads = await asyncio.to_thread(_judge_images, judge, inputs, asked)
    questions = [t.question if t.question is not None else user_query(str(i.get("query") or ""))
                 for i, t in zip(inputs, targets, strict=True)]
    try:
        scores = await asyncio.gather(*(
            reward.ask(q, t, p) if a else asyncio.sleep(0, _UNTAGGED)
            for q, t, p, a in zip(questions, texts, payloads, asked, strict=True)))
    finally:
        await reward.aclose()
    if reward.failures:
        log.warning("semantic judge: %d of %d calls failed this batch (%s); scored 0",
                    sum(reward.failures.values()), reward.calls, dict(reward.failures))
    return [s if isinstance(s, dict) else _judged(s) for s in scores]


def _run(coroutine: Any) -> Any:
    """Run a coroutine to the end from synchronous code, inside an event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def compute_score(reward_inputs: list[dict[str, Any]], format_weight: float = 0.1,
                  depth_weight: float = 0.2, semantic_weight: float = 0.7,
                  protocol_weight: float = 0.3, **kwargs: Any) -> list[dict[str, float]]:
    """One score dict per input, `overall` first (see the module docstring).

    Keyword arguments beyond the weights: `judge_base_url` (one URL or a list of replicas),
    `judge_model`, `judge_api_key_env` (the *name* of the variable holding the key),
    `judge_concurrency`, `judge_timeout_s`, `judge_max_retries`, `judge_sees_image`,
    `judge_image_resize` (`authors`, the default: the image as the authors' reward sends it,
    an RGB JPEG of 338²–512² pixels; `none`: the file's bytes); and the authors'
    `use_gpt_eval` and `max_workers` (= `judge_concurrency`).
    """
    if not reward_inputs:
        return []
    weights = RewardWeights(format_weight, depth_weight, semantic_weight, protocol_weight)
    if min(format_weight, depth_weight, semantic_weight, protocol_weight) < 0:
        raise ValueError(f"reward weights must be ≥ 0, not {weights}")
    targets = [read_target(i.get("ground_truth")) for i in reward_inputs]
    rows = [structural_terms(str(i.get("response") or ""), t)
            for i, t in zip(reward_inputs, targets, strict=True)]
    judge = judge_from(kwargs) if weights.semantic else None
    if judge is None:
        _say_once("no-judge", "no semantic judge (no judge_base_url / VLLM_BASE_URL, "
                  "use_gpt_eval=False or semantic_weight=0): the semantic term is left out and "
                  "the other weights renormalised")
        judged: list[dict[str, float]] = [{} for _ in rows]
    else:
        judged = _run(_semantic(judge, reward_inputs, targets))
    out = []
    for terms, extra in zip(rows, judged, strict=True):
        present = dict(terms)
        if "semantic" in extra:
            present["semantic"] = extra["semantic"]
        out.append({"overall": weighted_mean(weights, present), **terms, **extra})
    return out


__all__ = ["REWARD_NAME", "REWARD_TYPE", "Judge", "Target", "compute_score", "judge_from",
           "read_target", "structural_terms", "user_query", "weighted_mean"]
