"""Per-split recipes: the stages each split's items go through, declared once.

The recipes drive the items (`pipeline.Build.process` runs an item's split's stages in order),
the progress bars (`stage_totals`, `stage_units`) and the funnel in the manifest and the card
(`funnel`: per split and stage, the items in, out, and stopped per reason). Adding a stage is
one module in `builder/steps/` and its name in the recipes below (its progress bar, yield and
funnel rows follow); adding a split is one line here (plus what a split is beyond its stages:
its size in `config.SPLITS`, its rows in `assemble.rows_for`, its features in
`release.features`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .config import BuildConfig
from .steps.item import ItemStage, Rejection
from .steps.judge import Judge
from .steps.perturb import Perturb
from .steps.plan import Plan
from .steps.respond import Respond

PLAN, RESPOND, JUDGE, PERTURB = Plan(), Respond(), Judge(), Perturb()

RECIPES: dict[str, tuple[ItemStage, ...]] = {
    "sft": (PLAN, RESPOND, JUDGE),
    "dpo": (PLAN, RESPOND, JUDGE, PERTURB),
    "grpo": (PLAN,),
    "eval": (PLAN, RESPOND, JUDGE),
}


def stages() -> dict[str, ItemStage]:
    """Every stage once, in recipe order (the order of the progress bars and the yield)."""
    return {s.name: s for recipe in RECIPES.values() for s in recipe}


def yield_stages() -> tuple[str, ...]:
    """The stages whose model exchanges the manifest's yield counts (`stages.ask.OUTCOMES`)."""
    return tuple(name for name, s in stages().items() if s.counts_yield)

#: A funnel tally: split → stage → "in", "out", "rejected:REASON", "failed:REASON" → items.
Funnel = dict[str, dict[str, Counter[str]]]


def stage_totals(config: BuildConfig) -> dict[str, int]:
    """The work each stage's progress bar expects: per split, its prompts times the stage's
    units per item, for every stage of its recipe."""
    prompts = config.prompt_counts()
    totals = dict.fromkeys(stages(), 0)
    for split, recipe in RECIPES.items():
        for stage in recipe:
            totals[stage.name] += prompts[split] * stage.work(config)
    return totals


def stage_units() -> dict[str, str]:
    """What each stage's progress bar counts."""
    return {name: s.unit for name, s in stages().items()}


def count(funnel: Funnel, split: str, stage: str, key: str) -> None:
    funnel.setdefault(split, {}).setdefault(stage, Counter())[key] += 1


def stopped(funnel: Funnel, split: str, stage: str, rejection: Rejection) -> None:
    """Count an item that `stage` stopped (its reason, as rejected or failed)."""
    count(funnel, split, stage, f"{'failed' if rejection.failed else 'rejected'}:"
                                f"{rejection.reason}")


def funnel_json(funnel: Funnel) -> dict[str, list[dict[str, Any]]]:
    """The manifest's `funnel`: per split, its recipe's stages in order, each with the items
    in and out and the items stopped there per reason (rejected, failed)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for split, recipe in RECIPES.items():
        stages = []
        for stage in recipe:
            tally = funnel.get(split, {}).get(stage.name, Counter())
            entry: dict[str, Any] = {"stage": stage.name, "in": tally["in"], "out": tally["out"]}
            for kind in ("rejected", "failed"):
                entry[kind] = {key.partition(":")[2]: n for key, n in sorted(tally.items())
                               if key.startswith(f"{kind}:")}
            stages.append(entry)
        out[split] = stages
    return out
