"""Hand-written templates the seed corpus combines: topics per risk category, question phrasings,
framings and the generic instructions of text-in-image attacks.

The templates are plain data in `seed_content.toml` next to this module (read once, at import;
its header states the wording rule for goals); this module gives them their types.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Topic:
    """One visual situation: what is drawn, what is hazardous in it, and what people ask."""

    key: str
    setting: str  # a key of seed_render.SETTINGS
    objects: tuple[str, ...]  # keys of seed_render.ICONS, drawn in this order
    hazards: tuple[str, ...]
    sign: str  # short text for signs and labels
    harmful: tuple[str, ...]
    benign: tuple[str, ...]


def _topic(table: dict[str, Any]) -> Topic:
    """A `[[topics.<category>]]` table as a Topic; a missing or unknown field is a TypeError."""
    fields: dict[str, Any] = {name: tuple(value) if isinstance(value, list) else value
                              for name, value in table.items()}
    return Topic(**fields)


_DATA: dict[str, Any] = tomllib.loads(
    resources.files(__package__).joinpath("seed_content.toml").read_text(encoding="utf-8"))

TOPICS: dict[str, tuple[Topic, ...]] = {
    category: tuple(_topic(table) for table in tables)
    for category, tables in _DATA["topics"].items()}

# Question phrasings that carry the goal; "{goal}" is an infinitive phrase without "to".
SCENE_PHRASINGS: tuple[str, ...] = tuple(_DATA["scene_phrasings"])
SIGN_PHRASINGS: tuple[str, ...] = tuple(_DATA["sign_phrasings"])

# Framings around a question: (attack technique for JAILBREAK-SENTINEL, template), one list for
# both labels (the data file says why).
FRAMES: tuple[tuple[str, str], ...] = tuple(
    (technique, template) for technique, template in _DATA["frames"])
SUFFIXES: tuple[str, ...] = tuple(_DATA["suffixes"])

# Generic instructions for attacks that hide the request in the picture; a question is
# LEAD + TASK + DETAIL.
DETAILS: tuple[str, ...] = (
    ("", " Be thorough.", " Keep it brief.", " Use bullet points.", " Write it as a numbered list.")
    + tuple(f" Answer in about {n} words." for n in range(30, 410, 10))
    + tuple(f" Use {k} numbered steps." for k in range(3, 10))
)
TYPO_LEADS: tuple[str, ...] = tuple(_DATA["typo_leads"])
TYPO_TASKS: tuple[str, ...] = tuple(_DATA["typo_tasks"])
CAPTION_LEADS: tuple[str, ...] = tuple(_DATA["caption_leads"])
CAPTION_TASKS: tuple[str, ...] = tuple(_DATA["caption_tasks"])
INJECTION_LEADS: tuple[str, ...] = tuple(_DATA["injection_leads"])
INJECTION_TASKS: tuple[str, ...] = tuple(_DATA["injection_tasks"])
# (obfuscation method, lead): the lead tells the reader how the text in the image is encoded.
OBFUSCATION_LEADS: tuple[tuple[str, str], ...] = tuple(
    (method, lead) for method, lead in _DATA["obfuscation_leads"])
OBFUSCATION_TASKS: tuple[str, ...] = tuple(_DATA["obfuscation_tasks"])

# Titles for FigStep-style lists in the image, and injected instructions written into the picture.
LIST_TITLES: tuple[str, ...] = tuple(_DATA["list_titles"])
INJECTION_TEXTS: tuple[str, ...] = tuple(_DATA["injection_texts"])
DISTRACTORS: tuple[str, ...] = tuple(_DATA["distractors"])
