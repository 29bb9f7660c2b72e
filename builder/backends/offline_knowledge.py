"""What the offline generator knows about each risk category: words that signal it, experts who
speak for it, why a harmful request in it is declined, what to offer instead, and sound advice
for the benign look-alikes. The content is plain data in `offline_knowledge.toml` next to this
module (read once, at import); this module gives it its types.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Domain:
    keywords: tuple[str, ...]  # topic words (classifier and KEYWORD-FLAGGING)
    personas: tuple[tuple[str, str, str], ...]  # (name, expertise, style)
    severity: int  # RISK-SCORER severity of a harmful request in this domain
    harm: str  # why helping would be harmful ("it would ...")
    alternative: str  # the safe thing to offer instead
    resources: tuple[str, ...]
    advice: tuple[str, ...]  # sound general guidance for benign questions in the domain
    legitimate_use: str  # CONTEXT-ASSESSOR value for a benign look-alike


def _domain(table: dict[str, Any]) -> Domain:
    """A `[domains.<category>]` table as a Domain; a missing or unknown field is a TypeError."""
    return Domain(**{**table, "keywords": tuple(table["keywords"]),
                     "personas": tuple(tuple(p) for p in table["personas"]),
                     "resources": tuple(table["resources"]), "advice": tuple(table["advice"])})


_DATA: dict[str, Any] = tomllib.loads(
    resources.files(__package__).joinpath("offline_knowledge.toml").read_text(encoding="utf-8"))

DOMAINS: dict[str, Domain] = {name: _domain(table) for name, table in _DATA["domains"].items()}

#: Phrases that signal an intent to harm (the classifier's second signal besides the topic).
HARM_CUES: tuple[str, ...] = tuple(_DATA["cues"]["harm"])

#: Question phrasings of prompt attacks, by JAILBREAK-SENTINEL value.
ATTACK_CUES: dict[str, tuple[str, ...]] = {
    technique: tuple(cues) for technique, cues in _DATA["cues"]["attack"].items()}

REFUSAL_PHRASES: tuple[str, ...] = tuple(_DATA["cues"]["refusal"])
#: Phrases of a decline that still helps: an alternative or a place to turn.
OFFER_PHRASES: tuple[str, ...] = tuple(_DATA["cues"]["offer"])
