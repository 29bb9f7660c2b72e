"""Every docs/protocol.md §4 code on purpose-built cases: every topology, both modes, both forms."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from safer_toolkit.validation import Validator, from_stored, to_text
from tests.support.protocols import CASES, protocol, stored, valid_stored

TOPOLOGIES = list(CASES)
Mutation = Callable[[str, dict[str, Any]], dict[str, Any]]


def _walk(topology: str) -> list[str]:
    return list(CASES[topology][1])


def _set(trace: dict[str, Any], tool: str, **values: Any) -> None:
    for call in trace["calls"]:
        if call["tool"] == tool:
            call["output"].update(values)


def unknown_tool(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    t["calls"][1]["tool"] = "MYSTERY-TOOL"
    return t


def tool_output(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    t["calls"][0]["output"]["bogus"] = 1
    return t


def untyped_output(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    t["calls"][0]["output"] = "I looked at the picture carefully"
    return t


def bad_start(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    return stored(["INTENT-RADAR", *_walk(topology)[1:]])  # no topology starts at reasoning


def bad_end(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    walk = _walk(topology)
    while walk[-1] in ("SAFETY-GATE", "REDIRECT-ENGINE", "RESPONSE-PLANNER",
                       "REFUSAL-GENERATOR"):
        walk.pop()
    return stored(walk)


def illegal_transition(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    walk = _walk(topology)
    return stored(walk[:1] + ["SAFETY-GATE"] + walk[1:])


def visit_limit(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    return stored(_walk(topology) * 2)


def too_few_calls(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    return stored(_walk(topology)[:2])


def too_many_calls(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    return stored(_walk(topology) * 4)


def missing_tool(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    walk = _walk(topology)
    return stored(walk[:1] + walk[2:])


def over_refusal(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    _set(t, "INTENT-RADAR", intent="benign")
    _set(t, "RISK-SCORER", severity=0)
    _set(t, "SAFETY-GATE", verdict="refuse")
    return t


def unsafe_compliance(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    _set(t, "INTENT-RADAR", intent="harmful")
    _set(t, "RISK-SCORER", severity=3)
    _set(t, "SAFETY-GATE", verdict="comply")
    return t


def empty_answer(topology: str, t: dict[str, Any]) -> dict[str, Any]:
    t["answer"] = "  \n "
    return t


# (mutation, expected code, topologies where it applies or None for all)
TRACE_CASES: list[tuple[Mutation, str, set[str] | None]] = [
    (unknown_tool, "unknown_tool", None),
    (tool_output, "tool_output", None),
    (untyped_output, "untyped_output", None),
    (bad_start, "bad_start", None),
    (bad_end, "bad_end", None),
    (illegal_transition, "illegal_transition", None),
    (visit_limit, "visit_limit", None),
    (too_few_calls, "too_few_calls", None),
    (too_many_calls, "too_many_calls", None),
    (missing_tool, "missing_tool", {"linear", "tree"}),
    (over_refusal, "decision_conflict", None),
    (unsafe_compliance, "decision_conflict", None),
    (empty_answer, "empty_answer", None),
]


def _check(topology: str, trace: dict[str, Any], form: str, mode: str) -> tuple[bool, dict]:
    record: dict[str, Any] = {"protocol": protocol(topology)}
    if form == "stored":
        record.update(trace)
    else:
        record["response"] = to_text(from_stored(trace))
    result = Validator(mode=mode).validate(record)
    return result.valid, {i.code: i.severity for i in result.issues}


@pytest.mark.parametrize("mode", ["strict", "lenient"])
@pytest.mark.parametrize("form", ["stored", "text"])
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_valid_trace_has_no_issue(topology: str, form: str, mode: str) -> None:
    valid, codes = _check(topology, valid_stored(topology), form, mode)
    assert valid and codes == {}


@pytest.mark.parametrize("mode", ["strict", "lenient"])
@pytest.mark.parametrize("form", ["stored", "text"])
@pytest.mark.parametrize("mutation,code,topology", [
    pytest.param(m, code, topology, id=f"{m.__name__}-{topology}")
    for m, code, only in TRACE_CASES for topology in TOPOLOGIES
    if only is None or topology in only])
def test_trace_codes(mutation: Mutation, code: str, topology: str, form: str, mode: str) -> None:
    trace = mutation(topology, copy.deepcopy(valid_stored(topology)))
    valid, codes = _check(topology, trace, form, mode)
    assert code in codes, codes
    if code == "untyped_output" and mode == "lenient":
        assert codes[code] == "warning" and valid  # lenient: untyped is allowed
    else:
        assert codes[code] == "error" and not valid


def test_missing_tool_does_not_apply_to_open_topologies() -> None:
    # mesh lets a walk skip any tool: dropping one perception call stays valid
    walk = ["VISUAL-SCAN", "INTENT-RADAR", "RISK-SCORER", "SAFETY-GATE"]
    valid, codes = _check("mesh", stored(walk), "stored", "strict")
    assert valid, codes


TEXT = to_text(from_stored(valid_stored("linear")))


@pytest.mark.parametrize("mode", ["strict", "lenient"])
@pytest.mark.parametrize("text,code", [
    ("Sure! " + TEXT, "tag_structure"),
    (TEXT + "\n<answer>again</answer>", "tag_structure"),
    (TEXT.replace("</thinking>", ""), "tag_structure"),
    ("<answer>\nhi\n</answer>\n" + TEXT.split("<answer>")[0], "tag_structure"),
    (TEXT.split("</thinking>")[1], "missing_thinking"),
    (TEXT.split("<answer>")[0], "missing_answer"),
    ("<thinking>\n</thinking>\n<answer>\nok\n</answer>", "too_few_calls"),
])
def test_text_structure_codes(text: str, code: str, mode: str) -> None:
    result = Validator(protocol("linear"), mode=mode).validate({"response": text})
    assert code in result.codes and not result.valid


def test_tool_syntax_is_strict_only() -> None:
    text = TEXT.replace("[INTENT-RADAR]", "I think the user is fine.\n[INTENT-RADAR]")
    strict = Validator(protocol("linear")).validate({"response": text})
    lenient = Validator(protocol("linear"), mode="lenient").validate({"response": text})
    assert strict.codes == ["tool_syntax"]
    assert lenient.valid and lenient.issues == []


@pytest.mark.parametrize("record,code", [
    ({"calls": [{"tool": "VISUAL-SCAN", "output": {}, "note": "extra"}], "answer": "a"},
     "schema"),
    ({"calls": "VISUAL-SCAN", "answer": "a"}, "schema"),
    ({"calls": []}, "schema"),
    ({"response": 3}, "schema"),
    ({"id": "x"}, "schema"),
    ({"response": "x", "calls": [], "answer": "a"}, "schema"),
])
def test_record_schema(record: dict[str, Any], code: str) -> None:
    result = Validator(protocol("linear")).validate(record)
    assert code in result.codes and not result.valid


def test_extra_record_keys_are_ignored() -> None:
    record = {**valid_stored("linear"), "model": "m", "score": 3}
    assert Validator(protocol("linear")).validate(record).valid


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("change,code", [
    ({"label": "harmful", "risk_category": "benign"}, "protocol_invalid"),
    ({"protocol_version": "2"}, "protocol_invalid"),
    ({"extra": 1}, "protocol_invalid"),
    ({"persona": None}, "protocol_invalid"),
    ({"tools": ["VISUAL-SCAN", "NOT-A-TOOL", "SAFETY-GATE"]}, "protocol_invalid"),
    ({"limits": {"min_calls": 5, "max_calls": 4}}, "protocol_invalid"),
    ({"graph": {"start": [], "edges": "all"}}, "graph_invalid"),
    ({"graph": {"start": ["VISUAL-SCAN"], "edges": [], "terminal": ["SAFETY-GATE"]}},
     "graph_invalid"),
])
def test_protocol_codes(topology: str, change: dict[str, Any], code: str) -> None:
    doc = protocol(topology, **change)
    record = {"protocol": doc, **valid_stored(topology)}
    result = Validator().validate(record)
    assert code in result.codes and not result.valid, result.codes


def test_no_protocol_at_all_is_protocol_invalid() -> None:
    assert Validator().validate(valid_stored("linear")).codes == ["protocol_invalid"]


def test_protocol_given_as_json_string_and_default_protocol() -> None:
    import json

    record = {"protocol": json.dumps(protocol("tree")), **valid_stored("tree")}
    assert Validator().validate(record).valid
    assert Validator(protocol("tree")).validate(valid_stored("tree")).valid


def test_released_sft_row_checks_its_assistant_turn() -> None:
    messages = [{"role": "system", "content": [{"type": "text", "text": "sys"}]},
                {"role": "user", "content": [{"type": "image", "text": None},
                                             {"type": "text", "text": "q"}]},
                {"role": "assistant", "content": [{"type": "text", "text": TEXT}]}]
    v = Validator(protocol("linear"))
    assert v.validate({"messages": messages}).valid
    messages[2]["content"][0]["text"] = TEXT.replace("SAFETY-GATE", "REDIRECT-ENGINE")
    assert "unknown_tool" in v.validate({"messages": messages}).codes


def test_unknown_tool_breaks_the_walk_where_it_stands() -> None:
    trace = stored(["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"])
    trace["calls"][0]["tool"] = "MYSTERY"
    codes = Validator(protocol("linear")).validate(trace).codes
    assert {"unknown_tool", "bad_start", "illegal_transition"} <= set(codes)


def test_issue_paths_point_at_the_call() -> None:
    trace = stored(["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE"])
    trace["calls"][1]["output"]["intent"] = "curious"
    [stored_issue] = Validator(protocol("linear")).validate(trace).issues
    assert (stored_issue.code, stored_issue.path) == ("tool_output", "/calls/1/output/intent")
    text = to_text(from_stored(trace))
    [text_issue] = Validator(protocol("linear")).validate({"response": text}).issues
    assert (text_issue.code, text_issue.path) == ("tool_output", "call[1]/intent")
