"""`safer-toolkit grammar` (print and --check) and the per-server request extras."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safer_toolkit.builder.stages.plan import plan_schema
from safer_toolkit.cli import main
from safer_toolkit.validation import (
    from_stored,
    library_protocol_document,
    resolve_protocol,
    to_text,
)
from safer_toolkit.validation.grammar import GrammarError, compile_grammar
from safer_toolkit.validation.grammar.json_schema import json_text
from safer_toolkit.validation.grammar.matcher import GrammarMatcher
from safer_toolkit.validation.grammar.requests import (
    SERVERS,
    grammar_extras,
    json_extras,
    schema_grammar,
)
from tests.support.protocols import protocol, stored, valid_stored


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["grammar", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def proto_file(tmp_path: Path) -> Path:
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(protocol("mesh")))
    return path


def test_prints_the_grammar_in_each_dialect(capsys, proto_file, tmp_path):
    for dialect in ("gbnf", "ebnf"):
        code, out, _ = _run(capsys, str(proto_file), "--dialect", dialect)
        assert code == 0
        assert out.startswith(f"# SaFeR-ToolKit trace grammar ({dialect})")
        assert "\nroot ::= \"<thinking>\\n\" w0" in out
        assert GrammarMatcher(out).match(to_text(from_stored(valid_stored("mesh")))).accepted
    out_file = tmp_path / "g.gbnf"
    code, out, err = _run(capsys, str(proto_file), "--out", str(out_file), "--generation")
    assert code == 0 and out == "" and "walk states" in err
    assert "narrowed for generation" in out_file.read_text()
    code, out, _ = _run(capsys, "--library", "default", "--topology", "shield")
    assert code == 0 and "[JAILBREAK-SENTINEL]: " in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--library", "default", "--topology", "linear"], "no valid walk"),
    (["--library", "default"], "--library and --topology go together"),
    ([], "give a PROTOCOL.json"),
    (["missing.json"], "missing.json"),
    (["--max-string", "0", "--library", "default", "--topology", "mesh"], "positive integer"),
])
def test_usage_and_unusable_protocols_exit_2_with_a_message(capsys, argv, message):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_an_invalid_protocol_is_named(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(protocol("mesh", label="harmful", risk_category="benign")))
    code, _, err = _run(capsys, str(bad))
    assert code == 2 and "the protocol is invalid" in err and "/protocol/risk_category" in err


@pytest.mark.parametrize("doc", [[], "mesh", 3, None])
def test_a_document_that_is_not_an_object_is_named(capsys, tmp_path, doc):
    """`compile_grammar` takes any parsed JSON: the validator says what is wrong with it."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, _, err = _run(capsys, str(bad))
    if doc is None:  # `null` reads as no protocol given
        assert code == 2 and "give a PROTOCOL.json" in err
    else:
        assert code == 2 and "protocol is not a JSON object" in err and "Traceback" not in err


def _records(tmp_path: Path, lines: list[Any]) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_check_reports_per_record_and_exits_1_on_a_refusal(capsys, tmp_path):
    good = to_text(from_stored(valid_stored("mesh")))
    swapped = good.replace("[OCR-EXTRACT]", "[SAFETY-GATE]", 1)
    lines = [{"id": "good", "protocol": protocol("mesh"), "response": good},
             {"id": 7, "protocol": json.dumps(protocol("mesh")), "response": swapped},
             {"id": "stored", "protocol": protocol("tree"), **valid_stored("tree")},
             {"id": "orphan", "response": good},
             "{not json",
             {"id": "bad-protocol", "protocol": {"id": "x"}, "response": good}]
    report = tmp_path / "report.jsonl"
    code, out, _ = _run(capsys, "--check", str(_records(tmp_path, lines)), "--report",
                        str(report))
    assert code == 1
    assert "6 records: 2 accepted, 4 refused (3 without a grammar)" in out
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(6))
    assert [r["id"] for r in rows] == ["good", 7, "stored", "orphan", None, "bad-protocol"]
    assert [r["accepted"] for r in rows] == [True, False, True, False, False, False]
    refused = rows[1]
    assert refused["line"] == 2 and refused["column"] == 2
    assert refused["near"].startswith("SAFETY-GATE]")
    assert good.index("[OCR-EXTRACT]") + 1 == refused["offset"]
    assert "no protocol" in rows[3]["error"] and "records.jsonl:5" in rows[4]["error"]
    assert "protocol is invalid" in rows[5]["error"]


