"""An audit's result: named figures, each with its bound and verdict, and how it is shown.

A figure with no bound is reported only; a figure measured on too few samples (or not measurable
on this release) is reported but not judged. The release passes when every judged figure is
within its bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DIGITS = 3
#: what each figure measures, for the card and the README (bounded figures: the bound's help)
MEANING = {
    "duplicate_answers": "SFT answers that are an exact copy (white space folded) of another "
                         "SFT answer",
    "top_opening": "SFT answers that start with the most common opening (first three words, "
                   "lowercased)",
    "distinct_1": "distinct words / all words over the SFT answers",
    "distinct_2": "distinct word pairs / all word pairs over the SFT answers",
    "separability": "held-out accuracy of a bag-of-words probe telling a DPO chosen response "
                    "from its rejected one (response text only, folds grouped by source item; "
                    "0.5 is chance)",
    "separability_presence": "the same, by the presence probe (reported; for `wrong_decision` "
                             "it reads the label × decision conjunction the validator checks)",
    "length_cue": "accuracy of the better rule of \"the shorter side is the rejected one\" and "
                  "\"the longer side is\" (0.5: length tells nothing)",
    "label_from_prompt": "held-out accuracy of the better bag-of-words probe reading the label "
                         "from the system prompt alone (persona, tools, topology), minus the "
                         "majority label's share",
    "eval_near_duplicates": "eval questions with a training question at word-3-gram Jaccard "
                            "≥ 0.8",
    "eval_goal_overlap": "eval rows whose source group (goal or question template) also occurs "
                         "in a training config",
    "train_near_duplicates": "training questions with a near-duplicate (word-3-gram Jaccard "
                             "≥ 0.8) in another training config",
    "images_with_metadata": "distinct images carrying metadata the toolkit wrote (text chunks, "
                            "EXIF, comments) — a picture must be only the picture",
    "source_images_with_metadata": "third-party images carrying their own metadata, kept byte "
                                   "for byte",
}


def meaning(key: str) -> str:
    """What figure `key` measures (`separability/<kind>` reads as `separability`)."""
    base, _, kind = key.partition("/")
    text = MEANING.get(base, "")
    return f"{text}; `{kind}` pairs only" if kind and text else text


def _round(value: float | None) -> float | None:
    if value is None or isinstance(value, int):
        return value
    return round(float(value), DIGITS)


@dataclass(frozen=True)
class Figure:
    """One measured figure. `value` ≤ `limit` passes; `limit` None: reported only."""

    key: str
    title: str
    value: float | None
    limit: float | None = None
    samples: int = 0
    detail: str = ""
    judged: bool = True  # False: too few samples (or nothing to measure) to judge

    @property
    def passed(self) -> bool | None:
        """True/False when judged against a limit, None when only reported."""
        if self.limit is None or not self.judged or self.value is None:
            return None
        return self.value <= self.limit + 1e-12

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "value": _round(self.value), "limit": self.limit,
                "passed": self.passed, "samples": self.samples, "detail": self.detail}


@dataclass(frozen=True)
class Audit:
    """Every figure of one release, in report order, plus the tables behind some of them."""

    figures: list[Figure]
    thresholds: Mapping[str, Any]
    tables: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(f.passed is not False for f in self.figures)

    @property
    def failed(self) -> list[Figure]:
        return [f for f in self.figures if f.passed is False]

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed,
                "failed": [f.key for f in self.failed],
                "thresholds": dict(self.thresholds),
                "figures": {f.key: f.to_json() for f in self.figures},
                **{k: v for k, v in self.tables.items()}}


def verdict(figure: Mapping[str, Any]) -> str:
    passed = figure.get("passed")
    if passed is None:
        return "reported" if figure.get("limit") is None else "not judged"
    return "pass" if passed else "**FAIL**"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def rows(audit_json: Mapping[str, Any]) -> list[list[str]]:
    """[figure, value, limit, verdict, samples, detail] per figure of a `to_json()` result."""
    out = []
    for key, f in audit_json.get("figures", {}).items():
        limit = f.get("limit")
        out.append([f"`{key}`", _cell(f.get("value")), "—" if limit is None else f"≤ {limit}",
                    verdict(f), f"{f.get('samples', 0):,}", f.get("detail", "")])
    return out


def plain_table(audit_json: Mapping[str, Any]) -> str:
    """The audit as fixed-width text for a terminal."""
    header = ["figure", "value", "limit", "verdict", "samples", "detail"]
    body = [[c.strip("`*") for c in row] for row in rows(audit_json)]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, ["-" * w for w in widths], *body]]
    state = "PASSED" if audit_json.get("passed") else "FAILED: " + ", ".join(
        audit_json.get("failed", []))
    return "\n".join([*lines, "", f"audit {state}"])
