"""GRPO rewards with TRL's signature: `f(prompts, completions, **columns) -> [float | None]`.

`format_reward`, `depth_reward` and `semantic_reward` are the authors' definitions;
`protocol_reward` is this project's addition: adherence to the row's own protocol, measured by
the same validator the builder and the `validate` command use. TRL weights and sums them
(`reward_weights`); `RewardWeights` holds the defaults, total = 0.1·format + 0.2·depth +
0.7·semantic (+ protocol at its own weight).

Completions arrive as strings or, for conversational prompts, as
`[{"role": "assistant", "content": ...}]`; both are accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..builder.backends.base import CallFailed, ChatBackend
from ..validation import Graph, Protocol, ProtocolInvalid, check_text, legal_walk, turn_text
from ..validation.codec import TOOL_TAG  # the authors' tool-name regex
from ..validation.protocol import ProtocolCache
from .judge import (
    JudgeReplyInvalid,
    SemanticScores,
    gated_semantic,
    parse_scores,
    semantic_request,
)

log = logging.getLogger(__name__)

_THINKING = re.compile(r"<thinking>(.*?)</thinking>", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_LN7 = math.log(7)

#: An invalid trace earns at most this much, so a strictly valid one (1.0) always ranks above.
PARTIAL_CAP = 0.9


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the summed GRPO reward; the first three are the authors'."""

    format: float = 0.1
    depth: float = 0.2
    semantic: float = 0.7
    protocol: float = 0.0


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the last assistant turn of a conversation."""
    if isinstance(completion, str):
        return completion
    text = turn_text(completion)
    if text is None:
        raise TypeError("a completion is a string or a list of messages ending in an assistant "
                        f"turn, not {type(completion)}")
    return text


def _expect(prompts: Sequence[Any], completions: Sequence[Any]) -> None:
    assert len(prompts) == len(completions), (
        f"{len(prompts)} prompts but {len(completions)} completions")


def format_reward(prompts: Sequence[Any], completions: Sequence[Any],
                  **kwargs: Any) -> list[float | None]:
    """1 when both a <thinking> block and an <answer> block are present, else 0."""
    _expect(prompts, completions)
    out: list[float | None] = []
    for completion in completions:
        text = completion_text(completion)
        out.append(1.0 if has_blocks(text) else 0.0)
    return out


def depth(text: str, cap: int | None = None) -> float:
    """min(1, ln(n+1)/ln 7)·(1 − rr), rr = 1 − u/n; 0 below three calls.

    With `cap` (a protocol's `longest_legal_walk`), n counts at most `cap` calls in the
    length factor, so calls beyond the longest walk the protocol allows earn nothing."""
    block = _THINKING.search(text)
    names = TOOL_TAG.findall(block.group(1)) if block else []
    n = len(names)
    if n < 3:
        return 0.0
    repetition = 1 - len(set(names)) / n
    paid = n if cap is None else min(n, cap)
    return min(1.0, math.log(paid + 1) / _LN7) * (1 - repetition)


#: n at which the depth term saturates (ln 7 / ln 7 = 1): longer walks need not be measured
DEPTH_SATURATION = 6
#: walk prefixes tried when measuring a protocol's longest walk; a graph that needs more
#: (only a hand-made custom one could) is left uncapped
WALK_SEARCH_BUDGET = 200_000


@dataclass(frozen=True)
class _WalkRules:
    """A protocol's walk rules (`graph.WalkRules`), hashable: the search's cache key."""

    graph: Graph
    min_calls: int
    max_calls: int
    max_visits: int


@lru_cache(maxsize=1024)
def _longest_walk(rules: _WalkRules, limit: int) -> int | None:
    graph = rules.graph
    bound = min(rules.max_calls, limit)
    successors = {a: graph.successors(a) for a, _ in graph.edges}
    best = 0
    budget = WALK_SEARCH_BUDGET
    stack: list[tuple[str, ...]] = [(s,) for s in graph.start]
    while stack:
        budget -= 1
        if not budget:
            return None
        walk = stack.pop()
        if len(walk) > best and legal_walk(walk, rules):
            best = len(walk)
            if best == bound:
                break
        if len(walk) < bound:
            stack.extend((*walk, nxt) for nxt in successors.get(walk[-1], ())
                         if walk.count(nxt) < rules.max_visits)
    return best


def longest_legal_walk(protocol: Protocol, limit: int = DEPTH_SATURATION) -> int | None:
    """Calls in the longest walk the protocol allows (start to terminal, within its visit and
    call limits, every required tool visited), counted up to `limit`; None when the graph is
    too large to measure within `WALK_SEARCH_BUDGET` steps."""
    return _longest_walk(_WalkRules(protocol.graph, protocol.min_calls, protocol.max_calls,
                                    protocol.max_visits), limit)


def depth_reward(prompts: Sequence[Any], completions: Sequence[Any],
                 **kwargs: Any) -> list[float | None]:
    """Tool-call depth with a penalty for repeated tools (the authors' definition)."""
    _expect(prompts, completions)
    return [depth(completion_text(c)) for c in completions]


_PROTOCOLS = ProtocolCache()  # rows of a batch share protocols: each is resolved once


def row_protocol(doc: Any) -> Protocol:
    """The resolved protocol of a row's `protocol` (a document or its JSON), resolved once per
    distinct document; raises `ProtocolInvalid`."""
    return _PROTOCOLS.get(doc)


def has_blocks(text: str) -> bool:
    """Both a closed <thinking> block and a closed <answer> block (the authors' format test)."""
    return bool(_THINKING.search(text) and _ANSWER.search(text))


def protocol_adherence(text: str, protocol: Any) -> float:
    """1.0 strictly valid; else 0.9 · mean(legal walk prefix share, checked-output share);
    0 when unparseable (no closed <thinking> and <answer> blocks, or no call at all).
    `protocol` is a document, its JSON, or a resolved `Protocol`. Raises `ProtocolInvalid`
    for an unusable protocol."""
    resolved = protocol if isinstance(protocol, Protocol) else row_protocol(protocol)
    if not has_blocks(text):
        return 0.0
    verdict = check_text(text, resolved, "strict")
    if verdict.valid:
        return 1.0
    n = len(verdict.trace.calls)
    if not n:
        return 0.0
    walk = verdict.legal_prefix / n
    typed = verdict.typed_valid / verdict.typed_total if verdict.typed_total else 0.0
    return PARTIAL_CAP * (walk + typed) / 2


def protocol_reward(prompts: Sequence[Any], completions: Sequence[Any],
                    protocol: Sequence[Any] | None = None, **kwargs: Any) -> list[float | None]:
    """Adherence to the row's `protocol` column (None where that protocol is unusable)."""
    _expect(prompts, completions)
    if protocol is None:
        raise ValueError("protocol_reward needs the dataset's `protocol` column")
    assert len(protocol) == len(completions), "one protocol per completion"
    out: list[float | None] = []
    for completion, doc in zip(completions, protocol, strict=True):
        try:
            out.append(protocol_adherence(completion_text(completion), doc))
        except ProtocolInvalid as exc:
            log.warning("protocol_reward: the row's protocol is unusable (%s); no reward",
                        "; ".join(i.message for i in exc.issues[:3]))
            out.append(None)
    return out


def prompt_question(prompt: Any) -> str:
    """The text of the last user turn of a conversational prompt (or the prompt itself)."""
    if isinstance(prompt, str):
        return prompt
    return turn_text(prompt, "user") or ""


_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"RIFF", "image/webp"))


