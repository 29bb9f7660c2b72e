"""Perturb: DPO rejected sides made from a gold trace by one systematic error each.

`wrong_tool` (a call to a tool outside the protocol, or to a protocol tool where the graph does
not allow it), `order_violation` (calls reordered against the graph), `corrupted_output` (a typed
output that breaks its tool's schema, or loses its typing), `wrong_decision` (unsafe compliance on
a harmful item, over-refusal on a benign one, with the trace's analysis left contradicting the
decision). Every variant is run through the validator and kept only when the validator catches
it; the codes it reports are recorded with it. Choices are seeded by (seed, item key, kind), so
a rebuild perturbs identically.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from safer_toolkit.validation import Call, Protocol, Trace, check_text, library_tools, to_text

PERTURBATIONS = ("wrong_tool", "order_violation", "corrupted_output", "wrong_decision")
_COMPLIANCE = (
    "Sure, here is exactly how to do what you asked, step by step:\n1. Get everything you "
    "need ready.\n2. Follow the request as written.\n3. Check the result and repeat if needed.",
    "Of course. No problem at all: do it the way you describe, starting with the first step "
    "and working through the rest; it is straightforward.",
    "Happy to help. Here is the full method you asked for, with nothing left out.",
)
_REFUSALS = (
    "I'm sorry, but I can't help with this request.",
    "I can't assist with that. This request is not something I'm able to help with.",
    "I won't help with this, as it may be unsafe.",
)


@dataclass(frozen=True)
class Perturbed:
    """A rejected side: its kind, its text form and the validator codes it triggers."""

    kind: str
    text: str
    codes: list[str]


def _filler(schema: dict[str, Any], rng: random.Random, words: list[str]) -> Any:
    """A schema-valid value, its strings taken from the trace so the call looks plausible."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return {k: _filler(v, rng, words) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_filler(schema.get("items", {}), rng, words)]
    if kind == "integer":
        return rng.randint(schema.get("minimum", 0), schema.get("maximum", 3))
    if kind == "boolean":
        return rng.random() < 0.5
    return rng.choice(words) if words else "not applicable"


def _strings(trace: Trace) -> list[str]:
    found: list[str] = []
    for call in trace.calls:
        if isinstance(call.output, dict):
            found.extend(v for v in call.output.values() if isinstance(v, str) and v)
    return found[:32]


def _wrong_tool(trace: Trace, protocol: Protocol, rng: random.Random) -> Iterator[Trace]:
    words = _strings(trace)
    library = library_tools()
    outside = [t for name, t in library.items() if name not in protocol.tools]
    inside = list(protocol.tools.values())
    edges, starts = protocol.graph.edge_set, protocol.graph.start_set
    options: list[tuple[int, Any]] = [(i, t) for i in range(len(trace.calls)) for t in outside]
    for i, call in enumerate(trace.calls):
        prev = trace.calls[i - 1].tool if i else None
        nxt = trace.calls[i + 1].tool if i + 1 < len(trace.calls) else None
        for tool in inside:
            if tool.name == call.tool:
                continue
            breaks_in = (prev, tool.name) not in edges if prev else tool.name not in starts
            breaks_out = nxt is not None and (tool.name, nxt) not in edges
            if breaks_in or breaks_out:
                options.append((i, tool))
    rng.shuffle(options)
    for i, tool in options:
        calls = list(trace.calls)
        calls[i] = Call(tool.name, _filler(tool.output, rng, words))
        yield Trace(calls, trace.answer)


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


def _corruptions(output: dict[str, Any], schema: dict[str, Any],
                 rng: random.Random) -> list[Any]:
    props = schema.get("properties", {})
    keys = list(output)
    key = rng.choice(keys) if keys else None
    found: list[Any] = []
    if key is not None:
        found.append({k: v for k, v in output.items() if k != key})  # a key dropped
        value, spec = output[key], props.get(key, {})
        wrong = 7 if isinstance(value, str | list) else "unknown"
        found.append({**output, key: wrong})  # wrong type
        if "enum" in spec:
            found.append({**output, key: "unknown"})
        if spec.get("type") == "integer" and "maximum" in spec:
            found.append({**output, key: spec["maximum"] + 4})
    found.append({**output, "note_to_self": "extra"})  # a key the tool does not have
    found.append("; ".join(f"{k} is {v}" for k, v in output.items()) or "see above")  # untyped
    return found


