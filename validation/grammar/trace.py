"""A resolved protocol → the grammar of its whole text-form trace (docs/protocol.md §3).

    <thinking>\\n
    [TOOL]: {json body}\\n        one line per call, in exactly the walks the protocol allows
    </thinking>\\n<answer>\\n
    answer text                 non-blank, without a block tag
    \\n</answer>

The call lines follow the walk automaton (`walks.py`), each body the tool's output schema
(`json_schema.py`) narrowed per decision class (`decisions.py`). The grammar accepts exactly
the canonical text (`to_text`) of the traces the strict validator accepts, less two spellings:
keys in another order than the schema's `properties`, and a raw `<` inside a JSON string (the
grammar spells it `\\u003c`). Every text it accepts validates strictly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..protocol import Protocol, resolve_protocol
from .decisions import Variant, tracks_decisions, variants
from .json_schema import JsonGrammar
from .options import GrammarError, GrammarLimits
from .rules import (
    EMPTY,
    Alt,
    Chars,
    Dialect,
    Expr,
    Lit,
    Ref,
    RuleSet,
    Seq,
    alt,
    render,
    repeat,
    seq,
)
from .walks import (
    MAX_EXPLORED,
    Automaton,
    Symbol,
    TooManyStates,
    walk_automaton,
)

#: The block tags an answer (or a JSON string) must never spell: they would end its block.
BLOCK_TAGS = ("<thinking>", "</thinking>", "<answer>", "</answer>")
#: What `str.strip()` removes: an answer of only these is `empty_answer`.
WHITESPACE = tuple(c for c in map(chr, range(0x3001)) if c.isspace())


@dataclass(frozen=True)
class TraceGrammar:
    """The compiled grammar of one protocol's traces; `text(dialect)` renders it.

    `narrowed` says which walk limits a `max_walk_states` budget lowered (None: the walks
    are exact)."""

    protocol_id: str
    rules: RuleSet = field(repr=False)
    limits: GrammarLimits
    walk_states: int
    explored_states: int
    narrowed: str | None = None

    @property
    def exact(self) -> bool:
        """Whether the grammar accepts every canonical trace the validator accepts."""
        limits = self.limits
        return (limits.max_string, limits.max_items, limits.max_answer) == (None, None, None) \
            and self.narrowed is None

    def text(self, dialect: Dialect) -> str:
        """The grammar in `dialect` (`ebnf` for xgrammar/vLLM/SGLang, `gbnf` for llama.cpp)."""
        from ... import __version__

        scope = self.limits.describe() + (f" ({self.narrowed})" if self.narrowed else "")
        header = (f"SaFeR-ToolKit trace grammar ({dialect}), safer-toolkit {__version__}\n"
                  f"protocol {self.protocol_id}: {self.walk_states} walk states, {scope}\n"
                  "accepts the canonical text form: JSON keys in schema order, `<` in strings "
                  "as \\u003c")
        return render(self.rules, dialect, header)


def _ranges(codes: set[int]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for code in sorted(codes):
        if out and out[-1][1] == code - 1:
            out[-1] = (out[-1][0], code)
        else:
            out.append((code, code))
    return tuple(out)


_SPACE = _ranges({ord(c) for c in WHITESPACE})


#: What may follow a `<` in an answer without completing a block tag.
_TAG_RESTS = tuple(tag[1:] for tag in BLOCK_TAGS)
_NOT_LT = Chars(((ord("<"), ord("<")),), negated=True)
_FIRST = Chars(_ranges({ord("<")} | {ord(c) for c in WHITESPACE}), negated=True)


def _after_lt(prefix: str = "") -> Expr:
    """The text between a `<` and the next one (or the end), given it starts with `prefix`:
    anything that does not begin with the rest of a block tag (a finite trie, no recursion)."""
    nexts = sorted({rest[len(prefix)] for rest in _TAG_RESTS
                    if rest.startswith(prefix) and len(rest) > len(prefix)})
    branches: list[Expr] = [EMPTY,
                            seq(Chars(_ranges({ord("<")} | {ord(c) for c in nexts}),
                                      negated=True), repeat(_NOT_LT, 0, None))]
    for char in nexts:
        if prefix + char not in _TAG_RESTS:
            branches.append(seq(Lit(char), _after_lt(prefix + char)))
    return alt(*branches)


@lru_cache(maxsize=16)
def _answer_block(limit: int | None) -> Expr:
    """The answer and its closing tag: non-blank text that never spells a block tag, then
    `\\n</answer>`. One non-recursive expression, so a matcher with a lexer (llguidance, as
    vLLM's guidance backend) reads it as one token and cannot swallow the closing newline.
    With `limit` (generation): at most that many characters and no `<` at all."""
    close = Lit("\n</answer>")
    if limit is not None:
        return seq(_FIRST, repeat(_NOT_LT, 0, limit - 1), close)
    segment = seq(Lit("<"), _after_lt())
    first = alt(seq(_FIRST, repeat(_NOT_LT, 0, None)), segment)
    return seq(repeat(Chars(_SPACE), 0, None), first, repeat(segment, 0, None), close)


def _call_lines(protocol: Protocol, json: JsonGrammar) -> dict[str, list[tuple[Variant, Ref]]]:
    """Per tool, its live variants and the rule of each one's call line."""
    tracking = tracks_decisions(protocol)
    lines: dict[str, list[tuple[Variant, Ref]]] = {}
    for name, tool in protocol.tools.items():
        found = []
        for variant in variants(tool, tracking):
            hint = f"{name}-{variant.label}" if variant.label else name
            body = json.value(variant.output, hint)
            if body is not None:
                line = seq(Lit(f"[{name}]: "), body, Lit("\n"))
                found.append((variant, json.rules.rule(hint, line)))
        lines[name] = found
    return lines


def _walk_rules(rules: RuleSet, automaton: Automaton[Symbol],
                lines: dict[str, list[tuple[Variant, Ref]]]) -> Expr:
    """One rule per automaton state: its call lines, each followed by the next state's rule
    (a final state with no way on is the empty text, written inline)."""
    ends = [acc and not moves for acc, moves in zip(automaton.accepting,
                                                    automaton.transitions, strict=True)]
    names = [None if end else rules.name(f"w{i}") for i, end in enumerate(ends)]
    for i, name in enumerate(names):
        if name is None:
            continue
        moves: list[Expr] = [EMPTY] if automaton.accepting[i] else []
        for symbol, nxt in automaton.transitions[i]:
            line = lines[symbol.tool][symbol.variant][1]
            then = names[nxt]
            moves.append(line if then is None else Seq((line, Ref(then))))
        rules.define(name, moves[0] if len(moves) == 1 else Alt(tuple(moves)), structural=True)
    return Ref(names[0]) if names[0] else EMPTY


def _fit_walks(protocol: Protocol, variants: dict[str, list[Variant]], decisions: bool,
               limits: GrammarLimits, max_explored: int
               ) -> tuple[Automaton[Symbol], str | None]:
    """The exact walk automaton, or, past `limits.max_walk_states`, the largest narrowing
    (fewer calls, then no revisits) that fits, with what was lowered."""
    budget = limits.max_walk_states
    try:
        return walk_automaton(protocol, variants, decisions=decisions,
                              max_explored=max_explored, max_states=budget), None
    except TooManyStates:
        pass
    assert budget is not None
    for visits in dict.fromkeys((protocol.max_visits, 1)):
        best = None
        for calls in range(protocol.min_calls, protocol.max_calls + 1):
            narrower = dataclasses.replace(protocol, max_calls=calls, max_visits=visits)
            try:
                best = (walk_automaton(narrower, variants, decisions=decisions,
                                       max_explored=max_explored, max_states=budget), calls)
            except TooManyStates:
                break
            except GrammarError:
                continue  # no valid walk this short: try a longer one
        if best is not None:
            lowered = [f"max_calls {protocol.max_calls} → {best[1]}"]
            if visits != protocol.max_visits:
                lowered.append(f"max_visits {protocol.max_visits} → {visits}")
            return best[0], ", ".join(lowered)
    raise GrammarError(f"protocol {protocol.id!r}: no narrowing of its walks fits "
                       f"{budget} walk states")


def compile_grammar(protocol: Protocol | object, limits: GrammarLimits | None = None,
                    *, library: str = "default",
                    max_explored: int = MAX_EXPLORED) -> TraceGrammar:
    """Compile a protocol (resolved, or a parsed document to resolve) into its trace grammar.

    Raises `ProtocolInvalid` for an unusable document and `GrammarError` for a protocol the
    grammar cannot express (no valid walk, too many walk states to explore, an open-ended
    value a decision rule reads)."""
    if not isinstance(protocol, Protocol):
        protocol = resolve_protocol(protocol, library)
    limits = limits or GrammarLimits()
    rules = RuleSet()
    root = rules.name("root")
    json = JsonGrammar(rules, limits)
    lines = _call_lines(protocol, json)
    decisions = tracks_decisions(protocol)
    automaton, narrowed = _fit_walks(protocol, {t: [v for v, _ in vs] for t, vs in lines.items()},
                                     decisions, limits, max_explored)
    walk = _walk_rules(rules, automaton, lines)
    answer = rules.rule("answer", _answer_block(limits.max_answer))
    rules.define(root, seq(Lit("<thinking>\n"), walk, Lit("</thinking>\n<answer>\n"), answer),
                 structural=True)
    return TraceGrammar(protocol.id, rules, limits, automaton.size, automaton.explored,
                        narrowed)


@lru_cache(maxsize=256)
def _cached(doc_json: bytes, limits: GrammarLimits, library: str) -> TraceGrammar:
    import orjson

    return compile_grammar(orjson.loads(doc_json), limits, library=library)


def grammar_for(doc: dict[str, Any], limits: GrammarLimits | None = None,
                library: str = "default") -> TraceGrammar:
    """`compile_grammar` for a protocol document, cached by its canonical JSON."""
    import orjson

    return _cached(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), limits or GrammarLimits(),
                   library)
