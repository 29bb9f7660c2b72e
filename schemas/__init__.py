"""The protocol's data files: JSON Schemas (draft 2020-12), tool library v1 and risk taxonomy.

They ship as package data so the validator, the builder and a release all read the same bytes;
`schema_hashes()` fingerprints them for provenance.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILES = (
    "tool.schema.json",
    "protocol.schema.json",
    "graph.schema.json",
    "trace.schema.json",
    "tool_library.schema.json",
    "taxonomy.schema.json",
)
DATA_FILES = ("tool_library_v1.json", "taxonomy_v1.json")


def read_bytes(name: str) -> bytes:
    """Raw bytes of one shipped file (schema or data)."""
    return resources.files(__name__).joinpath(name).read_bytes()


@cache
def load(name: str) -> Any:
    """Parsed JSON of one shipped file; cached, so callers must not mutate it."""
    return json.loads(read_bytes(name))


def tool_library() -> dict[str, Any]:
    """The default tool library v1 (exactly the twelve tools of docs/protocol.md §2)."""
    return load("tool_library_v1.json")


def taxonomy() -> dict[str, Any]:
    """The risk taxonomy v1 (docs/protocol.md §2.4)."""
    return load("taxonomy_v1.json")


def risk_categories() -> tuple[str, ...]:
    return tuple(taxonomy()["categories"])


@cache
def schema_hashes() -> dict[str, str]:
    """sha256 of every shipped schema and data file, for manifests and cards."""
    return {n: hashlib.sha256(read_bytes(n)).hexdigest() for n in SCHEMA_FILES + DATA_FILES}
