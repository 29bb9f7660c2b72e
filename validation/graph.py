"""Transition graphs: compile one from (tools, topology) per docs/protocol.md §3.2, or check a
custom one.

The builder never trusts a planner with edges: it picks tools and a topology and this module
derives the graph, so every generated protocol is well-formed by construction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise, permutations
from typing import Any, Protocol

from ..errors import ProtocolError
from .vocabulary import (
    DECISION,
    GATE,
    LINEAR,
    LOOP,
    MESH,
    PERCEPTION,
    REASONING,
    SHIELD,
    STAGES,
    TOPOLOGIES,
    TREE,
)


class StagedTool(Protocol):
    """What the graph rules read of a tool (read-only, so frozen dataclasses match)."""

    @property
    def name(self) -> str: ...
    @property
    def stage(self) -> str: ...


class WalkRules(Protocol):
    """What a walk is checked against: a resolved protocol's graph and limits."""

    @property
    def graph(self) -> Graph: ...
    @property
    def min_calls(self) -> int: ...
    @property
    def max_calls(self) -> int: ...
    @property
    def max_visits(self) -> int: ...


class GraphError(ProtocolError, ValueError):
    """The tools cannot form the requested topology (reported as `protocol_invalid`)."""


@dataclass(frozen=True)
class Graph:
    """Start nodes, edges and terminal nodes, in compile order, plus the tools a walk must visit."""

    start: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    terminal: tuple[str, ...]
    required: tuple[str, ...] = ()
    start_set: frozenset[str] = field(init=False, repr=False, compare=False)
    edge_set: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)
    terminal_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_set", frozenset(self.start))
        object.__setattr__(self, "edge_set", frozenset(self.edges))
        object.__setattr__(self, "terminal_set", frozenset(self.terminal))

    def to_json(self) -> dict[str, Any]:
        """The protocol-document form: `{"start", "edges", "terminal"}`."""
        return {"start": list(self.start), "edges": [list(e) for e in self.edges],
                "terminal": list(self.terminal)}

    def same_as(self, other: Graph) -> bool:
        """Graphs are compared as sets of start nodes, terminal nodes and edges
        (docs/protocol.md §3.1)."""
        return (self.start_set == other.start_set and self.edge_set == other.edge_set
                and self.terminal_set == other.terminal_set)

    def successors(self, node: str) -> list[str]:
        return [b for a, b in self.edges if a == node]


def _layers(tools: Sequence[StagedTool]) -> tuple[list[str], list[str], list[str]]:
    by_stage: dict[str, list[str]] = {s: [] for s in STAGES}
    for t in tools:
        by_stage[t.stage].append(t.name)
    return by_stage[PERCEPTION], by_stage[REASONING], by_stage[DECISION]


def _need(topology: str, **stages: list[str]) -> None:
    empty = [name for name, tools in stages.items() if not tools]
    if empty:
        raise GraphError(f"topology {topology!r} needs at least one {' and one '.join(empty)} tool")


def _within(stage: list[str]) -> list[tuple[str, str]]:
    return list(permutations(stage, 2))


def _across(a: Iterable[str], b: Sequence[str]) -> list[tuple[str, str]]:
    return [(x, y) for x in a for y in b]


def _chain(nodes: Sequence[str]) -> list[tuple[str, str]]:
    return list(pairwise(nodes))


def _mesh(p: list[str], r: list[str], d: list[str]) -> list[tuple[str, str]]:
    return _within(p) + _across(p, r) + _within(r) + _across(r, d) + _within(d)


