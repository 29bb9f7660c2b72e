"""Respond: responders write text-form traces under the protocol; the validator keeps them honest.

Every reply is read by the shared trace extractor (fences, chatter and `<think>` blocks removed,
tool names matched up to case and separator, near-JSON call bodies repaired, unknown output keys
dropped — each repair counted), re-rendered in the canonical text form, and that text is checked
strictly (`check_text`): it is what a row releases. Several responders and samples compete and
the best one wins (`select_best`): a valid trace first, then one that passes the judge's
thresholds, then the higher judge total, then fewer warnings, then the earlier candidate
(responder order, then sample order) — a total order, so the choice is deterministic.

The responder's user turn carries the planner's reference assessment (label, category) as a
separate part. It is privileged information for the teacher: dataset rows keep only the image
and the question, so the trained model has to reach the decision from its own analysis.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...validation import Issue, Protocol, Trace, Verdict, check_text
from ..backends.base import CallFailed, ChatBackend, ChatRequest
from ..prompts import template
from ..prompts.wire import (
    HINT_HEADER,
    WRONG_DECISION_HEADER,
    payload_part,
    text_part,
)
from ..sources.base import SourceItem
from .ask import Asker, Exchange, Reading
from .constrain import GrammarConstraint
from .content import description_parts, image_content
from .extract import extract_trace
from .judge import Judgement

REPAIR_INSTRUCTION = ("Write the whole response again, following the protocol and the output "
                      "format exactly.")
#: Sample indexes of repaired candidates start here (after every first-round sample).
REPAIR_ORDER = 1000


@dataclass(frozen=True)
class Responder:
    """One responder model, how many samples it contributes per item, and its limits;
    `grammar`: its requests carry the protocol's trace grammar (the preflight's choice)."""

    backend: ChatBackend
    model: str
    sampling: Mapping[str, Any]
    samples: int = 1
    max_tokens_cap: int = 0
    role: str = "responder"
    images: bool = True
    grammar: GrammarConstraint | None = None

    @property
    def asker(self) -> Asker:
        return Asker(self.backend, self.max_tokens_cap, role=self.role, images=self.images)


@dataclass
class Candidate:
    """One responder reply and what the validator and the judge made of it."""

    model: str
    order: tuple[int, int]  # (responder index, sample index): the deterministic tie-break
    text: str  # the reply in the canonical text form (what a row releases)
    trace: Trace = field(repr=False)  # `text` as the validator parsed it (strict)
    issues: list[Issue]
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
    messages: list[dict[str, Any]] = [
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


async def write_wrong_decision(responder: Responder, item: SourceItem, protocol: Protocol,
                               instruction: str, seed: int, sample: int = 0) -> str:
    """The responder's `wrong_decision` side for one DPO item, asked with the sampling of the
    gold candidate's `sample` and read like any reply (its canonical text: the perturbation
    keeps it only when the validator catches the decision); `CallFailed` propagates. It is
    asked without the trace grammar, which admits only the decisions the label allows."""
    request = wrong_decision_request(responder.model, item, protocol.document, instruction,
                                     sample_sampling(responder.sampling, seed, sample))
    exchange = Exchange(responder.asker, request, lambda text: read_trace(text, protocol),
                        REPAIR_INSTRUCTION)
    reading = await exchange.ask()
    assert reading.value is not None
    return reading.value[0]


def sample_sampling(sampling: Mapping[str, Any], seed: int, sample: int) -> dict[str, Any]:
    """A sample's sampling parameters: its own seed, so each sample is its own cached call."""
    return {**sampling, "seed": seed + sample}


def read_trace(text: str, protocol: Protocol) -> Reading[tuple[str, Verdict]]:
    """A responder reply: its canonical text and the strict verdict on it (kept also when
    rejected, for the log), rejected with the validator's codes and messages."""
    extracted = extract_trace(text, protocol)
    verdict = check_text(extracted.value, protocol, "strict")
    errors = [i for i in verdict.issues if i.severity == "error"]
    return Reading((extracted.value, verdict), sorted({i.code for i in errors}),
                   [f"{i.code}: {i.message}" for i in errors], extracted.repairs)


@dataclass(frozen=True)
class RespondRow:
    """What a responder is asked about: an item under its protocol, and the sample's seed."""

    item: SourceItem
    protocol: Protocol
    instruction: str
    sampling: Mapping[str, Any]


@dataclass(frozen=True)
class RespondStage:
    """A responder role: the traced request for a row, and its reader."""

    model: str
    name: str = "respond"
    instruction: str = REPAIR_INSTRUCTION
    grammar: GrammarConstraint | None = None

    def request(self, row: RespondRow) -> ChatRequest:
        request = respond_request(self.model, row.item, row.protocol.document, row.instruction,
                                  row.sampling)
        return request if self.grammar is None else self.grammar.apply(request, row.protocol)

    def parse(self, row: RespondRow, text: str) -> Reading[tuple[str, Verdict]]:
        return read_trace(text, row.protocol)


@dataclass
class Sampled:
    """Every candidate an item's responders produced, each exchange's yield, and the first
    call failure (which fails the item only when no candidate is valid)."""

    candidates: list[Candidate]
    outcomes: Counter[str] = field(default_factory=Counter)
    failure: CallFailed | None = None


def _candidate(model: str, order: tuple[int, int], reading: Reading[tuple[str, Verdict]]
               ) -> Candidate:
    assert reading.value is not None
    text, verdict = reading.value
    return Candidate(model, order, text, verdict.trace, verdict.issues, served=reading.model)


async def sample_candidates(responders: Sequence[Responder], item: SourceItem,
                            protocol: Protocol, instruction: str, seed: int,
                            repair_attempts: int) -> Sampled:
    """Every responder's samples, read and validated; then repairs while none is valid.

    A repair continues the earliest rejected sample's conversation with the validator's
    messages (the same exchange, so repairs chain on the latest reply). A call that fails
    costs its sample only.
    """
    for grammar in {r.grammar for r in responders if r.grammar is not None}:
        await grammar.prepare(protocol)
    exchanges: list[tuple[Responder, tuple[int, int], Exchange[tuple[str, Verdict]]]] = []
    for r_index, responder in enumerate(responders):
        stage = RespondStage(responder.model, grammar=responder.grammar)
        for s in range(responder.samples):
            row = RespondRow(item, protocol, instruction,
                             sample_sampling(responder.sampling, seed, s))
            exchanges.append((responder, (r_index, s),
                              Exchange.of(responder.asker, stage, row)))
    replies = await asyncio.gather(*(ex.ask() for _, _, ex in exchanges),
                                   return_exceptions=True)
    sampled = Sampled([])
    for (responder, order, _), reply in zip(exchanges, replies, strict=True):
        if isinstance(reply, CallFailed):
            sampled.failure = sampled.failure or reply
        elif isinstance(reply, BaseException):
            raise reply
        else:
            sampled.candidates.append(_candidate(responder.model, order, reply))
    target = next(((r, o, ex) for r, o, ex in exchanges if ex.readings), None)
    for attempt in range(repair_attempts):
        if target is None or any(c.valid for c in sampled.candidates):
            break
        responder, order, exchange = target
        exchange.feedback()
        try:
            reading = await exchange.ask()
        except CallFailed as failure:
            sampled.failure = sampled.failure or failure
            break
        sampled.candidates.append(_candidate(responder.model, (order[0], REPAIR_ORDER + attempt),
                                             reading))
    sampled.outcomes.update(ex.outcome for _, _, ex in exchanges)
    return sampled


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
