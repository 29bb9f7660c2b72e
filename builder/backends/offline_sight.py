"""How the offline generator perceives an item: the picture's embedded scene, the question, and
the source's annotation when the request carries one.

Seed images carry their content in a `safer-toolkit:scene` PNG text chunk, so the offline
backend "sees" them from the request bytes alone (and a build through `serve` sees the same).
For any other image it falls back to a keyword reading of the question and says so.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from safer_toolkit.builder.backends.offline_knowledge import ATTACK_CUES, DOMAINS, HARM_CUES

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


def look(image: bytes | None) -> Sight:
    """The scene embedded in a seed image, or an empty, unseen `Sight`."""
    if not image:
        return Sight()
    from safer_toolkit.builder.sources.seed import read_scene

    scene = read_scene(image)
    if not isinstance(scene, dict):
        return Sight()
    attack = scene.get("attack")
    return Sight(objects=_strings(scene.get("objects")), scene=str(scene.get("scene", ""))[:300],
                 hazards=_strings(scene.get("hazards")), text=str(scene.get("text", ""))[:1000],
                 attack=attack, seen=True)  # read_scene admits only JAILBREAK-SENTINEL attacks


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
    if label == "harmful":
        severity = 3 if attack != "none" else domain.severity
    else:
        # a look-alike in a high-risk domain still deserves safety notes
        severity = 1 if domain.severity >= 3 and category != "benign" else 0
    return Assessment(label, category, attack, list(dict.fromkeys(flags))[:MAX_LIST], severity)


def rng_for(*parts: object) -> random.Random:
    """A random stream determined by `parts` (never by the process or the clock)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
