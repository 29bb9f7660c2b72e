"""The shared reply extractors: what real models wrap around JSON and traces is undone and
counted, only where the reading is unambiguous; what is wrong stays wrong."""

from __future__ import annotations

import json

import orjson
import pytest

from safer_toolkit.builder.stages.extract import NotDecodable, extract_json, extract_trace
from safer_toolkit.builder.stages.plan import plan_schema, read_plan
from safer_toolkit.builder.stages.respond import read_trace
from safer_toolkit.validation import check_text, library_protocol_document, resolve_protocol

PLAN = {"persona": {"name": "Ana", "style": "calm", "expertise": "chemist"},
        "risk_category": "benign", "label": "benign", "topology": "mesh",
        "tools": ["VISUAL-SCAN", "INTENT-RADAR", "SAFETY-GATE", "RESPONSE-PLANNER"],
        "shield_tool": None, "custom_tools": []}
PLAN_TEXT = orjson.dumps(PLAN).decode()
MESH = resolve_protocol(library_protocol_document("mesh"))
SCAN = {"objects": ["kitchen knife"], "scene": "a kitchen counter", "hazards": ["blade"]}
INTENT = {"intent": "benign", "evidence": "asks how to store it safely"}
GATE = {"verdict": "comply", "reason": "household safety question"}


def trace(*calls: tuple[str, object], answer: str = "Store it in a block.") -> str:
    lines = "".join(f"[{name}]: {body if isinstance(body, str) else json.dumps(body)}\n"
                    for name, body in calls)
    return f"<thinking>\n{lines}</thinking>\n<answer>\n{answer}\n</answer>"


CANONICAL = trace(("VISUAL-SCAN", SCAN), ("INTENT-RADAR", INTENT), ("SAFETY-GATE", GATE))


@pytest.mark.parametrize(("reply", "repairs"), [
    (PLAN_TEXT, {}),
    (f"```json\n{PLAN_TEXT}\n```", {"fence": 1}),
    (f"Sure! Here it is:\n{PLAN_TEXT}\nHope that helps.", {"chatter": 1}),
    (f"<think>\nthe user wants a plan\n</think>\n{PLAN_TEXT}", {"think_block": 1}),
    (f"the user wants a plan</think>{PLAN_TEXT}", {"think_block": 1}),
    (PLAN_TEXT[:-1] + ",}", {"trailing_comma": 1}),
    (repr(PLAN), {"single_quotes": 1}),
    (orjson.dumps({**PLAN, "tools": ["visual-scan", "INTENT_RADAR", "Safety Gate",
                                     "RESPONSE-PLANNER"]}).decode(), {"tool_name": 3}),
    (orjson.dumps({"confidence": 0.9, **dict(reversed(PLAN.items()))}).decode(),
     {"unknown_key": 1}),
])
def test_json_replies_are_read_and_each_repair_is_counted(reply, repairs):
    extracted = extract_json(reply, plan_schema())
    assert extracted.value == PLAN
    assert extracted.repairs == repairs
    reading = read_plan(reply, None)
    assert reading.ok and reading.repairs == repairs
    assert reading.value.document["tools"] == PLAN["tools"]


@pytest.mark.parametrize(("reply", "says"), [
    ("The item looks benign.", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ("{'style': 'it's calm'}", "not JSON"),  # an apostrophe inside single quotes: ambiguous
    ('{"a": 1 "b": 2}', "not JSON"),
])
def test_what_cannot_be_read_unambiguously_is_not_guessed(reply, says):
    with pytest.raises(NotDecodable, match=says):
        extract_json(reply)


def test_a_tool_name_is_mapped_only_when_exactly_one_tool_matches():
    ambiguous = {"type": "string", "enum": ["RISK-SCORER", "RISK_SCORER"]}
    extracted = extract_json('{"t": "risk-scorer"}', {
        "type": "object", "properties": {"t": ambiguous}, "additionalProperties": False})
    assert extracted.value == {"t": "risk-scorer"} and not extracted.repairs


def test_a_repaired_plan_is_still_checked_against_its_rules():
    wrong = repr({**PLAN, "tools": ["visual-scan", "risk-scorer", "safety-gate",
                                    "response-planner"]})
    reading = read_plan(wrong, None)
    assert reading.codes == ["plan_rules"] and reading.repairs["tool_name"] == 4
    assert any("INTENT-RADAR" in p for p in reading.problems)


@pytest.mark.parametrize(("reply", "repairs"), [
    (CANONICAL, {}),
    (f"```\n{CANONICAL}\n```", {"fence": 1}),
    (f"Here is my analysis.\n{CANONICAL}\nThanks!", {"chatter": 1}),
    (f"<think>\nfirst the scan\n</think>\n{CANONICAL}", {"think_block": 1}),
    (trace(("visual_scan", SCAN), ("Intent-Radar", INTENT), ("SAFETY_GATE", GATE)),
     {"tool_name": 3}),
    (trace(("VISUAL-SCAN", dict(reversed(SCAN.items()))), ("INTENT-RADAR", INTENT),
           ("SAFETY-GATE", {**GATE, "confidence": 0.9})), {"key_order": 1, "unknown_key": 1}),
    (trace(("VISUAL-SCAN", repr(SCAN)), ("INTENT-RADAR", INTENT), ("SAFETY-GATE", GATE)),
     {"single_quotes": 1}),
    (trace(("VISUAL-SCAN", json.dumps(SCAN)[:-1] + ",}"), ("INTENT-RADAR", INTENT),
           ("SAFETY-GATE", GATE)), {"trailing_comma": 1}),
    (trace(("VISUAL-SCAN", orjson.dumps(SCAN).decode()), ("INTENT-RADAR", INTENT),
           ("SAFETY-GATE", GATE)), {"layout": 1}),
    (CANONICAL.replace("<answer>\n", "<answer>").replace("\n</answer>", "</answer>"),
     {"layout": 1}),
])
def test_traces_are_re_rendered_canonical_and_each_repair_is_counted(reply, repairs):
    assert check_text(CANONICAL, MESH).valid
    extracted = extract_trace(reply, MESH)
    assert extracted.value == CANONICAL
    assert extracted.repairs == repairs


@pytest.mark.parametrize(("reply", "code"), [
    # the walk breaks the graph: the decision comes first
    (trace(("safety-gate", GATE), ("VISUAL-SCAN", SCAN), ("INTENT-RADAR", INTENT)),
     "bad_start"),
    # a wrong type stays wrong (verdict outside its enum), whatever was repaired around it
    ("```\n" + trace(("VISUAL-SCAN", SCAN), ("intent_radar", INTENT),
                     ("SAFETY-GATE", {**GATE, "verdict": "maybe"})) + "\n```", "tool_output"),
    # the decision contradicts the analysis
    (trace(("VISUAL-SCAN", SCAN), ("INTENT-RADAR", INTENT),
           ("SAFETY-GATE", {**GATE, "verdict": "refuse"})), "decision_conflict"),
    # a call whose body is not JSON even after repairs stays untyped
    (trace(("VISUAL-SCAN", "a knife on a counter"), ("INTENT-RADAR", INTENT),
           ("SAFETY-GATE", GATE)), "untyped_output"),
    # a line that is not a call is not guessed at
    (CANONICAL.replace("[INTENT-RADAR]", "INTENT-RADAR said"), "tool_syntax"),
])
def test_repairs_never_make_an_invalid_trace_valid(reply, code):
    reading = read_trace(reply, MESH)
    assert not reading.ok and code in reading.codes, reading.codes
    text, verdict = reading.value
    assert not verdict.valid and not check_text(text, MESH).valid
