"""The protocol vocabulary: read from the schema files, and the one place that names tools.

Also the pieces every module now shares through it: the walk check, the stated decision and
the protocol document.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from safer_toolkit import schemas
from safer_toolkit.builder.assemble import trace_decision
from safer_toolkit.validation import (
    Call,
    Trace,
    check_trace,
    legal_walk,
    library_protocol_document,
    protocol_document,
    resolve_protocol,
    stated_verdict,
)
from safer_toolkit.validation import vocabulary as V
from tests.support.protocols import OUT
from tests.support.protocols import protocol as case_protocol

ROOT = Path(__file__).resolve().parent.parent
WALK_CODES = {"bad_start", "illegal_transition", "bad_end", "visit_limit", "missing_tool",
              "too_few_calls", "too_many_calls"}


def test_the_vocabulary_is_what_the_schema_files_say() -> None:
    library = json.loads((ROOT / "schemas" / "tool_library_v1.json").read_text())
    protocol = json.loads((ROOT / "schemas" / "protocol.schema.json").read_text())
    assert tuple(t["name"] for t in library["tools"]) == V.TOOLS
    assert dict(V.TOOL_STAGES) == {t["name"]: t["stage"] for t in library["tools"]}
    assert V.STAGES == ("perception", "reasoning", "decision")
    assert (*V.TOPOLOGIES, V.CUSTOM_TOPOLOGY) == tuple(protocol["properties"]["topology"]["enum"])
    assert protocol["properties"]["protocol_version"]["const"] == V.PROTOCOL_VERSION
    gate = next(t for t in library["tools"] if t["name"] == V.GATE)
    assert tuple(gate["output"]["properties"]["verdict"]["enum"]) == V.VERDICTS


def test_every_verdict_has_decision_tools_to_carry_it_out() -> None:
    assert set(V.FOLLOW_UP) == set(V.VERDICTS)
    for tools in V.FOLLOW_UP.values():
        assert all(V.TOOL_STAGES[t] == "decision" and t != V.GATE for t in tools)
    assert dict(V.FOLLOW_UP_DECISION) == {V.REFUSAL: "refuse", V.REDIRECT: "redirect",
                                          V.PLANNER: "comply"}


def test_no_module_but_the_vocabulary_spells_a_tool_name() -> None:
    names = [t["name"] for t in schemas.tool_library()["tools"]]
    quoted = re.compile("[\"'](" + "|".join(map(re.escape, names)) + ")[\"']")
    offenders = sorted(
        str(path.relative_to(ROOT)) for path in ROOT.rglob("*.py")
        if not {"tests", ".venv", "build"} & set(path.relative_to(ROOT).parts)
        and path.name != "vocabulary.py" and quoted.search(path.read_text(encoding="utf-8")))
    assert offenders == []


@pytest.mark.parametrize("topology", [*V.TOPOLOGIES, V.CUSTOM_TOPOLOGY])
def test_legal_walk_agrees_with_the_validators_walk_codes(topology: str) -> None:
    protocol = resolve_protocol(case_protocol(topology))
    graph, names = protocol.graph, list(protocol.tools)
    rng = random.Random(topology)
    legal = 0
    for _ in range(300):  # walks along the graph, some with one step changed
        walk = [rng.choice(graph.start)]
        for _ in range(rng.randrange(6)):
            walk.append(rng.choice(graph.successors(walk[-1]) or names))
        if rng.random() < 0.3:
            walk[rng.randrange(len(walk))] = rng.choice(names)
        trace = Trace([Call(n, dict(OUT[n])) for n in walk], "An answer.")
        codes = {i.code for i in check_trace(trace, protocol).issues}
        assert legal_walk(walk, protocol) == (not codes & WALK_CODES), (walk, codes)
        legal += legal_walk(walk, protocol)
    assert 0 < legal < 300


def _calls(*spec: tuple[str, object]) -> list[Call]:
    return [Call(tool, output) for tool, output in spec]


def test_stated_verdict_reads_the_gate_then_the_follow_ups_it_is_given() -> None:
    gate = (V.GATE, {"verdict": "comply", "reason": "fine"})
    redirect = (V.REDIRECT, {"alternative": "ask a locksmith"})
    refusal = (V.REFUSAL, {"reason": "no", "resources": []})
    assert stated_verdict(_calls(refusal, gate)) == ("comply", 1)
    assert stated_verdict(_calls(refusal, redirect)) == ("refuse", 0)  # protocol §4: refusals
    assert stated_verdict(_calls(redirect)) is None
    assert stated_verdict(_calls(refusal, redirect), implied=V.FOLLOW_UP_DECISION) \
        == ("redirect", 1)
    # the builder's reading: untyped follow-ups count, and the label decides when nothing does
    untyped = Trace(_calls((V.SCAN, "a knife"), (V.PLANNER, "plan the answer")), "Sure.")
    assert trace_decision(untyped, "harmful") == "comply"
    assert trace_decision(Trace(_calls((V.SCAN, "a knife")), "No."), "harmful") == "refuse"


def test_protocol_documents_carry_the_schema_version_in_one_key_order() -> None:
    doc = protocol_document("p-1", {"name": "n", "style": "", "expertise": ""}, "benign",
                            "benign", V.SHIELD, [V.SCAN, V.SENTINEL, V.INTENT, V.GATE],
                            shield_tool=V.SENTINEL, graph=None, limits={"max_calls": 6})
    assert list(doc) == ["protocol_version", "id", "persona", "risk_category", "label",
                         "topology", "tools", "shield_tool", "limits"]
    assert doc["protocol_version"] == V.PROTOCOL_VERSION
    assert resolve_protocol(doc).max_calls == 6
    assert library_protocol_document(V.SHIELD)["shield_tool"] == V.SENTINEL


def test_the_protocol_document_names_every_term_of_the_vocabulary():
    """docs/protocol.md is the specification the code cites: it must not drift from the schema
    files the vocabulary is read from (each tool in the library table with its stage; every
    topology, verdict and error code by name)."""
    from pathlib import Path

    from safer_toolkit.validation import CODES
    from safer_toolkit.validation.vocabulary import (
        PROTOCOL_VERSION,
        TOOL_STAGES,
        TOPOLOGIES,
        VERDICTS,
    )

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    assert [t for t, stage in TOOL_STAGES.items() if f"| {t} | {stage} |" not in doc] == []
    assert [t for t in (*TOPOLOGIES, *VERDICTS, *CODES) if f"`{t}`" not in doc] == []
    assert f"version {PROTOCOL_VERSION}" in doc.splitlines()[0]
