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
    when it has one (taxonomy values, SPEC §2.2), else None. `meta` is free-form and JSON-safe
    (the seed corpus records what its picture shows there).
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

    @cached_property
    def image_sha256(self) -> str:
        return hashlib.sha256(self.image).hexdigest()
