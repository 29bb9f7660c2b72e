"""Readable reasons for a JSON Schema failure.

The hot path asks the compiled `jsonschema-rs` validator only "valid or not"; when the answer is
no, `jsonschema` walks the instance again to say why, with JSON-pointer paths.
"""

from __future__ import annotations

from typing import Any

MAX_REASONS = 20


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def explain(schema: dict[str, Any], instance: Any) -> list[tuple[str, str]]:
    """Up to `MAX_REASONS` (path, message) pairs, deepest-first per failing branch."""
    import jsonschema  # only failures pay for the import

    validator = jsonschema.Draft202012Validator(schema)
    reasons: list[tuple[str, str]] = []
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: _pointer(e.absolute_path))
        for error in errors[:MAX_REASONS]:
            reasons.append((_pointer(error.absolute_path), error.message))
    except RecursionError:
        reasons.append(("", "value nests too deeply to explain"))
    return reasons or [("", "does not match its schema")]
