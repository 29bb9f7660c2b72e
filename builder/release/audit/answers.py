"""Figures of the SFT answers (the `<answer>` block of each gold trace): are they one template?

- `duplicate_answers`: the share of SFT answers that are an exact copy (white space folded) of
  another SFT answer.
- `top_opening`: the share of SFT answers whose first `OPENING_WORDS` words (lowercased,
  punctuation dropped) are the most common such opening.
- `distinct_1`, `distinct_2`: distinct word 1-grams and 2-grams over all n-grams of all answers
  (lowercased words); reported only — a low value means a small vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from .report import Figure
from .thresholds import AuditThresholds

OPENING_WORDS = 3
_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _distinct(answers: Sequence[list[str]], n: int) -> float | None:
    grams: set[tuple[str, ...]] = set()
    total = 0
    for words in answers:
        for i in range(len(words) - n + 1):
            grams.add(tuple(words[i:i + n]))
            total += 1
    return len(grams) / total if total else None


def answer_figures(answers: Sequence[str], limits: AuditThresholds) -> list[Figure]:
    n = len(answers)
    folded = Counter(" ".join(a.split()) for a in answers)
    copies = sum(c for c in folded.values() if c > 1)
    words = [_words(a) for a in answers]
    openings = Counter(" ".join(w[:OPENING_WORDS]) for w in words if w)
    top, top_count = openings.most_common(1)[0] if openings else ("", 0)
    distinct_answers = f"{len(folded):,} distinct answers"
    return [
        Figure("duplicate_answers", "SFT answers that copy another", copies / n if n else None,
               limits.duplicate_answers, n, distinct_answers, judged=n >= limits.min_samples),
        Figure("top_opening", "SFT answers with the most common opening",
               top_count / n if n else None, limits.top_opening, n,
               f"most common: \"{top}\"" if top else "", judged=n >= limits.min_samples),
        Figure("distinct_1", "distinct words / all words in SFT answers", _distinct(words, 1),
               None, n),
        Figure("distinct_2", "distinct word pairs / all word pairs in SFT answers",
               _distinct(words, 2), None, n),
    ]
