"""Graph compilation per docs/protocol.md §3.2, on small tool sets where every edge can be
listed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from safer_toolkit.validation import GraphError, compile_graph, library_tools, resolve_protocol
from safer_toolkit.validation.graph import check_custom_graph, parse_graph


@dataclass
class T:
    name: str
    stage: str


P1, P2 = T("P1", "perception"), T("P2", "perception")
R1, R2 = T("R1", "reasoning"), T("R2", "reasoning")
D1, D2 = T("D1", "decision"), T("D2", "decision")
GATE = T("SAFETY-GATE", "decision")
S = T("S", "reasoning")


def edges(g) -> set[tuple[str, str]]:
    return set(g.edges)


def test_linear_is_one_chain_in_stage_order() -> None:
    g = compile_graph([D1, R1, P1, P2, R2], "linear")
    assert g.start == ("P1",) and g.terminal == ("D1",)
    assert edges(g) == {("P1", "P2"), ("P2", "R1"), ("R1", "R2"), ("R2", "D1")}
    assert g.required == ("P1", "P2", "R1", "R2", "D1")


def test_tree_trunk_then_one_reasoning_then_one_decision() -> None:
    g = compile_graph([P1, P2, R1, R2, D1, D2], "tree")
    assert g.start == ("P1",) and set(g.terminal) == {"D1", "D2"}
    assert edges(g) == {("P1", "P2"), ("P2", "R1"), ("P2", "R2"),
                        ("R1", "D1"), ("R1", "D2"), ("R2", "D1"), ("R2", "D2")}
    assert g.required == ("P1", "P2")


def test_mesh_within_stage_and_to_next_stage() -> None:
    g = compile_graph([P1, P2, R1, D1, D2], "mesh")
    assert set(g.start) == {"P1", "P2"} and set(g.terminal) == {"D1", "D2"}
    assert edges(g) == {("P1", "P2"), ("P2", "P1"), ("P1", "R1"), ("P2", "R1"),
                        ("R1", "D1"), ("R1", "D2"), ("D1", "D2"), ("D2", "D1")}
    assert g.required == ()


def test_loop_adds_back_edges_from_reasoning_to_perception() -> None:
    mesh = compile_graph([P1, P2, R1, D1], "mesh")
    loop = compile_graph([P1, P2, R1, D1], "loop")
    assert edges(loop) - edges(mesh) == {("R1", "P1"), ("R1", "P2")}


def test_shield_screens_first_and_gates_every_decision() -> None:
    g = compile_graph([S, P1, R1, R2, GATE, D1, D2], "shield", "S")
    assert g.start == ("S",) and set(g.terminal) == {"SAFETY-GATE", "D1", "D2"}
    assert edges(g) == {
        ("S", "P1"), ("S", "SAFETY-GATE"),
        ("P1", "R1"), ("P1", "R2"), ("R1", "R2"), ("R2", "R1"),
        ("R1", "SAFETY-GATE"), ("R2", "SAFETY-GATE"),
        ("SAFETY-GATE", "D1"), ("SAFETY-GATE", "D2"), ("D1", "D2"), ("D2", "D1"),
    }


def test_shield_without_other_perception_goes_to_reasoning() -> None:
    g = compile_graph([S, R1, GATE], "shield", "S")
    assert edges(g) == {("S", "R1"), ("S", "SAFETY-GATE"), ("R1", "SAFETY-GATE")}


@pytest.mark.parametrize("tools,topology,shield", [
    ([P1, D1], "linear", None),
    ([R1, D1], "tree", None),
    ([P1, R1], "mesh", None),
    ([P1, R1], "loop", None),
    ([S, R1, D1], "shield", "S"),  # no SAFETY-GATE
    ([S, R1, GATE], "shield", None),  # no shield_tool
    ([S, R1, GATE], "shield", "R9"),  # shield not among the tools
    ([S, R1, GATE], "shield", "SAFETY-GATE"),  # shield must screen, not decide
    ([S, P1, GATE], "shield", "S"),  # nothing left to reason with
])
def test_topology_needs(tools, topology, shield) -> None:
    with pytest.raises(GraphError):
        compile_graph(tools, topology, shield)


def test_library_graphs_cover_every_tool() -> None:
    tools = list(library_tools().values())
    for topology in ("linear", "tree", "mesh", "loop"):
        g = compile_graph(tools, topology)
        named = set(g.start) | {n for e in g.edges for n in e}
        assert named == {t.name for t in tools}, topology


def test_custom_graph_checks() -> None:
    tools = [P1, R1, D1]
    ok = parse_graph({"start": ["P1"], "edges": [["P1", "R1"], ["R1", "D1"], ["R1", "P1"]],
                      "terminal": ["D1"]})
    assert check_custom_graph(ok, tools) == []
    stranger = parse_graph({"start": ["P1"], "edges": [["P1", "X"]], "terminal": ["D1"]})
    assert "outside the protocol" in check_custom_graph(stranger, tools)[0]
    bad_terminal = parse_graph({"start": ["P1"], "edges": [["P1", "R1"]], "terminal": ["R1"]})
    assert "decision" in check_custom_graph(bad_terminal, tools)[0]
    dead_end = parse_graph({"start": ["P1", "R1"], "edges": [["P1", "D1"]], "terminal": ["D1"]})
    assert check_custom_graph(dead_end, tools) == ["no terminal node is reachable from start 'R1'"]


def test_given_graph_must_equal_compiled_as_sets() -> None:
    from tests.support.protocols import protocol

    doc = protocol("tree")
    compiled = resolve_protocol(doc).graph.to_json()
    compiled["edges"].reverse()  # order does not matter
    compiled["start"] = compiled["start"] * 2  # neither do repeats
    assert resolve_protocol({**doc, "graph": compiled}).graph.same_as(
        resolve_protocol(doc).graph)
