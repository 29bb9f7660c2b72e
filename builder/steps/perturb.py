"""Perturb: the DPO rejected sides of the kept trace (`stages.perturb`), with the responder's
wrong-decision side when the item's kinds use one. Rejected when the validator catches fewer
sides than each prompt needs."""

from __future__ import annotations

from dataclasses import replace

from ..backends.base import CallFailed
from ..config import BuildConfig
from ..stages.perturb import kind_order, perturb
from ..stages.respond import REPAIR_ORDER, write_wrong_decision
from .item import Context, ItemStage, ItemState, Rejection


class Perturb(ItemStage):
    name = "perturb"
    unit = "pair"

    def work(self, config: BuildConfig) -> int:
        return config.rejected_per_prompt

    async def run(self, state: ItemState, build: Context) -> ItemState | Rejection:
        config, item, best = build.config, state.item, state.best
        assert best is not None and state.protocol is not None
        key = f"{item.source_dataset}/{item.source_id}"
        wrong = None  # the responder writes the wrong-decision side when the item uses one
        if "wrong_decision" in kind_order(config.seed, key)[:config.rejected_per_prompt]:
            try:
                wrong = await write_wrong_decision(
                    build.roles.responders[best.order[0]], item, state.protocol,
                    state.instruction, config.seed,
                    best.order[1] if best.order[1] < REPAIR_ORDER else 0)
            except CallFailed as exc:
                return Rejection.call_failed(exc)
        rejected = perturb(best.trace, state.protocol, key=key,
                           seed=config.seed, count=config.rejected_per_prompt,
                           wrong_decision=wrong)
        if len(rejected) < config.rejected_per_prompt:
            return Rejection("too_few_caught")
        build.progress.advance(self.name, len(rejected))
        return replace(state, rejected=tuple(rejected))
