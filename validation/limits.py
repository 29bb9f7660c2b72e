"""Bounds on untrusted input: traces, protocols and custom schemas are data, never trusted."""

from collections.abc import Iterable

MAX_RECORD_BYTES = 8 * 1024 * 1024  # one JSONL line / JSON record
MAX_TEXT_CHARS = 1_000_000  # a text-form response
MAX_CALLS = 1024  # calls parsed from one trace; more is `too_many_calls` anyway
MAX_JSON_DEPTH = 64  # nesting of a record read from a JSON array or parquet
MAX_CUSTOM_SCHEMA_BYTES = 16 * 1024  # docs/protocol.md §2
MAX_CUSTOM_SCHEMA_DEPTH = 8  # schema nesting levels (the output object is level 1)
PROTOCOL_CACHE_SIZE = 4096


def json_depth_exceeds(value: object, limit: int) -> bool:
    """True when `value` nests deeper than `limit` (iterative: safe on hostile input)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[object]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
