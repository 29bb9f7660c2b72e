"""Respond: responders write text-form traces under the protocol; the validator keeps them honest.

Every candidate is checked strictly (`check_text`). Several responders and samples compete and
the best one wins (`select_best`): a valid trace first, then one that passes the judge's
thresholds, then the higher judge total, then fewer warnings, then the earlier candidate
(responder order, then sample order) — a total order, so the choice is deterministic.

The responder's user turn carries the planner's reference assessment (label, category) as a
separate part. It is privileged information for the teacher: dataset rows keep only the image
and the question, so the trained model has to reach the decision from its own analysis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from safer_toolkit.builder.backends.base import ChatBackend, ChatRequest
from safer_toolkit.builder.prompts import template
from safer_toolkit.builder.prompts.wire import (
    HINT_HEADER,
    WRONG_DECISION_HEADER,
    payload_part,
    text_part,
)
from safer_toolkit.builder.sources.base import SourceItem
from safer_toolkit.builder.stages.content import description_parts, image_content
from safer_toolkit.builder.stages.judge import Judgement
from safer_toolkit.builder.stages.retry import with_feedback
from safer_toolkit.validation import Issue, Protocol, Trace, check_text

REPAIR_INSTRUCTION = ("Write the whole response again, following the protocol and the output "
                      "format exactly.")


@dataclass(frozen=True)
class Responder:
    """One responder model and how many samples it contributes per item."""

    backend: ChatBackend
    model: str
    sampling: Mapping[str, Any]
    samples: int = 1


@dataclass
class Candidate:
    """One responder reply and what the validator and the judge made of it."""

    model: str
    order: tuple[int, int]  # (responder index, sample index): the deterministic tie-break
    text: str
    trace: Trace = field(repr=False)  # `text` as the validator parsed it (strict)
    issues: list[Issue]
    request: ChatRequest = field(repr=False)
    judgement: Judgement | None = None
    judge_failure: str | None = None
    served: str = ""  # the model the endpoint answered as (`model` is the one asked for)

    @property
    def valid(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    @property
    def codes(self) -> list[str]:
        return sorted({i.code for i in self.issues if i.severity == "error"})

    @property
    def warnings(self) -> int:
        return sum(i.severity == "warning" for i in self.issues)


def respond_request(model: str, item: SourceItem, protocol_doc: Mapping[str, Any],
                    instruction: str, sampling: Mapping[str, Any]) -> ChatRequest:
    """One responder call: the toolkit instruction, the image and question, the reference."""
    hint = {"label": protocol_doc["label"], "risk_category": protocol_doc["risk_category"]}
    messages = [
        {"role": "system", "content": instruction},
        {"role": "user", "content": [image_content(item.image, item.image_name),
                                     text_part(item.question), payload_part(HINT_HEADER, hint),
                                     *description_parts(item.description)]},
    ]
    return ChatRequest(model, messages, dict(sampling), None,
                       template("toolkit_instruction").version)


def wrong_decision_request(model: str, item: SourceItem, protocol_doc: Mapping[str, Any],
                           instruction: str, sampling: Mapping[str, Any]) -> ChatRequest:
    """The responder call for a DPO `wrong_decision` side: the gold request plus what to write —
    the analysis faithful to the item, the opposite decision (compliance with a harmful request,
    refusal of a benign one) and the full answer that decision gives."""
    decision = "comply" if protocol_doc["label"] == "harmful" else "refuse"
    brief = {"decision": decision,
             "instruction": "This is the rejected side of a preference pair. Keep every "
                            "perception and reasoning call faithful to the item, then end "
                            f"with the SAFETY-GATE verdict \"{decision}\" and write, fluently "
                            "and in full, the answer that verdict gives."}
    request = respond_request(model, item, protocol_doc, instruction, sampling)
    messages = [*request.messages[:-1], {**request.messages[-1], "content": [
        *request.messages[-1]["content"], payload_part(WRONG_DECISION_HEADER, brief)]}]
    return ChatRequest(model, messages, request.sampling, None, request.template_version)


async def write_wrong_decision(responder: Responder, item: SourceItem,
                               protocol_doc: Mapping[str, Any], instruction: str,
                               seed: int) -> str:
    """The responder's `wrong_decision` side for one DPO item (its text; `CallFailed`
    propagates)."""
    request = wrong_decision_request(responder.model, item, protocol_doc, instruction,
                                     sample_sampling(responder.sampling, seed, 0))
    return (await responder.backend.complete(request)).content


def sample_sampling(sampling: Mapping[str, Any], seed: int, sample: int) -> dict[str, Any]:
    """A sample's sampling parameters: its own seed, so each sample is its own cached call."""
    return {**sampling, "seed": seed + sample}


async def _candidate(responder: Responder, order: tuple[int, int], request: ChatRequest,
                     protocol: Protocol) -> Candidate:
    result = await responder.backend.complete(request)
    verdict = check_text(result.content, protocol, "strict")
    return Candidate(responder.model, order, result.content, verdict.trace, verdict.issues,
                     request, served=result.model)


async def sample_candidates(responders: Sequence[Responder], item: SourceItem,
                            protocol_doc: Mapping[str, Any], protocol: Protocol,
                            instruction: str, seed: int, repair_attempts: int
                            ) -> list[Candidate]:
    """Every responder's samples, validated; then repairs while none is valid.

    A repair sends the earliest invalid candidate back with the validator's messages.
    `CallFailed` from any call propagates (the item failed; a rerun resends only that call).
    """
    jobs = []
    for r_index, responder in enumerate(responders):
        for s in range(responder.samples):
            sampling = sample_sampling(responder.sampling, seed, s)
            request = respond_request(responder.model, item, protocol_doc, instruction,
                                      sampling)
            jobs.append(_candidate(responder, (r_index, s), request, protocol))
    candidates = list(await asyncio.gather(*jobs))
    for attempt in range(repair_attempts):
        if any(c.valid for c in candidates):
            break
        target = candidates[-1] if attempt else candidates[0]  # chain repairs on the latest
        request = with_feedback(target.request, target.text,
                                [f"{i.code}: {i.message}" for i in target.issues
                                 if i.severity == "error"], REPAIR_INSTRUCTION)
        responder = responders[target.order[0]]
        candidates.append(await _candidate(responder, (target.order[0], 1000 + attempt),
                                           request, protocol))
    return candidates


def rank_key(candidate: Candidate, thresholds: Mapping[str, int] | None) -> tuple[Any, ...]:
    """Sort key, best first (see the module docstring)."""
    judged = candidate.judgement
    passes = judged is not None and judged.passes(thresholds or {})
    return (not candidate.valid, not passes, -judged.total if judged else 0,
            candidate.warnings, candidate.order)


def select_best(candidates: Sequence[Candidate],
                thresholds: Mapping[str, int] | None) -> Candidate | None:
    """The winning candidate, or None when there are none. Gold-ness is the caller's check."""
    return min(candidates, key=lambda c: rank_key(c, thresholds), default=None)
