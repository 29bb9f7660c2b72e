"""The release gate on trace semantics: what the card promises about every row, checked as written.

Every SFT trace and every DPO chosen side must validate strictly against the row's own
protocol; every DPO rejected side must fail, and the codes it records must be codes the
validator really reports for it. The same `check_text` behind the `Validator`, the CLI and
the trainer's rewards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...validation import ProtocolInvalid, Validator, check_text
from .features import checked_turn

#: resolves each row's protocol through the validator's own bounded cache (DPO pairs of one
#: prompt share a protocol)
_VALIDATOR = Validator(mode="strict")


def trace_problems(config: str, row: Mapping[str, Any]) -> list[str]:
    """Why the row's protocol or traces break the release's promises (empty when they keep
    them). `row` has passed `features.row_problems`, so every turn it reads is there."""
    try:
        protocol = _VALIDATOR.protocol(row["protocol"])
    except ProtocolInvalid as exc:
        return [f"`protocol` is unusable: {exc}"]
    problems: list[str] = []
    if config == "sft":
        sides = {"messages": True}
    elif config == "dpo":
        sides = {"chosen": True, "rejected": False}
    else:
        return problems
    for column, must_pass in sides.items():
        verdict = check_text(checked_turn(row[column]), protocol, "strict")
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
