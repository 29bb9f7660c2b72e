"""Perturb: DPO rejected sides made from a gold trace by one systematic error each — an error the
validator or the judge checks, and nothing else.

A rejected side must differ from its chosen side only in what is being taught; anything else a
surface classifier could key on (a fixed string, a length difference, a rare word) becomes the
lesson instead. So every programmatic perturbation reuses the chosen side's own words:

- `wrong_tool`: two calls trade their tool names, each output staying where it was: a step now
  calls a tool the graph does not allow there (a transition that is not an edge, a wrong start
  or end), with an output written for another tool. No tool is added or lost, so neither the
  tools present nor how often they occur tell the sides apart.
- `order_violation`: calls reordered against the graph (two calls of adjacent stages swapped,
  the decision moved first, or the first and last call swapped).
- `corrupted_output`: two typed values of the trace trade places so that at least one no longer
  fits its key's schema (a list where a string belongs, a category where a verdict belongs):
  every value on the rejected side is one the trace already holds, and the length is the same.
- `wrong_decision`: a full, fluent answer for the wrong decision — compliance with a harmful
  request, refusal of a benign one — written by the responder under the same protocol
  (`respond.write_wrong_decision`), its analysis left faithful to the item so the decision
  contradicts it (`decision_conflict`). Both directions occur, one per label.

Every variant is run through the validator and kept only when the validator catches it; the
codes it reports are recorded with it. Choices are seeded by (seed, item key, kind), so a
rebuild perturbs identically.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ...validation import (
    Call,
    Protocol,
    Trace,
    check_text,
    legal_walk,
    parse_text,
    to_text,
)

PERTURBATIONS = ("wrong_tool", "order_violation", "corrupted_output", "wrong_decision")
Maker = Callable[[Trace, Protocol, random.Random], Iterator[Trace]]


@dataclass(frozen=True)
class Perturbed:
    """A rejected side: its kind, its text form and the validator codes it triggers."""

    kind: str
    text: str
    codes: list[str]


def _wrong_tool(trace: Trace, protocol: Protocol, rng: random.Random) -> Iterator[Trace]:
    calls = trace.calls
    options = [(i, j) for i in range(len(calls)) for j in range(i + 1, len(calls))
               if calls[i].tool != calls[j].tool]
    rng.shuffle(options)
    for i, j in options:
        changed = list(calls)
        changed[i] = Call(calls[j].tool, copy.deepcopy(calls[i].output))
        changed[j] = Call(calls[i].tool, copy.deepcopy(calls[j].output))
        yield Trace(changed, trace.answer)


def _order_violation(trace: Trace, protocol: Protocol, rng: random.Random) -> Iterator[Trace]:
    calls = trace.calls
    n = len(calls)
    stage = {name: t.stage for name, t in protocol.tools.items()}
    orders: list[list[int]] = []
    for i in range(n - 1):
        if stage.get(calls[i].tool) != stage.get(calls[i + 1].tool):
            order = list(range(n))
            order[i], order[i + 1] = order[i + 1], order[i]
            orders.append(order)
    rng.shuffle(orders)
    orders.append([n - 1, *range(n - 1)])  # the decision first
    orders.append([n - 1, *range(1, n - 1), 0])  # first and last swapped
    for order in orders:
        yield Trace([calls[j] for j in order], trace.answer)


def _slots(trace: Trace) -> list[tuple[int, str]]:
    return [(i, key) for i, call in enumerate(trace.calls) if isinstance(call.output, dict)
            for key in call.output]


def _corrupted_output(trace: Trace, protocol: Protocol, rng: random.Random) -> Iterator[Trace]:
    slots = _slots(trace)
    value = {slot: trace.calls[slot[0]].output[slot[1]] for slot in slots}  # type: ignore[index]
    pairs = [(a, b) for k, a in enumerate(slots) for b in slots[k + 1:]
             if type(value[a]) is not type(value[b]) or value[a] != value[b]]
    rng.shuffle(pairs)
    for a, b in pairs:
        calls: list[Any] = [Call(c.tool, copy.deepcopy(c.output)) for c in trace.calls]
        calls[a[0]].output[a[1]] = copy.deepcopy(value[b])
        calls[b[0]].output[b[1]] = copy.deepcopy(value[a])
        yield Trace(calls, trace.answer)


def _wrong_decision(written: str | None) -> Maker:
    """The responder's wrong-decision side, when it wrote one that parses."""

    def make(trace: Trace, protocol: Protocol, rng: random.Random) -> Iterator[Trace]:
        if written is None:
            return
        parsed = parse_text(written, "strict")
        if parsed.has_thinking and parsed.has_answer and parsed.trace.calls:
            yield parsed.trace

    return make


def _codes(text: str, protocol: Protocol) -> list[str]:
    return sorted({i.code for i in check_text(text, protocol, "strict").issues
                   if i.severity == "error"})


def _shows(kind: str, codes: list[str], variant: Trace, protocol: Protocol) -> bool:
    """Whether the variant shows the error the kind is about: the validator's decision code, or
    for a wrong tool choice a walk that is no longer legal (not only an output that is off)."""
    if kind == "wrong_decision":
        return "decision_conflict" in codes
    if kind == "wrong_tool":
        return not legal_walk([c.tool for c in variant.calls], protocol)
    return True


def perturb_kind(kind: str, trace: Trace, protocol: Protocol,
                 rng: random.Random, avoid: frozenset[str] | set[str] = frozenset(),
                 wrong_decision: str | None = None) -> Perturbed | None:
    """The first variant of `kind` the validator catches (and not in `avoid`), else None.
    `wrong_decision` is the responder's text for that kind (its own decision must contradict
    its analysis)."""
    makers: dict[str, Maker] = {"wrong_tool": _wrong_tool, "order_violation": _order_violation,
                                "corrupted_output": _corrupted_output,
                                "wrong_decision": _wrong_decision(wrong_decision)}
    chosen = to_text(trace)
    for variant in makers[kind](trace, protocol, rng):
        text = to_text(variant)
        if text in avoid or text == chosen:
            continue
        codes = _codes(text, protocol)
        if codes and _shows(kind, codes, variant, protocol):
            return Perturbed(kind, text, codes)
    return None


def kind_order(seed: int, key: str) -> list[str]:
    """The order in which an item's perturbation kinds are tried (shuffled per item), so a
    caller knows before perturbing whether the item's first `count` kinds need a
    `wrong_decision` side from the responder."""
    kinds = list(PERTURBATIONS)
    random.Random(f"{seed}:{key}").shuffle(kinds)
    return kinds


def perturb(trace: Trace, protocol: Protocol, *, key: str, seed: int,
            count: int = 3, wrong_decision: str | None = None) -> list[Perturbed]:
    """`count` distinct rejected sides for one gold trace, kinds mixed per item.

    Kinds come in `kind_order(seed, key)`; a kind that cannot apply (no `wrong_decision` text,
    or one the validator does not catch) is skipped, and when fewer kinds apply than `count`,
    a kind gives a second, different variant.
    """
    made: list[Perturbed] = []
    texts: set[str] = set()
    for round_ in range(3):
        for kind in kind_order(seed, key):
            if len(made) == count:
                return made
            rng = random.Random(f"{seed}:{key}:{kind}:{round_}")
            found = perturb_kind(kind, trace, protocol, rng, texts, wrong_decision)
            if found is not None:
                made.append(found)
                texts.add(found.text)
    return made
