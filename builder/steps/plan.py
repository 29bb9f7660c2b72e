"""Plan: the item's protocol (`stages.plan`), resolved once for every stage that follows, and
the toolkit instruction rendered from it — what the responders are given is what the row's
system turn says. Rejected with the codes of the planner's last attempt."""

from __future__ import annotations

from dataclasses import replace

from ..backends.base import CallFailed
from ..prompts import render_toolkit_instruction
from ..stages.plan import plan_item
from .item import Context, ItemStage, ItemState, Rejection


class Plan(ItemStage):
    name = "plan"
    counts_yield = True

    async def run(self, state: ItemState, build: Context) -> ItemState | Rejection:
        config, item = build.config, state.item
        try:
            plan = await plan_item(build.roles.planner, config.planner.model, item,
                                   build.sampling(config.planner), config.plan_attempts)
        except CallFailed as exc:
            build.yields[self.name]["failed"] += 1
            return Rejection.call_failed(exc)
        build.yields[self.name][plan.outcome] += 1
        build.progress.advance(self.name)
        for attempt in plan.rejected:
            build.ledger.reject(self.name, attempt.codes, split=state.split,
                                item=item.source_id, codes=attempt.codes,
                                problems=attempt.problems[:12])
        if plan.resolved is None:
            return Rejection("+".join(plan.rejected[-1].codes))
        return replace(state, protocol=plan.resolved,
                       instruction=render_toolkit_instruction(plan.resolved),
                       models={"planner": plan.model or config.planner.model})
