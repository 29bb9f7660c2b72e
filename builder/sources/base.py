"""The one record every source yields and every later stage consumes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class SourceItem:
    """One (image, question) pair with its provenance.

    `image` holds the original encoded bytes (never decoded and re-encoded); `image_name` is a
    file name with the right extension. `risk_category`/`label` are the source's own annotation
    when it has one (taxonomy values, docs/protocol.md §2.4), else None. `description` is the
    source's own account of what the picture shows (`objects`, `scene`, `hazards`, `text`,
    `attack`), when it has one: the planner, responders and judge are told it beside the
    image — it never travels inside the image file. `group` names the family of items made from
    the same goal or question template (None: the item is a family of its own); split
    assignment holds the eval split out by family. `meta` is free-form and JSON-safe.
    """

    source_dataset: str
    source_id: str
    source_license: str
    question: str
    image: bytes
    image_name: str
    risk_category: str | None = None
    label: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    description: Mapping[str, Any] | None = None
    group: str | None = None

    @property
    def family(self) -> str:
        """The family split assignment keeps together: `group`, or the item alone."""
        return self.group if self.group is not None else f"{self.source_dataset}/{self.source_id}"

    @cached_property
    def image_sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest()
