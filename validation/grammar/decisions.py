"""docs/protocol.md §4 `decision_conflict` as something a grammar can enforce.

A conflict depends on a few values along the trace: the last INTENT-RADAR `intent`, the highest
RISK-SCORER `severity`, the last SAFETY-GATE `verdict` and whether REFUSAL-GENERATOR was called.
Each such call is split into *variants* by the class of that value (benign / harmful / other
intent; severity < 0, 0, 1, ≥ 2; comply / refuse / other verdict), so the walk can carry a
`Decision` of class representatives and drop every ending whose decision conflicts. Whether an
ending conflicts is asked of the validator's own `decision_conflict`, never re-derived here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from ..codec import Call
from ..protocol import Protocol, Tool
from ..validator import decision_conflict
from ..vocabulary import GATE, INTENT, REFUSAL, VERDICTS
from ..vocabulary import RISK as SEVERITY
from .json_schema import accepts
from .options import GrammarError

#: tool → the key of its output that a conflict reads
KEYS = {INTENT: "intent", SEVERITY: "severity", GATE: "verdict"}


class _Keep:
    """The value a call contributes when it leaves the decision as it was."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()
_OTHER_VERDICT = next(v for v in VERDICTS if v not in ("comply", "refuse"))


def _intent_class(value: Any) -> Any:
    if not isinstance(value, str):
        return KEEP
    return value if value in ("benign", "harmful") else "other"


def _severity_class(value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool):
        return KEEP
    return -1 if value < 0 else min(value, 2)


def _verdict_class(value: Any) -> Any:
    if value not in VERDICTS:
        return KEEP
    return value if value in ("comply", "refuse") else _OTHER_VERDICT


_CLASSIFY: dict[str, Callable[[Any], Any]] = {INTENT: _intent_class, SEVERITY: _severity_class,
                                              GATE: _verdict_class}


@dataclass(frozen=True)
class Variant:
    """One way to call a tool: its output schema narrowed so that the call contributes
    `value` (a class representative, or KEEP) to the decision; `label` names it in rules."""

    label: str
    output: dict[str, Any]
    value: Any = KEEP


@dataclass(frozen=True)
class Decision:
    """Class representatives of what `decision_conflict` reads, after a walk prefix."""

    intent: str | None = None
    severity: int | None = None
    verdict: str | None = None
    refusal: bool = False

    def after(self, tool: str, value: Any) -> Decision:
        return _after(self, tool, value)

    def _after(self, tool: str, value: Any) -> Decision:
        if tool == REFUSAL:
            return self if self.refusal else replace(self, refusal=True)
        if value is KEEP:
            return self
        if tool == INTENT:
            return replace(self, intent=value)
        if tool == SEVERITY:
            return replace(self, severity=value if self.severity is None
                           else max(self.severity, value))
        return replace(self, verdict=value)

    @property
    def conflicts(self) -> bool:
        return _conflicts(self)


@cache
def _after(state: Decision, tool: str, value: Any) -> Decision:
    return state._after(tool, value)


@cache
def _conflicts(state: Decision) -> bool:
    """The validator's verdict on the shortest trace that carries `state`."""
    calls = []
    if state.intent is not None:
        calls.append(Call(INTENT, {"intent": state.intent}))
    if state.severity is not None:
        calls.append(Call(SEVERITY, {"severity": state.severity}))
    if state.refusal:
        calls.append(Call(REFUSAL, {}))
    if state.verdict is not None:
        calls.append(Call(GATE, {"verdict": state.verdict}))
    return decision_conflict(calls) is not None


def tracks_decisions(protocol: Protocol) -> bool:
    """Whether a conflict is possible at all: an intent and something that states a verdict."""
    return INTENT in protocol.tools and bool({GATE, REFUSAL} & protocol.tools.keys())


def _kinds(node: dict[str, Any]) -> list[str]:
    kinds = node.get("type", ["object", "array", "string", "integer", "number", "boolean",
                              "null"])
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _partition(tool: str, node: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """(class representative, narrowed schema) pairs covering every value valid under `node`."""
    classify = _CLASSIFY[tool]
    if "enum" in node or "const" in node:
        values = list(node["enum"]) if "enum" in node else [node["const"]]
        groups: dict[str, tuple[Any, list[Any]]] = {}
        for v in values:
            if accepts(node, v):
                rep = classify(v)
                groups.setdefault(repr(rep), (rep, []))[1].append(v)
        return [(rep, {"enum": vs}) for rep, vs in groups.values()]
    kinds = _kinds(node)
    open_kind = "number" if tool == SEVERITY else "string"
    if open_kind in kinds:
        raise GrammarError(f"{tool}: its `{KEYS[tool]}` must be an enum"
                           f"{' or an integer' if tool == SEVERITY else ''} for the grammar to "
                           "enforce decision_conflict")
    parts: list[tuple[Any, dict[str, Any]]] = []
    others = [k for k in kinds if k != "integer"]
    if others:
        parts.append((KEEP, {**node, "type": others}))
    if tool == SEVERITY and "integer" in kinds:
        lo, hi = node.get("minimum"), node.get("maximum")
        for rep, (a, b) in ((-1, (None, -1)), (0, (0, 0)), (1, (1, 1)), (2, (2, None))):
            low = a if lo is None else (lo if a is None else max(a, lo))
            high = b if hi is None else (hi if b is None else min(b, hi))
            if low is None or high is None or low <= high:
                narrowed = {**node, "type": "integer"}
                for key, bound in (("minimum", low), ("maximum", high)):
                    if bound is None:
                        narrowed.pop(key, None)
                    else:
                        narrowed[key] = bound
                parts.append((rep, narrowed))
    elif "integer" in kinds:
        parts.append((KEEP, {**node, "type": "integer"}))
    return parts


def _label(value: Any) -> str:
    return "keep" if value is KEEP else str(value).replace("-", "minus-")


def variants(tool: Tool, tracking: bool) -> list[Variant]:
    """The ways to call `tool`: one, or one per decision class of its conflict key."""
    key = KEYS.get(tool.name) if tracking else None
    props = tool.output.get("properties", {})
    if key is None or key not in props:
        return [Variant("", tool.output, KEEP)]
    found = []
    for value, narrowed in _partition(tool.name, props[key]):
        output = copy.deepcopy(tool.output)
        output["properties"][key] = narrowed
        found.append(Variant(_label(value), output, value))
    return found


def final_decision(calls: Iterable[tuple[str, Any]]) -> Decision:
    """The decision after (tool, value) calls, values classified as the variants are."""
    state = Decision()
    for tool, value in calls:
        classify = _CLASSIFY.get(tool)
        state = state.after(tool, classify(value) if classify else KEEP)
    return state
