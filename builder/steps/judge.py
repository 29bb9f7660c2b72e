"""Judge: the blind judge scores every valid candidate (when the build has a judge), the best
candidate is chosen (`stages.respond.select_best`), and the item is rejected when the best one
is below the thresholds. Failed when no valid candidate could be judged."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ...validation.vocabulary import DECLINING
from ..assemble import trace_decision
from ..backends.base import CallFailed
from ..config import BuildConfig
from ..stages.judge import judge_exchange, judge_request
from ..stages.respond import Candidate, select_best
from .item import Context, ItemStage, ItemState, Rejection


class Judge(ItemStage):
    name = "judge"
    unit = "score"
    counts_yield = True

    def work(self, config: BuildConfig) -> int:
        return sum(r.samples for r in config.responders) if config.judge else 0

    async def run(self, state: ItemState, build: Context) -> ItemState | Rejection:
        config = build.config
        valid = [c for c in state.candidates if c.valid]
        judged = build.roles.judge is not None
        if judged:
            await asyncio.gather(*(self._judge(state, build, c) for c in valid))
            if all(c.judgement is None for c in valid):
                return Rejection(str(valid[0].judge_failure), True,
                                 "no valid candidate could be judged")
        best = select_best(state.candidates, config.thresholds)
        assert best is not None
        models = dict(state.models)
        if judged:
            assert config.judge is not None
            models["judge"] = (best.judgement.model if best.judgement else "") \
                or config.judge.model
            if best.judgement is None or not best.judgement.passes(config.thresholds):
                build.ledger.reject(self.name, ["below_threshold"])
                return Rejection("below_threshold")
        models["responder"] = best.served or best.model
        return replace(state, best=best, models=models,
                       decision=trace_decision(best.trace, state.document["label"]))

    async def _judge(self, state: ItemState, build: Context, candidate: Candidate) -> None:
        judge, item, doc = build.config.judge, state.item, state.document
        assert judge is not None and build.roles.judge is not None
        request = judge_request(judge.model, image=item.image, image_name=item.image_name,
                                question=item.question, response=candidate.text,
                                label=doc["label"], risk_category=doc["risk_category"],
                                show_reference=False, description=item.description,
                                sampling=build.sampling(judge))
        exchange = judge_exchange(build.roles.judge, request)
        try:
            reading = await exchange.converse(build.config.judge_attempts)
        except CallFailed as exc:
            candidate.judge_failure = exc.reason
        else:
            if reading.value is not None:
                candidate.judgement = replace(reading.value, model=reading.model)
                build.judged.add(candidate.judgement, doc["label"], trace_decision(
                    candidate.trace, doc["label"]) in DECLINING,
                    build.config.thresholds)
            else:
                candidate.judge_failure = "bad_output"
                build.ledger.reject(self.name, ["judge_output_invalid"], item=item.source_id,
                                    problem="; ".join(reading.problems))
        build.yields[self.name][exchange.outcome] += 1
        build.progress.advance(self.name)
