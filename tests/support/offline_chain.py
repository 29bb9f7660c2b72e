"""The plan → respond → judge chain run in-process on the offline backend, for tests that need
real protocols and gold traces for many items (no HTTP, no cache)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from safer_toolkit.builder.backends.offline import OfflineBackend
from safer_toolkit.builder.prompts import render_toolkit_instruction
from safer_toolkit.builder.sources.base import SourceItem
from safer_toolkit.builder.stages.judge import Judgement, judge_request, judge_response
from safer_toolkit.builder.stages.plan import plan_item
from safer_toolkit.builder.stages.respond import Candidate, Responder, sample_candidates
from safer_toolkit.validation import Protocol, resolve_protocol

PLANNER = {"temperature": 0.7, "seed": 0}
RESPONDER = {"temperature": 0.8}


@dataclass
class Chain:
    item: SourceItem
    doc: dict[str, Any]
    protocol: Protocol
    plan_attempts: int
    candidates: list[Candidate]
    judgements: list[Judgement]


async def _chain(backend: OfflineBackend, item: SourceItem, seed: int, samples: int) -> Chain:
    planned = await plan_item(backend, "safer-offline-planner", item, {**PLANNER, "seed": seed}, 3)
    assert planned.protocol is not None, [a.problems for a in planned.rejected]
    doc = planned.protocol
    protocol = resolve_protocol(doc)
    candidates = (await sample_candidates(
        [Responder(backend, "safer-offline-responder", RESPONDER, samples)], item, protocol,
        render_toolkit_instruction(doc), seed, 0)).candidates
    judgements = []
    for c in candidates:
        request = judge_request("safer-offline-judge", image=item.image,  # blind, as the build
                                image_name=item.image_name, question=item.question,
                                response=c.text, label=doc["label"],
                                risk_category=doc["risk_category"], show_reference=False,
                                description=item.description)
        judgements.append(await judge_response(backend, request, 1))
    return Chain(item, doc, protocol, 1 + len(planned.rejected), candidates, judgements)


def run_chain(items: list[SourceItem], seed: int = 0, samples: int = 2) -> list[Chain]:
    backend = OfflineBackend()

    async def run_all() -> list[Chain]:
        return [await _chain(backend, item, seed, samples) for item in items]

    return asyncio.run(run_all())
