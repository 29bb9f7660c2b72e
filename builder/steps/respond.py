"""Respond: every responder's samples, validated, and repairs while none is valid
(`stages.respond`); each invalid candidate is logged. The item is rejected with its candidates'
codes when none is valid (failed when a call failure cost it the chance)."""

from __future__ import annotations

from dataclasses import replace

from ..config import BuildConfig
from ..stages.respond import sample_candidates
from .item import Context, ItemStage, ItemState, Rejection


class Respond(ItemStage):
    name = "respond"
    unit = "trace"
    counts_yield = True

    def work(self, config: BuildConfig) -> int:
        return sum(r.samples for r in config.responders)

    async def run(self, state: ItemState, build: Context) -> ItemState | Rejection:
        config, item = build.config, state.item
        assert state.protocol is not None  # plan ran first
        sampled = await sample_candidates(build.roles.responders, item, state.protocol,
                                          state.instruction, config.seed,
                                          config.repair_attempts)
        build.yields[self.name].update(sampled.outcomes)
        candidates = sampled.candidates
        build.progress.advance(self.name, len(candidates))
        for c in candidates:
            if not c.valid:
                build.ledger.reject(self.name, c.codes, split=state.split, item=item.source_id,
                                    model=c.model, sample=c.order[1], codes=c.codes,
                                    text=c.text[:20_000])
        if not any(c.valid for c in candidates):
            if sampled.failure is not None:
                return Rejection.call_failed(sampled.failure)
            return Rejection("+".join(sorted({code for c in candidates for code in c.codes})))
        return replace(state, candidates=tuple(candidates))
