"""The call sequences a protocol allows, as a minimal deterministic automaton over call lines.

Built in two passes, both read from the resolved `Protocol` (the validator's own graph, starts,
terminals, limits and required tools; nothing here restates a topology rule):

1. the *walks*: a state is what the validator's walk check needs to know about a prefix (the
   last tool, the visits left to each tool that can recur, whether each required tool was
   visited, the call count); states that can no longer differ are written alike (visits left
   capped by what the remaining calls could use, tools out of reach forgotten);
2. the *decisions*: the walk automaton times the `Decision` so far, with each tool split into
   its variants, and every ending whose decision conflicts dropped.

Each pass merges states bottom-up when their futures are equal (the state graphs are acyclic:
every call raises the call count or a tracked visit count), so the grammar has one rule per
distinct future.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from ..protocol import Protocol
from ..vocabulary import GATE, INTENT, REFUSAL
from .decisions import Decision, Variant
from .options import GrammarError

#: States a pass may explore before the compiler gives up on a protocol (an error, not a hang).
MAX_EXPLORED = 400_000

K = TypeVar("K", bound=Hashable)
S = TypeVar("S", bound=Hashable)
#: A state of the walk check (see `_Walks`): (last tool, visits left, required seen, calls).
WalkState = tuple[str | None, tuple[int, ...], tuple[bool, ...], int]


class Symbol(NamedTuple):
    """One call line: a tool and the index of its variant."""

    tool: str
    variant: int


#: What a transition reads: a `Symbol`, or a bare tool name in the walk-only pass.
L = TypeVar("L", str, Symbol)


@dataclass
class Automaton(Generic[L]):
    """States 0..n-1, state 0 the start: each one's accepting flag and sorted transitions."""

    accepting: list[bool]
    transitions: list[list[tuple[L, int]]]
    explored: int

    @property
    def size(self) -> int:
        return len(self.accepting)

    def future_tools(self) -> list[frozenset[str]]:
        """Per state, the tools some continuation from it still calls."""
        indegree = [0] * self.size
        for moves in self.transitions:
            for _, j in moves:
                indegree[j] += 1
        order = [i for i in range(self.size) if not indegree[i]]
        for i in order:  # Kahn's topological order (the automaton is acyclic)
            for _, j in self.transitions[i]:
                indegree[j] -= 1
                if not indegree[j]:
                    order.append(j)
        found: list[frozenset[str]] = [frozenset()] * self.size
        for i in reversed(order):
            found[i] = frozenset().union(*(found[j] | {s if isinstance(s, str) else s.tool}
                                           for s, j in self.transitions[i]))
        return found


class TooManyStates(GrammarError):
    """The minimal automaton has more states than the caller allows."""


def _minimize(start: K, successors: Callable[[K], list[tuple[S, K]]],
              accepting: Callable[[K], bool], max_explored: int, what: str,
              max_states: int | None = None
              ) -> tuple[list[bool], list[list[tuple[S, int]]], int] | None:
    """Explore an acyclic state graph depth first and merge states with equal futures.

    Returns (accepting, transitions, explored) with state 0 the start, or None when no
    accepting state is reachable; raises `TooManyStates` past `max_states` merged states."""
    dead = -1
    memo: dict[K, int] = {}
    pending: dict[K, list[tuple[S, K]]] = {}
    classes: dict[tuple[bool, tuple[tuple[S, int], ...]], int] = {}
    info: list[tuple[bool, list[tuple[S, int]]]] = []
    stack = [start]
    while stack:
        key = stack[-1]
        if key in memo:
            stack.pop()
            continue
        succ = pending.get(key)
        if succ is None:
            succ = pending[key] = successors(key)
            if len(memo) + len(pending) > max_explored:
                raise GrammarError(f"{what} needs more than {max_explored} automaton states; "
                                   "lower its max_calls or max_visits to compile it")
            missing = [k for _, k in succ if k not in memo]
            if missing:
                stack.extend(missing)
                continue
        stack.pop()
        del pending[key]
        moves = sorted((sym, memo[k]) for sym, k in succ if memo[k] != dead)
        acc = accepting(key)
        if not acc and not moves:
            memo[key] = dead
            continue
        signature = (acc, tuple(moves))
        cls = classes.get(signature)
        if cls is None:
            cls = classes[signature] = len(info)
            info.append((acc, moves))
            if max_states is not None and len(info) > max_states:
                raise TooManyStates(f"{what} has more than {max_states} walk states")
        memo[key] = cls
    root = memo[start]
    if root == dead:
        return None
    order = {root: 0}  # renumber breadth first from the start: rule names read in walk order
    queue = [root]
    for cls in queue:
        for _, nxt in info[cls][1]:
            if nxt not in order:
                order[nxt] = len(order)
                queue.append(nxt)
    acc_out = [False] * len(order)
    trans_out: list[list[tuple[S, int]]] = [[] for _ in order]
    for cls, new in order.items():
        acc_out[new] = info[cls][0]
        trans_out[new] = [(sym, order[nxt]) for sym, nxt in info[cls][1]]
    return acc_out, trans_out, len(memo)


def _reach(protocol: Protocol) -> dict[str | None, frozenset[str]]:
    """Per tool (and None: before the first call), the tools a walk can still reach."""
    succ: dict[str | None, list[str]] = {None: list(protocol.graph.start)}
    for a, b in protocol.graph.edges:
        succ.setdefault(a, []).append(b)
    reach = {}
    for node in [None, *protocol.tools]:
        seen: set[str] = set()
        todo = list(succ.get(node, ()))
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(succ.get(t, ()))
        reach[node] = frozenset(seen)
    return reach