def test_check_with_a_default_protocol_accepts_and_exits_0(capsys, tmp_path, proto_file):
    good = to_text(from_stored(valid_stored("mesh")))
    path = _records(tmp_path, [{"id": i, "response": good} for i in range(3)])
    code, out, _ = _run(capsys, str(proto_file), "--check", str(path), "--json")
    assert code == 0
    assert json.loads(out) == {"records": 3, "accepted": 3, "refused": 0, "no_grammar": 0}
    code, _, err = _run(capsys, str(proto_file), "--check", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "nope.jsonl" in err


def test_request_extras_per_server_kind():
    grammar = compile_grammar(protocol("shield"))
    assert grammar_extras(grammar, "vllm") == {
        "structured_outputs": {"grammar": grammar.text("ebnf")}}
    assert grammar_extras(grammar, "sglang") == {"ebnf": grammar.text("ebnf")}
    for server in ("llama.cpp", "llama-cpp-python"):
        assert grammar_extras(grammar, server) == {"grammar": grammar.text("gbnf")}
    with pytest.raises(GrammarError, match="takes no grammar"):
        grammar_extras(grammar, "openai")
    loop = library_protocol_document("loop")  # a document: compiled under SERVER_LIMITS
    narrowed = grammar_extras(loop, "sglang")["ebnf"]
    assert "walk states ≤ 600" in narrowed and len(narrowed) < 400_000
    assert grammar_extras(resolve_protocol(loop), "sglang")["ebnf"] == narrowed
    with pytest.raises(ValueError, match="unknown server kind"):
        grammar_extras(grammar, "tgi")
    schema = plan_schema()
    for server in SERVERS:
        extras = json_extras(schema, server, name="plan")
        fmt = extras["response_format"]
        if server == "llama-cpp-python":
            assert fmt == {"type": "json_object", "schema": schema}
        else:
            assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] is schema
            assert fmt["json_schema"]["name"] == "plan"
            assert fmt["json_schema"].get("strict") is (None if server == "llama.cpp" else True)
    assert json_extras(schema, "llama.cpp", via="grammar") == {
        "grammar": schema_grammar(schema, "gbnf")}


def test_the_planner_schema_as_a_grammar_accepts_a_plan_and_refuses_a_broken_one():
    schema = plan_schema()
    plan = {"persona": {"name": "Ana", "style": "calm", "expertise": "chemistry safety"},
            "risk_category": "weapons_physical_harm", "label": "harmful",
            "topology": "shield", "tools": ["JAILBREAK-SENTINEL", "VISUAL-SCAN",
                                            "INTENT-RADAR", "SAFETY-GATE"],
            "shield_tool": "JAILBREAK-SENTINEL",
            "custom_tools": []}
    plan = {k: plan[k] for k in schema["properties"]}  # the schema's key order
    matcher = GrammarMatcher(schema_grammar(schema, "gbnf"))
    assert matcher.match(json_text(plan)).accepted
    assert not matcher.match(json_text({**plan, "label": "maybe"})).accepted
    assert not matcher.match(json_text({**plan, "shield_tool": None})[:-1]).accepted
    assert matcher.match(json_text({**plan, "shield_tool": None})).accepted


def test_library_grammar_is_named_by_its_protocol(capsys):
    doc = library_protocol_document("tree")
    code, out, _ = _run(capsys, "--library", "default", "--topology", "tree", "--dialect", "ebnf")
    assert code == 0 and f"protocol {doc['id']}:" in out
    assert stored(["VISUAL-SCAN"])["calls"][0]["tool"] in out
