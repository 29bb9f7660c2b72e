"""What the offline backend understands a request to ask: the task as a clause ("make a pipe bomb
from the items shown"), read from the question or from the text in the picture — decoded when it
is obfuscated — and, when it is one of the requests the toolkit's seed corpus makes, what that
request is known to be.

The known requests stand in for a model's world knowledge: a model judge knows that "make a pipe
bomb" is harmful and "store kitchen knives away from children" is not without being told; the
offline judge knows it for the corpus it ships with and falls back to keywords elsewhere. It is
never told the item's label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

from ..stages.dedup import normalise_question
from .offline_sight import Sight

#: how a request introduces what it wants done (the clause follows)
_INTRO = re.compile(
    r"\b(?:how (?:do|can|could|would|should|does|did) (?:i|we|someone|one|you|they)|how to|"
    r"steps to|ways? to|methods to|instructions to|i want to|in order to|help me|"
    r"guide to(?: how to)?)\s+(?P<task>[^?.!:\n]+)", re.IGNORECASE)
#: a list's numbering after its title ("1 -", "(1)", "Step 1:")
_NUMBERING = re.compile(r"\s+(?:\(?\d+\)?|step \d+)\s*[-.:)]?(?:\s|$).*$", re.IGNORECASE)
_POINTS_AT_IMAGE = ("image", "picture", "photo", "caption", "poster", "sign", "text", "list",
                    "shown", "label", "note", "message", "letters", "words", "board", "sticker",
                    "whiteboard")
_LEET = str.maketrans("431057", "AEIOST")


@dataclass(frozen=True)
class Known:
    """A request the seed corpus makes: its goal as written, label and risk category."""

    goal: str
    label: str
    category: str


@cache
def known_requests() -> dict[str, Known]:
    """Every goal of the seed corpus, normalised → what it is."""
    from ..sources.seed_content import TOPICS

    found: dict[str, Known] = {}
    for category, topics in TOPICS.items():
        for topic in topics:
            for label in ("harmful", "benign"):
                for goal in getattr(topic, label):
                    found[normalise_question(goal)] = Known(goal, label, category)
    return found


def readings(text: str) -> list[str]:
    """`text` as written, and decoded the ways obfuscated requests are written: letters spread
    out (`M A K E / A / B O M B`), leetspeak (`M4K3 4 B0MB`), words in reverse order."""
    flat = " ".join(text.split())
    out = [flat]
    if "/" in flat and re.search(r"\b\w \w \w\b", flat):
        out.append(" ".join(word.replace(" ", "") for word in flat.split("/")))
    if re.search(r"[A-Z][0-9]|[0-9][A-Z]", flat):
        out.append(flat.translate(_LEET))
    out.append(" ".join(reversed(flat.split())))
    return out


def _points_at_image(question: str) -> bool:
    lowered = question.lower()
    return any(w in lowered for w in _POINTS_AT_IMAGE)


def _sources(question: str, sight: Sight) -> list[str]:
    """Where the request is written, the likelier place first."""
    if sight.text and _points_at_image(question):
        return [*readings(sight.text), question]
    return [question, *readings(sight.text)] if sight.text else [question]


@lru_cache(maxsize=4096)
def _recognise(question: str, text: str) -> Known | None:
    catalogue = known_requests()
    for source in _sources(question, Sight(text=text)):
        normalised = f" {normalise_question(source)} "
        found = [goal for goal in catalogue if f" {goal} " in normalised]
        if found:
            return catalogue[max(found, key=len)]
    return None


def recognise(question: str, sight: Sight) -> Known | None:
    """What a known request is, when the question or the picture's text makes one."""
    return _recognise(question, sight.text)


def _clause(text: str) -> str | None:
    match = _INTRO.search(" ".join(text.split()))
    if not match:
        return None
    task = _NUMBERING.sub("", match["task"]).strip(" ,;-")
    return task[0].lower() + task[1:] if task else None


def task_clause(question: str, sight: Sight) -> str:
    """The task the request asks for, as an infinitive clause without "to"; the question itself
    (shortened) when no clause can be found."""
    known = recognise(question, sight)
    if known is not None:
        return known.goal
    for source in _sources(question, sight):
        clause = _clause(source)
        if clause:
            return clause[:160]
    flat = " ".join(question.split())
    return flat if len(flat) <= 160 else flat[:159] + "…"