class _Walks:
    """The walk check's state: (last tool, visits left per recurring tool, required tools
    visited, call count)."""

    def __init__(self, protocol: Protocol, live: set[str]) -> None:
        graph = protocol.graph
        self.protocol = protocol
        self.succ: dict[str | None, list[str]] = {None: [t for t in graph.start if t in live]}
        for a, b in graph.edges:
            if b in live:
                self.succ.setdefault(a, []).append(b)
        self.reach = _reach(protocol)
        cyclic = {t for t in protocol.tools if t in self.reach[t]}
        self.self_loop = {a for a, b in graph.edges if a == b}
        # the visit limit can bind only on a cycle, and only below max_calls
        self.limited = sorted(cyclic) if protocol.max_visits < protocol.max_calls else []
        self.slot = {t: i for i, t in enumerate(self.limited)}
        self.required = list(dict.fromkeys(graph.required))
        self.req_slot = {t: i for i, t in enumerate(self.required)}
        longest = (len(self.limited) * protocol.max_visits + len(protocol.tools)
                   - len(self.limited)) if self.limited else protocol.max_calls + 1
        # the call count matters only up to min_calls when the visit limits bound the walk
        self.n_exact = longest > protocol.max_calls
        self._cap_cache: dict[tuple[str | None, int], tuple[int, ...]] = {}

    def start(self) -> WalkState:
        return self._canonical(None, (self.protocol.max_visits,) * len(self.limited),
                               (False,) * len(self.required), 0)

    def _caps(self, last: str | None, n: int) -> tuple[int, ...]:
        """Per limited tool, the most visits a continuation from here could still use."""
        key = (last, n)
        found = self._cap_cache.get(key)
        if found is None:
            calls_left = self.protocol.max_calls - n if self.n_exact else self.protocol.max_calls
            reach = self.reach[last]
            found = tuple(0 if t not in reach  # never called again: its count is forgotten
                          else calls_left if t in self.self_loop else (calls_left + 1) // 2
                          for t in self.limited)
            self._cap_cache[key] = found
        return found

    def _canonical(self, last: str | None, left: tuple[int, ...], seen: tuple[bool, ...],
                   n: int) -> WalkState:
        if self.limited:
            left = tuple(map(min, left, self._caps(last, n)))
        return (last, left, seen, n)

    def accepting(self, key: WalkState) -> bool:
        last, _, seen, n = key
        return (n >= self.protocol.min_calls and last in self.protocol.graph.terminal_set
                and all(seen))

    def successors(self, key: WalkState) -> list[tuple[str, WalkState]]:
        last, left, seen, n = key
        p = self.protocol
        if n >= p.max_calls:
            return []
        n_next = n + 1 if self.n_exact else min(n + 1, p.min_calls)
        found = []
        for tool in self.succ.get(last, ()):
            new_left, new_seen = left, seen
            i = self.slot.get(tool)
            if i is not None:
                if left[i] == 0:
                    continue
                new_left = left[:i] + (left[i] - 1,) + left[i + 1:]
            j = self.req_slot.get(tool)
            if j is not None and not seen[j]:
                new_seen = seen[:j] + (True,) + seen[j + 1:]
            found.append((tool, self._canonical(tool, new_left, new_seen, n_next)))
        return found


def _decision_relevant(decision: Decision, future: frozenset[str]) -> bool:
    """False when no continuation can make this decision conflict (it may then be forgotten)."""
    if INTENT not in future and decision.intent not in ("benign", "harmful"):
        return False
    return bool(GATE in future or REFUSAL in future or decision.refusal
                or decision.verdict in ("comply", "refuse"))


def walk_automaton(protocol: Protocol, variants: Mapping[str, Sequence[Variant]], *,
                   decisions: bool = True, max_explored: int = MAX_EXPLORED,
                   max_states: int | None = None) -> Automaton[Symbol]:
    """The minimal automaton of every call sequence the validator accepts for `protocol`.

    `variants` gives each tool's call variants (a tool with none is never called); with
    `decisions`, endings whose decision conflicts are dropped. Raises `GrammarError` when no
    walk is valid or a pass would explore more than `max_explored` states, `TooManyStates`
    when the result would have more than `max_states`."""
    live = {t for t, vs in variants.items() if vs}
    walks = _Walks(protocol, live)
    built = _minimize(walks.start(), walks.successors, walks.accepting, max_explored,
                      f"protocol {protocol.id!r}", max_states)
    if built is None:
        raise GrammarError(f"protocol {protocol.id!r} allows no valid walk (its limits, "
                           "required tools and tool outputs leave none)")
    plain: Automaton[str] = Automaton(*built)
    if not decisions:
        return Automaton(plain.accepting,
                         [[(Symbol(t, v), j) for t, j in moves for v in range(len(variants[t]))]
                          for moves in plain.transitions], plain.explored)
    future = plain.future_tools()

    def canonical(w: int, d: Decision) -> tuple[int, Decision]:
        return (w, d if _decision_relevant(d, future[w]) else Decision())

    def successors(key: tuple[int, Decision]) -> list[tuple[Symbol, tuple[int, Decision]]]:
        w, d = key
        return [(Symbol(tool, v), canonical(nxt, d.after(tool, variant.value)))
                for tool, nxt in plain.transitions[w]
                for v, variant in enumerate(variants[tool])]

    decided = _minimize(canonical(0, Decision()), successors,
                      lambda key: plain.accepting[key[0]] and not key[1].conflicts,
                      max_explored, f"protocol {protocol.id!r} (with its decision rules)",
                      max_states)
    if decided is None:
        raise GrammarError(f"protocol {protocol.id!r} allows no walk without a "
                           "decision_conflict")
    accepting, transitions, explored = decided
    return Automaton(accepting, transitions, plain.explored + explored)
