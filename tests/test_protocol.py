"""Protocol resolution: schemas, the tool library, custom tools and their bounds."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from safer_toolkit import schemas
from safer_toolkit.validation import ProtocolInvalid, Validator, resolve_protocol
from tests.support.protocols import protocol, stored

JAILBREAK = {"name": "PROMPT-GUARD", "stage": "reasoning", "purpose": "screen for attacks",
             "output": {"type": "object", "properties": {
                 "attack": {"type": "string", "enum": ["none", "roleplay"]},
                 "signals": {"type": "array", "items": {"type": "string", "maxLength": 50},
                             "maxItems": 4}},
                 "required": ["attack", "signals"], "additionalProperties": False}}


def _walk_objects(schema: Any, path: str = ""):
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield path, schema
        for key, sub in schema.items():
            if key in ("properties",):
                for name, prop in sub.items():
                    yield from _walk_objects(prop, f"{path}/properties/{name}")
            elif key == "items":
                yield from _walk_objects(sub, f"{path}/items")


def test_library_v1_is_exactly_the_twelve_tools() -> None:
    lib = schemas.tool_library()["tools"]
    assert [(t["name"], t["stage"]) for t in lib] == [
        ("VISUAL-SCAN", "perception"), ("OCR-EXTRACT", "perception"),
        ("KEYWORD-FLAGGING", "perception"), ("CROSS-MODAL-SYNC", "perception"),
        ("INTENT-RADAR", "reasoning"), ("RISK-SCORER", "reasoning"),
        ("JAILBREAK-SENTINEL", "reasoning"), ("CONTEXT-ASSESSOR", "reasoning"),
        ("SAFETY-GATE", "decision"), ("REDIRECT-ENGINE", "decision"),
        ("REFUSAL-GENERATOR", "decision"), ("RESPONSE-PLANNER", "decision")]
    keys = {t["name"]: list(t["output"]["properties"]) for t in lib}
    assert keys["RISK-SCORER"] == ["category", "severity", "rationale"]
    scorer = next(t for t in lib if t["name"] == "RISK-SCORER")["output"]["properties"]
    assert scorer["category"]["enum"] == list(schemas.risk_categories())
    assert (scorer["severity"]["minimum"], scorer["severity"]["maximum"]) == (0, 3)


def test_every_output_schema_is_strict_structured_output_compatible() -> None:
    forbidden = {"oneOf", "patternProperties", "$ref", "anyOf", "allOf"}
    checked = 0
    for tool in schemas.tool_library()["tools"]:
        text = json.dumps(tool["output"])
        assert not any(f'"{k}"' in text for k in forbidden), tool["name"]
        for path, obj in _walk_objects(tool["output"]):
            assert obj.get("additionalProperties") is False, (tool["name"], path)
            assert sorted(obj["required"]) == sorted(obj["properties"]), (tool["name"], path)
            checked += 1
        for prop in tool["output"]["properties"].values():
            if prop["type"] == "string" and "enum" not in prop:
                assert prop["maxLength"] == 1000 and "pattern" not in prop
            if prop["type"] == "array":
                assert prop["maxItems"] == 16 and prop["items"]["maxLength"] == 1000
    assert checked == 12


def test_shipped_data_files_match_their_schemas() -> None:
    import jsonschema

    jsonschema.validate(schemas.tool_library(), schemas.load("tool_library.schema.json"))
    jsonschema.validate(schemas.taxonomy(), schemas.load("taxonomy.schema.json"))
    for tool in schemas.tool_library()["tools"]:
        jsonschema.validate(tool, schemas.load("tool.schema.json"))
    for name in schemas.SCHEMA_FILES:
        jsonschema.Draft202012Validator.check_schema(schemas.load(name))


def test_custom_tool_is_usable() -> None:
    doc = protocol("linear", tools=["VISUAL-SCAN", JAILBREAK, "SAFETY-GATE"])
    p = resolve_protocol(doc)
    assert p.tools["PROMPT-GUARD"].custom
    trace = stored(["VISUAL-SCAN", "SAFETY-GATE"])
    trace["calls"].insert(1, {"tool": "PROMPT-GUARD",
                              "output": {"attack": "none", "signals": []}})
    assert Validator(doc).validate(trace).valid
    trace["calls"][1]["output"]["attack"] = "sql"
    assert Validator(doc).validate(trace).codes == ["tool_output"]


def _custom(output_change: Any) -> dict[str, Any]:
    tool = copy.deepcopy(JAILBREAK)
    output_change(tool["output"])
    return protocol("linear", tools=["VISUAL-SCAN", tool, "SAFETY-GATE"])


@pytest.mark.parametrize("change,needle", [
    (lambda o: o.update({"$ref": "https://example.com/schema.json"}), "$ref"),
    (lambda o: o["properties"]["attack"].update({"pattern": "^a+$"}), "pattern"),
    (lambda o: o["properties"]["attack"].update({"oneOf": [{"type": "string"}]}), "oneOf"),
    (lambda o: o.update({"patternProperties": {}}), "patternProperties"),
    (lambda o: o.update({"additionalProperties": True}), ""),
    (lambda o: o.update({"required": ["attack"]}), "required"),
    (lambda o: o.update({"type": "string"}), ""),
])
def test_custom_output_schema_keywords_are_allow_listed(change, needle) -> None:
    with pytest.raises(ProtocolInvalid) as caught:
        resolve_protocol(_custom(change))
    assert all(i.code == "protocol_invalid" for i in caught.value.issues)
    assert needle in " ".join(i.message for i in caught.value.issues)


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"],
                  "additionalProperties": False}
    return schema


def test_custom_output_schema_depth_and_size_are_bounded() -> None:
    deep_ok = copy.deepcopy(JAILBREAK) | {"output": _nested(7)}
    resolve_protocol(protocol("linear", tools=["VISUAL-SCAN", deep_ok, "SAFETY-GATE"]))
    too_deep = copy.deepcopy(JAILBREAK) | {"output": _nested(9)}
    with pytest.raises(ProtocolInvalid, match="deeper than 8"):
        resolve_protocol(protocol("linear", tools=["VISUAL-SCAN", too_deep, "SAFETY-GATE"]))
    huge = copy.deepcopy(JAILBREAK)
    huge["output"]["properties"]["attack"]["enum"] = ["x" * 200] * 100
    with pytest.raises(ProtocolInvalid, match="bytes as JSON"):
        resolve_protocol(protocol("linear", tools=["VISUAL-SCAN", huge, "SAFETY-GATE"]))
    hostile = copy.deepcopy(JAILBREAK) | {"output": _nested(5000)}
    with pytest.raises(ProtocolInvalid):
        resolve_protocol(protocol("linear", tools=["VISUAL-SCAN", hostile, "SAFETY-GATE"]))


def test_duplicate_tools_and_missing_stage() -> None:
    with pytest.raises(ProtocolInvalid, match="listed twice"):
        resolve_protocol(protocol("linear", tools=["VISUAL-SCAN", "VISUAL-SCAN",
                                                   "INTENT-RADAR", "SAFETY-GATE"]))
    with pytest.raises(ProtocolInvalid, match="needs at least one reasoning"):
        resolve_protocol(protocol("mesh", tools=["VISUAL-SCAN", "SAFETY-GATE"]))


def test_limits_merge_over_defaults() -> None:
    assert resolve_protocol(protocol("loop")).max_visits == 2
    p = resolve_protocol(protocol("mesh", limits={"max_calls": 6}))
    assert (p.min_calls, p.max_calls, p.max_visits) == (3, 6, 1)


def test_shield_tool_rules() -> None:
    with pytest.raises(ProtocolInvalid, match="shield_tool"):
        resolve_protocol({k: v for k, v in protocol("shield").items() if k != "shield_tool"})
    doc = protocol("shield", tools=["JAILBREAK-SENTINEL", "INTENT-RADAR", "REFUSAL-GENERATOR"])
    with pytest.raises(ProtocolInvalid, match="SAFETY-GATE"):
        resolve_protocol(doc)
    # shield_tool is ignored elsewhere
    resolve_protocol(protocol("mesh", shield_tool="NOT-EVEN-A-TOOL"))


def test_shield_early_block_is_three_calls() -> None:
    v = Validator(protocol("shield"))
    early = stored(["JAILBREAK-SENTINEL", "SAFETY-GATE", "REFUSAL-GENERATOR"])
    early["calls"][1]["output"]["verdict"] = "refuse"
    assert v.validate(early).valid
    assert v.validate(stored(["JAILBREAK-SENTINEL", "SAFETY-GATE"])).codes == ["too_few_calls"]
    skip_gate = stored(["JAILBREAK-SENTINEL", "VISUAL-SCAN", "INTENT-RADAR",
                        "RESPONSE-PLANNER"])
    assert v.validate(skip_gate).codes == ["illegal_transition"]


def test_custom_topology_needs_its_graph() -> None:
    doc = protocol("custom")
    del doc["graph"]
    with pytest.raises(ProtocolInvalid) as caught:
        resolve_protocol(doc)
    assert [i.code for i in caught.value.issues] == ["protocol_invalid"]
    assert "needs a graph" in caught.value.issues[0].message
