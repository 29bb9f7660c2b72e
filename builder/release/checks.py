"""The release gate on trace semantics: what the card promises about every row, checked as written.

Every SFT trace and every DPO chosen side must validate strictly against the row's own
protocol; every DPO rejected side must fail, and the codes it records must be codes the
validator really reports for it. The same `check_text` behind the `Validator`, the CLI and
the trainer's rewards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from safer_toolkit.validation import Protocol, ProtocolInvalid, check_text, resolve_protocol

#: rows rarely share a protocol (DPO pairs of one prompt do, and come together): a small cache
#: keeps the export's memory flat however many rows pass through
PROTOCOL_CACHE = 32


def turn_text(messages: list[Mapping[str, Any]], role: str = "assistant") -> str:
    """The text of the last `role` turn (its text parts joined)."""
    for message in reversed(messages):
        if message["role"] == role:
            return "".join(p["text"] for p in message["content"] if p["type"] == "text")
    raise ValueError(f"no {role} turn")


@lru_cache(maxsize=PROTOCOL_CACHE)
def _protocol(document: str) -> Protocol | str:
    """The resolved protocol, or why it cannot be used."""
    try:
        return resolve_protocol(json.loads(document))
    except json.JSONDecodeError as exc:
        return f"`protocol` is not JSON: {exc}"
    except ProtocolInvalid as exc:
        return f"`protocol` is unusable: {exc}"


def trace_problems(config: str, row: Mapping[str, Any]) -> list[str]:
    """Why the row's protocol or traces break the release's promises (empty when they keep
    them)."""
    protocol = _protocol(row["protocol"])
    if isinstance(protocol, str):
        return [protocol]
    problems: list[str] = []
    if config == "sft":
        sides = {"messages": True}
    elif config == "dpo":
        sides = {"chosen": True, "rejected": False}
    else:
        return problems
    for column, must_pass in sides.items():
        verdict = check_text(turn_text(row[column]), protocol, "strict")
        errors = {i.code for i in verdict.issues if i.severity == "error"}
        if must_pass and errors:
            problems.append(f"`{column}` trace fails strict validation: "
                            f"{', '.join(sorted(errors))}")
        if not must_pass:
            if not errors:
                problems.append(f"`{column}` trace is valid; a rejected side must fail")
            unknown = sorted(set(row["rejected_codes"]) - {i.code for i in verdict.issues})
            if unknown:
                problems.append(f"`rejected_codes` {unknown} are not reported by the validator "
                                f"(it reports {sorted(errors)})")
    return problems
