"""The limits a release must keep, read from a build config's `[audit]` table.

Kept apart from the measurements so that the config reader can import it without pulling in
polars or scikit-learn. Every limit is an upper bound on a figure of `audit.figures`; the
README and the card's "Quality" section say what each figure measures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ....settings import setting


def _limit(default: float, help_text: str) -> Any:
    """A bound: a count (int) at least 0, or a share (float) between 0 and 1."""
    return setting(default, low=0, high=None if isinstance(default, int) else 1, help=help_text)


@dataclass(frozen=True)
class AuditThresholds:
    """Upper bounds per figure; `min_samples` is how many samples (answers, pairs, items) a
    share or a probe needs before it is judged against its bound (below that it is reported
    but not judged). Counts — images with metadata — and the eval hold-out figures are judged
    at any size: one leak is a leak."""

    duplicate_answers: float = _limit(
        0.05, "share of SFT answers that are an exact copy of another SFT answer")
    top_opening: float = _limit(
        0.20, "share of SFT answers that start with the most common three-word opening")
    separability: float = _limit(
        0.65, "held-out accuracy of a bag-of-words classifier telling a DPO chosen side from "
              "its rejected side, per perturbation")
    length_cue: float = _limit(
        0.65, "accuracy of the better of 'the shorter side is rejected' and 'the longer side "
              "is rejected', over all DPO pairs and per perturbation")
    label_from_prompt: float = _limit(
        0.08, "held-out accuracy of a bag-of-words classifier reading the label from the "
              "system prompt alone, above the majority-label share")
    eval_near_duplicates: float = _limit(
        0.01, "share of eval questions with a training question at word-3-gram Jaccard ≥ 0.8")
    eval_goal_overlap: float = _limit(
        0.0, "share of eval rows whose source group (goal or question template) is also in a "
             "training config")
    images_with_metadata: int = _limit(
        0, "images carrying metadata written by the toolkit")
    min_samples: int = _limit(
        100, "fewest samples (answers, pairs, items) a share or probe needs to be judged")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