def image_payload(image: Any) -> tuple[bytes, str] | None:
    """(encoded bytes, MIME type) for the judge from a PIL image, raw bytes or {"bytes"}."""
    if image is None:
        return None
    if isinstance(image, dict):
        image = image.get("bytes")
    if isinstance(image, bytes | bytearray):
        data = bytes(image)
        mime = next((m for magic, m in _MAGIC if data.startswith(magic)), "image/png")
        return data, mime
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "image/png"


def _image_key(image: Any) -> Hashable:
    """Equal for images whose `image_payload` is equal: raw bytes as they are; a PIL image by
    what its PNG encoding reads (mode, size, pixels, palette, transparency, ICC profile)."""
    if image is None:
        return None
    if isinstance(image, dict):
        image = image.get("bytes")
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    palette = image.palette
    return (image.mode, image.size, hashlib.sha256(image.tobytes()).digest(),
            None if palette is None else (palette.mode, palette.tobytes()),
            repr(image.info.get("transparency")), image.info.get("icc_profile"))


def image_payloads(images: Sequence[Any]) -> list[tuple[bytes, str] | None]:
    """`image_payload` of each image, each distinct image encoded once: GRPO hands every
    completion of a prompt its own decoded copy of the prompt's image."""
    keys = [_image_key(image) for image in images]
    done: dict[Hashable, tuple[bytes, str] | None] = {}
    for key, image in zip(keys, images, strict=True):
        if key not in done:
            done[key] = image_payload(image)
    return [done[key] for key in keys]


