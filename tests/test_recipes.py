"""Per-split recipes: each split's stages declared once drive the items, the progress totals and
the funnel in the manifest and the card; a new stage is one class and one recipe line."""

from __future__ import annotations

import asyncio
import hashlib
import itertools

import pytest

from safer_toolkit.builder import recipes
from safer_toolkit.builder.config import SPLITS, load_config
from safer_toolkit.builder.pipeline import build
from safer_toolkit.builder.release import features
from safer_toolkit.builder.steps.item import Context, ItemStage, ItemState, Rejection
from tests.support.build_config import write_config


def test_each_split_runs_its_recipe():
    assert {split: [s.name for s in stages] for split, stages in recipes.RECIPES.items()} == {
        "sft": ["plan", "respond", "judge"],
        "dpo": ["plan", "respond", "judge", "perturb"],
        "grpo": ["plan"],
        "eval": ["plan", "respond", "judge"]}
    assert tuple(recipes.RECIPES) == SPLITS and set(recipes.RECIPES) == set(features.SPLITS)
    assert list(recipes.stages()) == ["plan", "respond", "judge", "perturb"]
    assert recipes.yield_stages() == ("plan", "respond", "judge")


def test_progress_totals_follow_the_recipes(tmp_path):
    config = load_config(write_config(tmp_path / "b.toml", sft=6, dpo=6, grpo=4, eval_=4,
                                      samples=2))
    # prompts: sft 6, dpo 6 pairs / 3 per prompt = 2, grpo 4, eval 4; 2 samples per item
    assert recipes.stage_totals(config) == {"plan": 16, "respond": 24, "judge": 24,
                                            "perturb": 6}
    assert recipes.stage_units() == {"plan": "item", "respond": "trace", "judge": "score",
                                     "perturb": "pair"}


class Screen(ItemStage):
    """A stage a user might add: drops about half the items, by a hash of their id."""

    name = "screen"

    async def run(self, state: ItemState, build: Context) -> ItemState | Rejection:
        assert state.protocol is not None  # plan ran first
        if hashlib.sha256(state.item.source_id.encode()).digest()[0] % 2:
            return Rejection("odd_hash")
        return state


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipes")
    config = load_config(write_config(tmp / "b.toml", sft=3, dpo=3, grpo=6, eval_=2,
                                      samples=1, reserve=3.0))
    with pytest.MonkeyPatch.context() as mp:  # the one recipe line
        mp.setitem(recipes.RECIPES, "grpo", (recipes.PLAN, Screen()))
        result = asyncio.run(build(config, tmp / "out", progress=False))
    return result, tmp / "out"


def test_a_new_stage_runs_and_its_rejections_are_counted(screened):
    result, _ = screened
    counts = result.manifest["counts"]
    grpo = counts["funnel"]["grpo"]
    assert [s["stage"] for s in grpo] == ["plan", "screen"]
    plan, screen = grpo
    assert plan["out"] == screen["in"] and screen["rejected"]["odd_hash"] > 0
    assert screen["in"] == screen["out"] + screen["rejected"]["odd_hash"]
    assert counts["reasons"]["screen:odd_hash"] == screen["rejected"]["odd_hash"]
    assert counts["splits"]["grpo"]["rows"] == 6 == screen["out"]


def test_the_funnel_accounts_for_every_item(screened):
    result, out = screened
    counts = result.manifest["counts"]
    for split, stages in counts["funnel"].items():
        assert stages[0]["in"] == counts["splits"][split]["candidates"]
        for before, after in itertools.pairwise(stages):
            assert before["out"] == after["in"]
        for s in stages:
            assert s["in"] == s["out"] + sum(s["rejected"].values()) + sum(s["failed"].values())
        assert stages[-1]["out"] == counts["splits"][split]["kept"]
    card = (out / "README.md").read_text()
    assert "**Stage funnel**" in card and "| `grpo` | `screen` |" in card