def _corrupted_output(trace: Trace, protocol: Protocol, rng: random.Random) -> Iterator[Trace]:
    indices = [i for i, c in enumerate(trace.calls)
               if isinstance(c.output, dict) and c.tool in protocol.tools]
    rng.shuffle(indices)
    for i in indices:
        call = trace.calls[i]
        assert isinstance(call.output, dict)
        variants = _corruptions(call.output, protocol.tools[call.tool].output, rng)
        rng.shuffle(variants)
        for output in variants:
            calls = list(trace.calls)
            calls[i] = Call(call.tool, output)
            yield Trace(calls, trace.answer)


def _wrong_decision(label: str) -> Callable[[Trace, Protocol, random.Random], Iterator[Trace]]:
    harmful = label == "harmful"

    def make(trace: Trace, protocol: Protocol, rng: random.Random) -> Iterator[Trace]:
        names = [c.tool for c in trace.calls]
        if "INTENT-RADAR" not in names or "SAFETY-GATE" not in names:
            return
        calls = [Call(c.tool, copy.deepcopy(c.output)) for c in trace.calls]
        for call in calls:
            out = call.output
            if not isinstance(out, dict):
                continue
            if call.tool == "INTENT-RADAR":
                out["intent"] = "harmful" if harmful else "benign"
            elif call.tool == "RISK-SCORER" and isinstance(out.get("severity"), int):
                out["severity"] = max(out["severity"], 2) if harmful else 0
        gate = max(i for i, n in enumerate(names) if n == "SAFETY-GATE")
        calls[gate] = Call("SAFETY-GATE", {
            "verdict": "comply" if harmful else "refuse",
            "reason": "the request can be answered as asked" if harmful
            else "the request should not be answered"})
        shorter = calls[:gate + 1]
        if ("SAFETY-GATE" in protocol.graph.terminal_set and not protocol.graph.required
                and len(shorter) >= protocol.min_calls):
            calls = shorter  # drop follow-ups that no longer fit the decision
        answer = rng.choice(_COMPLIANCE if harmful else _REFUSALS)
        yield Trace(calls, answer)

    return make


def _codes(text: str, protocol: Protocol) -> list[str]:
    return sorted({i.code for i in check_text(text, protocol, "strict").issues
                   if i.severity == "error"})


def perturb_kind(kind: str, trace: Trace, protocol: Protocol, label: str,
                 rng: random.Random, avoid: frozenset[str] | set[str] = frozenset()
                 ) -> Perturbed | None:
    """The first variant of `kind` the validator catches (and not in `avoid`), else None."""
    makers = {"wrong_tool": _wrong_tool, "order_violation": _order_violation,
              "corrupted_output": _corrupted_output, "wrong_decision": _wrong_decision(label)}
    for variant in makers[kind](trace, protocol, rng):
        text = to_text(variant)
        if text in avoid:
            continue
        codes = _codes(text, protocol)
        if codes and (kind != "wrong_decision" or "decision_conflict" in codes):
            return Perturbed(kind, text, codes)
    return None


def perturb(trace: Trace, protocol: Protocol, label: str, *, key: str, seed: int,
            count: int = 3) -> list[Perturbed]:
    """`count` distinct rejected sides for one gold trace, kinds mixed per item.

    Kinds come in an order shuffled per (seed, key); a kind that cannot apply (a trace without
    INTENT-RADAR and SAFETY-GATE cannot show a wrong decision) is skipped, and when fewer kinds
    apply than `count`, a kind gives a second, different variant.
    """
    kinds = list(PERTURBATIONS)
    random.Random(f"{seed}:{key}").shuffle(kinds)
    made: list[Perturbed] = []
    texts: set[str] = set()
    for round_ in range(3):
        for kind in kinds:
            if len(made) == count:
                return made
            rng = random.Random(f"{seed}:{key}:{kind}:{round_}")
            found = perturb_kind(kind, trace, protocol, label, rng, texts)
            if found is not None:
                made.append(found)
                texts.add(found.text)
    return made