class SemanticReward:
    """The authors' judge-gated semantic reward, asking an OpenAI-compatible judge.

    The backend bounds the judge calls in flight (`ModelEndpoint.concurrency`). A failed call
    (transport error after the backend's retries, or a reply without four in-range scores) is
    counted in `failures`, logged, reported to TRL through `log_metric`, and scored None —
    never a made-up number.
    """

    __name__ = "semantic_reward"

    def __init__(self, backend: ChatBackend, model: str, *,
                 sampling: dict[str, Any] | None = None, send_image: bool = True) -> None:
        self.backend = backend
        self.model = model
        self.sampling = dict(sampling or {})
        self.send_image = send_image
        self.calls = 0
        self.failures: Counter[str] = Counter()

    async def ask(self, question: str, text: str,
                  payload: tuple[bytes, str] | None) -> SemanticScores | None:
        """The judge's four scores for one completion; None when the call failed (counted in
        `failures` and logged)."""
        request = semantic_request(self.model, question, text,
                                   None if payload is None else payload[0],
                                   "image/png" if payload is None else payload[1],
                                   self.sampling)
        self.calls += 1
        try:
            result = await self.backend.complete(request)
            return parse_scores(result.content)
        except CallFailed as exc:
            reason = exc.reason
        except JudgeReplyInvalid as exc:
            reason = "bad_reply"
            log.debug("semantic judge reply rejected: %s", exc)
        self.failures[reason] += 1
        log.warning("semantic judge failed (%s); the completion gets no semantic reward "
                    "(%d failures so far)", reason, sum(self.failures.values()))
        return None

    async def _score(self, question: str, text: str,
                     payload: tuple[bytes, str] | None) -> float | None:
        if not has_blocks(text):
            return 0.0  # a missing tag scores 0 without asking the judge
        scores = await self.ask(question, text, payload)
        return None if scores is None else gated_semantic(scores)

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Any],
                       images: Sequence[Any] | None = None,
                       log_metric: Callable[[str, float], None] | None = None,
                       **kwargs: Any) -> list[float | None]:
        _expect(prompts, completions)
        firsts = [imgs[0] if imgs else None for imgs in images] if images is not None else \
            [None] * len(prompts)
        texts = [completion_text(c) for c in completions]
        # only what the judge will see is encoded, once per distinct image, off the event loop
        wanted = [img if self.send_image and has_blocks(t) else None
                  for t, img in zip(texts, firsts, strict=True)]
        payloads = await asyncio.to_thread(image_payloads, wanted)
        before = sum(self.failures.values())
        scores = await asyncio.gather(*(
            self._score(prompt_question(p), text, payload)
            for p, text, payload in zip(prompts, texts, payloads, strict=True)))
        if log_metric is not None:
            log_metric("semantic/judge_failures", float(sum(self.failures.values()) - before))
        return list(scores)

    async def aclose(self) -> None:
        await self.backend.aclose()