def compile_graph(tools: Sequence[StagedTool], topology: str,
                  shield_tool: str | None = None) -> Graph:
    """Derive the transition graph of `topology` over `tools` (in listed order)."""
    p, r, d = _layers(tools)
    if topology == LINEAR:
        _need(topology, perception=p, reasoning=r, decision=d)
        chain = p + r + d
        return Graph((chain[0],), tuple(_chain(chain)), (chain[-1],), required=tuple(chain))
    if topology == TREE:
        _need(topology, perception=p, reasoning=r, decision=d)
        edges = _chain(p) + _across([p[-1]], r) + _across(r, d)
        return Graph((p[0],), tuple(edges), tuple(d), required=tuple(p))
    if topology == MESH:
        _need(topology, perception=p, reasoning=r, decision=d)
        return Graph(tuple(p), tuple(_mesh(p, r, d)), tuple(d))
    if topology == LOOP:
        _need(topology, perception=p, reasoning=r, decision=d)
        return Graph(tuple(p), tuple(_mesh(p, r, d) + _across(r, p)), tuple(d))
    if topology == SHIELD:
        return _shield(p, r, d, shield_tool)
    raise GraphError(f"unknown topology {topology!r}; expected one of {', '.join(TOPOLOGIES)}")


def _shield(p: list[str], r: list[str], d: list[str], shield: str | None) -> Graph:
    if not shield:
        raise GraphError("a shield protocol needs `shield_tool`")
    if shield not in p and shield not in r:
        raise GraphError(f"shield_tool {shield!r} must be a perception or reasoning tool "
                         "of the protocol")
    if GATE not in d:
        raise GraphError(f"a shield protocol needs the decision tool {GATE}")
    p = [t for t in p if t != shield]
    r = [t for t in r if t != shield]
    _need(SHIELD, reasoning=r)
    others = [t for t in d if t != GATE]
    edges = (_across([shield], p or r) + [(shield, GATE)]
             + _within(p) + _across(p, r) + _within(r)
             + _across(r, [GATE]) + _across([GATE], others) + _within(others))
    return Graph((shield,), tuple(edges), tuple(d))


def legal_walk(names: Sequence[str], rules: WalkRules) -> bool:
    """Whether the tool names form a whole legal walk (docs/protocol.md §4): a start node, edges
    only, a terminal node, within the call and visit limits, every required tool visited.

    The one walk rule: the validator's fast path, the offline responder and the perturbations
    ask it; the validator's careful checks explain a failure code by code.
    """
    n = len(names)
    if not n or not rules.min_calls <= n <= rules.max_calls:
        return False
    graph = rules.graph
    if names[0] not in graph.start_set or names[-1] not in graph.terminal_set \
            or not graph.edge_set.issuperset(pairwise(names)):
        return False
    visited = set(names)
    if len(visited) != n and max(Counter(names).values()) > rules.max_visits:
        return False
    return not graph.required or visited.issuperset(graph.required)


def parse_graph(doc: dict[str, Any]) -> Graph:
    """A graph object already checked against graph.schema.json, as a `Graph`."""
    return Graph(tuple(doc["start"]), tuple((a, b) for a, b in doc["edges"]),
                 tuple(doc["terminal"]))


def check_custom_graph(graph: Graph, tools: Sequence[StagedTool]) -> list[str]:
    """Why a third-party graph is malformed (docs/protocol.md §3.1); empty when it is usable."""
    stage = {t.name: t.stage for t in tools}
    problems: list[str] = []
    named = set(graph.start) | set(graph.terminal) | {n for e in graph.edges for n in e}
    strangers = sorted(named - stage.keys())
    if strangers:
        problems.append(f"graph names tools outside the protocol: {', '.join(strangers)}")
    if not graph.start:
        problems.append("graph has no start node")
    if not graph.terminal:
        problems.append("graph has no terminal node")
    bad_terminals = [t for t in graph.terminal if t in stage and stage[t] != DECISION]
    if bad_terminals:
        problems.append(f"terminal nodes must be decision tools: {', '.join(bad_terminals)}")
    if problems:
        return problems
    successors: dict[str, list[str]] = {}
    for a, b in graph.edges:
        successors.setdefault(a, []).append(b)
    for s in graph.start:
        seen, todo = {s}, [s]
        while todo:
            node = todo.pop()
            for nxt in successors.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        if not seen & graph.terminal_set:
            problems.append(f"no terminal node is reachable from start {s!r}")
    return problems
