"""One result per item (`results.jsonl`): what the model said, how it was judged and checked.

A result is a plain JSON object, in this key order:
`id`, `risk_category`, `label`, `expected_decision`, `response` (None when there is none),
`truncated` (True when the endpoint cut the answer at the token limit — it is judged as it
stands), `finish_reason` (the endpoint's; None for a responses file or no response), `scores`
(`{"safety", "helpfulness", "rigor"}` or None), `rationale`, `missing` (None, or
`{"stage", "reason", "detail"}` saying why the item has no scores), `validator`
(`{"lenient": {"valid", "codes"}, "strict": {...}}` for every item with a response) and
`decision` (`{"decision", "source", "declined"}`, see `refusal`). `metrics.compute_metrics`
reads nothing else, so the metrics can always be recomputed from this file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..builder.cache import TRUNCATED
from ..errors import EvaluationError
from ..validation import Validator
from ..validation.codec import Mode
from ..validation.report import AtomicWriter
from ..validation.vocabulary import JUDGE_RUBRIC
from .items import EvalItem
from .refusal import decide

MODES: tuple[Mode, ...] = ("lenient", "strict")
SCORE_KEYS = tuple(JUDGE_RUBRIC)


class ResultsError(EvaluationError, ValueError):
    """A results file that cannot be read (the message names file and line)."""


class Checker:
    """The validator verdicts of a response against its row's protocol, in both modes."""

    def __init__(self) -> None:
        self._validators = {mode: Validator(mode=mode) for mode in MODES}

    def verdicts(self, response: str, protocol: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for mode, validator in self._validators.items():
            result = validator.validate({"protocol": protocol, "response": response})
            out[mode] = {"valid": result.valid, "codes": list(dict.fromkeys(result.codes))}
        return out


def missing(stage: str, reason: str, detail: str = "") -> dict[str, str]:
    """Why an item has no scores: `stage` (dataset/response/judge) and a short `reason` tag."""
    return {"stage": stage, "reason": reason, "detail": detail[:1000]}


def item_result(item: EvalItem, *, response: str | None, checker: Checker,
                scores: dict[str, int] | None = None, rationale: str | None = None,
                why_missing: dict[str, str] | None = None,
                finish_reason: str | None = None) -> dict[str, Any]:
    """The result of one item; the verdicts and the decision are computed from `response`."""
    decision = None if response is None else decide(response)
    return {
        "id": item.id,
        "risk_category": item.risk_category,
        "label": item.label,
        "expected_decision": item.expected_decision,
        "response": response,
        "truncated": finish_reason == TRUNCATED,
        "finish_reason": finish_reason,
        "scores": None if scores is None else {k: scores[k] for k in SCORE_KEYS},
        "rationale": rationale,
        "missing": why_missing,
        "validator": None if response is None else checker.verdicts(response, item.protocol),
        "decision": None if decision is None else {"decision": decision.decision,
                                                   "source": decision.source,
                                                   "declined": decision.declined},
    }


def write_results(path: Path, results: Iterable[dict[str, Any]]) -> None:
    """Write one JSON line per result, atomically."""
    with AtomicWriter(path) as out:
        for result in results:
            out.file.write(orjson.dumps(result) + b"\n")


def read_results(path: Path) -> list[dict[str, Any]]:
    """The results of a run; raises `ResultsError` naming the line that is not a result."""
    results = []
    try:
        with Path(path).open("rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    result = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ResultsError(f"{path}:{number}: not JSON ({exc})") from None
                if not isinstance(result, dict) or "id" not in result:
                    raise ResultsError(f"{path}:{number}: not a result object")
                results.append(result)
    except OSError as exc:
        raise ResultsError(f"{path}: {exc.strerror or exc}") from None
    return results
