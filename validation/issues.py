"""Validation issues: the stable codes of docs/protocol.md §4 and the record they are reported
in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

CODES: tuple[str, ...] = (
    "parse_error",
    "schema",
    "protocol_invalid",
    "missing_thinking",
    "missing_answer",
    "empty_answer",
    "tag_structure",
    "tool_syntax",
    "unknown_tool",
    "tool_output",
    "untyped_output",
    "bad_start",
    "illegal_transition",
    "bad_end",
    "visit_limit",
    "too_few_calls",
    "too_many_calls",
    "missing_tool",
    "graph_invalid",
    "decision_conflict",
)

MAX_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding: a stable `code`, its `severity`, a human `message` and where (`path`)."""

    code: str
    message: str
    path: str = ""
    severity: Severity = "error"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "path": self.path}


def issue(code: str, message: str, path: str = "", severity: Severity = "error") -> Issue:
    """Build an issue with a bounded message (third-party text is echoed in messages)."""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return Issue(code, message, path, severity)


@dataclass(slots=True)
class RecordResult:
    """The verdict on one record, as written to the report (one JSON line per record)."""

    index: int
    id: Any
    issues: list[Issue]

    @property
    def valid(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    @property
    def codes(self) -> list[str]:
        return [i.code for i in self.issues]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "valid": self.valid,
                "issues": [i.to_dict() for i in self.issues]}
