"""Figures of eval contamination: is the held-out set really held out from training?

- `eval_near_duplicates`: the share of eval questions that have a near-duplicate among the
  training questions (`sft`, `dpo`, `grpo`): word-3-gram Jaccard similarity ≥ `JACCARD`, words
  taken from the normalised question (`normalise_question`: NFKC, casefold, punctuation folded).
  A question of fewer than three words is compared on its words. Found exactly, without
  comparing all pairs, by prefix filtering: two sets with Jaccard ≥ t share a token among the
  first |s| − ⌈t·|s|⌉ + 1 tokens of each, rarest first.
- `eval_goal_overlap`: the share of eval rows whose `source_group` (the goal or question
  template the source item was made from) also occurs in a training config.
- `train_near_duplicates`: the same near-duplicate share between the training configs
  (questions of one config with a near-duplicate in another); reported only.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping

import polars as pl

from ...stages.dedup import normalise_question
from .read import TRAINING
from .report import Figure
from .thresholds import AuditThresholds

JACCARD = 0.8
N = 3


def shingles(question: str, n: int = N) -> frozenset[str]:
    """The word n-grams of a normalised question (its words when it is shorter than n)."""
    words = normalise_question(question).split()
    if len(words) < n:
        return frozenset(words)
    return frozenset(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))


def _prefix(tokens: frozenset[str], rank: Mapping[str, int], t: float) -> list[str]:
    ordered = sorted(tokens, key=lambda tok: (rank[tok], tok))
    return ordered[: len(ordered) - math.ceil(t * len(ordered)) + 1]


class NearDuplicates:
    """Shingle sets, each owned by one or more configs, answering "does a set owned by another
    config lie at Jaccard ≥ t from this one?" (token rarity counted over all of them)."""

    def __init__(self, owned: Mapping[str, set[str]], t: float = JACCARD) -> None:
        self.t = t
        self.sets = {q: shingles(q) for q in owned}
        self.owners = owned
        self.rank = Counter(tok for s in self.sets.values() for tok in s)  # rarer first
        self.index: dict[str, list[str]] = defaultdict(list)
        for question, s in self.sets.items():
            for tok in _prefix(s, self.rank, t):
                self.index[tok].append(question)

    def near_other(self, question: str, others: set[str]) -> bool:
        """Whether a question owned by one of `others` is a near-duplicate of `question`."""
        s = self.sets[question]
        if not s:
            return False
        low, high = self.t * len(s), len(s) / self.t
        seen: set[str] = set()
        for tok in _prefix(s, self.rank, self.t):
            for candidate in self.index[tok]:
                if candidate in seen or not self.owners[candidate] & others:
                    continue
                seen.add(candidate)
                other = self.sets[candidate]
                if low <= len(other) <= high:
                    common = len(s & other)
                    if common / (len(s) + len(other) - common) >= self.t - 1e-12:
                        return True
        return False


def _owners(frames: Mapping[str, pl.DataFrame]) -> dict[str, set[str]]:
    owned: dict[str, set[str]] = defaultdict(set)
    for config, frame in frames.items():
        for question in frame["question"].unique().to_list():
            owned[question].add(config)
    return owned


def overlap_figures(frames: dict[str, pl.DataFrame], has_groups: bool,
                    limits: AuditThresholds) -> list[Figure]:
    training = {c for c in TRAINING if c in frames}
    eval_frame = frames.get("eval")
    index = NearDuplicates(_owners(frames))
    figures: list[Figure] = []
    if eval_frame is None or not training:
        figures.append(Figure("eval_near_duplicates", "eval questions near a training question",
                              None, limits.eval_near_duplicates, 0, "no eval or no training "
                              "config", judged=False))
    else:
        questions = eval_frame["question"].to_list()
        found = sum(index.near_other(q, training) for q in questions)
        figures.append(Figure("eval_near_duplicates", "eval questions near a training question",
                              found / len(questions) if questions else None,
                              limits.eval_near_duplicates, len(questions),
                              f"word-{N}-gram Jaccard ≥ {JACCARD}", judged=bool(questions)))
        if has_groups:
            train_groups = set(pl.concat([frames[c].select("group") for c in training])["group"])
            shared = sum(g in train_groups for g in eval_frame["group"].to_list())
            figures.append(Figure(
                "eval_goal_overlap", "eval rows whose source group is in training",
                shared / eval_frame.height if eval_frame.height else None,
                limits.eval_goal_overlap, eval_frame.height,
                f"{eval_frame['group'].n_unique():,} eval group(s)", judged=eval_frame.height > 0))
        else:
            figures.append(Figure("eval_goal_overlap", "eval rows whose source group is in "
                                  "training", None, limits.eval_goal_overlap, 0,
                                  "the release has no `source_group` column", judged=False))
    if len(training) > 1:
        found = total = 0
        for config in sorted(training):
            for question in frames[config]["question"].unique().to_list():
                found += index.near_other(question, training - {config})
                total += 1
        figures.append(Figure("train_near_duplicates", "training questions near a question of "
                              "another training config", found / total if total else None,
                              None, total, f"word-{N}-gram Jaccard ≥ {JACCARD}"))
    return figures
