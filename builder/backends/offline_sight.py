"""How the offline generator perceives an item: the source's description of the picture, the
question, and the source's annotation when the request carries one.

The offline backend has no vision: it "sees" a picture through the description the build sends
beside it (`SourceItem.description`, a labelled payload part of the request), so a build
through `serve` sees exactly what an in-process build sees, and the released image bytes carry
nothing but the picture. For a picture without a description it falls back to a keyword reading
of the question and says so.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...validation import library_tools
from ...validation.vocabulary import SENTINEL
from .offline_knowledge import ATTACK_CUES, DOMAINS, HARM_CUES

MAX_LIST = 16


@dataclass(frozen=True)
class Sight:
    """What the picture shows; `seen` is False for images without an embedded scene."""

    objects: list[str] = field(default_factory=list)
    scene: str = ""
    hazards: list[str] = field(default_factory=list)
    text: str = ""
    attack: str = "none"
    seen: bool = False


def _strings(value: Any, limit: int = MAX_LIST) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(v)[:200] for v in value if isinstance(v, str | int | float)][:limit]


#: the values JAILBREAK-SENTINEL's `attack` output may take
ATTACKS = frozenset(library_tools()[SENTINEL].output["properties"]["attack"]["enum"])


def sight_of(description: Mapping[str, Any] | None) -> Sight:
    """What a source's description says the picture shows (bounded, typed), or an empty, unseen
    `Sight` when there is none. A description is data from the request: every field is checked
    and cut to size, and an unknown attack reads as none."""
    if not isinstance(description, Mapping):
        return Sight()
    attack = description.get("attack")
    if not (isinstance(attack, str) and attack in ATTACKS):
        attack = "none"
    return Sight(objects=_strings(description.get("objects")),
                 scene=str(description.get("scene") or "")[:300],
                 hazards=_strings(description.get("hazards")),
                 text=str(description.get("text") or "")[:1000],
                 attack=attack, seen=True)


@dataclass(frozen=True)
class Assessment:
    """The item's risk as the offline generator understands it."""

    label: str
    category: str
    attack: str
    flags: list[str]
    severity: int

    @property
    def harmful(self) -> bool:
        return self.label == "harmful"


def _hits(text: str, words: tuple[str, ...]) -> list[str]:
    return [w for w in words if w in text]


def classify(question: str, sight: Sight) -> tuple[str, str, str]:
    """(label, category, closest risk domain) by keywords, for items without an annotation."""
    text = f"{question} {sight.text} {' '.join(sight.objects)}".lower()
    scores = {name: len(_hits(text, d.keywords)) for name, d in DOMAINS.items()
              if name != "benign"}
    closest = max(scores, key=lambda k: (scores[k], -list(scores).index(k)))
    category = closest if scores[closest] else "benign"
    harmful = category != "benign" and (bool(_hits(question.lower(), HARM_CUES))
                                        or sight.attack != "none")
    return ("harmful" if harmful else "benign"), category, closest


def detect_attack(question: str, sight: Sight) -> str:
    if sight.attack != "none":
        return sight.attack
    lowered = question.lower()
    for attack, cues in ATTACK_CUES.items():
        if _hits(lowered, cues):
            return attack
    return "none"


def assess(question: str, sight: Sight, hint: dict[str, Any] | None) -> Assessment:
    """Label and category from the hint when it has them, else from the keyword reading."""
    label, category, closest = classify(question, sight)
    if hint:
        if hint.get("risk_category") in DOMAINS:
            category = hint["risk_category"]
        if hint.get("label") in ("harmful", "benign"):
            label = hint["label"]
    if label == "harmful" and category == "benign" and not (hint or {}).get("risk_category"):
        category = closest  # a harmful item always names a risk domain
    attack = detect_attack(question, sight)
    domain = DOMAINS[category]
    lowered = f"{question} {sight.text}".lower()
    flags = _hits(lowered, domain.keywords) + (_hits(lowered, HARM_CUES) if label == "harmful"
                                               else [])
    # a benign request carries no risk, whatever domain it touches (the caution a look-alike
    # deserves is the responder's verdict, not a risk score)
    severity = (3 if attack != "none" else domain.severity) if label == "harmful" else 0
    return Assessment(label, category, attack, list(dict.fromkeys(flags))[:MAX_LIST], severity)


def rng_for(*parts: object) -> random.Random:
    """A random stream determined by `parts` (never by the process or the clock)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
