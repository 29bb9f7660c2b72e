"""Prompt templates shipped as package data, each versioned by the hash of its text.

A template's version goes into every request it renders (and so into the call cache key) and
into the manifest: editing a prompt invalidates exactly the calls it rendered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

TEMPLATE_NAMES = ("planner", "toolkit_instruction", "judge")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str

    @property
    def version(self) -> str:
        """`name@hash`: what requests carry as `template_version`."""
        return f"{self.name}@{hashlib.sha256(self.text.encode()).hexdigest()[:16]}"

    def render(self, **values: object) -> str:
        return Template(self.text).substitute({k: str(v) for k, v in values.items()})


@cache
def template(name: str) -> PromptTemplate:
    if name not in TEMPLATE_NAMES:
        raise KeyError(f"unknown prompt template {name!r}")
    text = resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return PromptTemplate(name, text)


def template_versions() -> dict[str, str]:
    """Every template's version, for the manifest."""
    return {name: template(name).version for name in TEMPLATE_NAMES}
