"""Random texts from a compiled grammar (random walks through its rules), and random valid
values from a JSON Schema: the two directions of the grammar-vs-validator tests."""

from __future__ import annotations

import random
from typing import Any

from safer_toolkit.validation.grammar.rules import Alt, Chars, Expr, Lit, Ref, Repeat, RuleSet, Seq

#: Characters tried for a class: plain, JSON-special, tag-forming, non-ASCII, line separators.
POOL = (list("abcxyzAZ09 .,:;-_/{}[]()!?'") + ['"', "\\", "<", ">", "\n", "\t", "\x01",
        "\x7f", "é", "ß", "中", "😀", "\u2028", "\u00a0", "\u3000"])
EXTRA = 4  # repetitions drawn above a repeat's minimum (bounded by its maximum)


def sample(rules: RuleSet, rng: random.Random, name: str = "root") -> str:
    out: list[str] = []
    _emit(rules, rules.rules[name], rng, out)
    return "".join(out)


def _emit(rules: RuleSet, node: Expr, rng: random.Random, out: list[str]) -> None:
    if isinstance(node, Lit):
        out.append(node.text)
    elif isinstance(node, Chars):
        choices = [c for c in POOL if c in node]
        if not choices:  # a class outside the pool: its first code point
            lo = node.ranges[0][0] if not node.negated else 0x41
            choices = [chr(lo)]
        out.append(rng.choice(choices))
    elif isinstance(node, Ref):
        _emit(rules, rules.rules[node.name], rng, out)
    elif isinstance(node, Seq):
        for item in node.items:
            _emit(rules, item, rng, out)
    elif isinstance(node, Alt):
        _emit(rules, rng.choice(node.items), rng, out)
    elif isinstance(node, Repeat):
        top = node.min + EXTRA if node.max is None else min(node.max, node.min + EXTRA)
        for _ in range(rng.randint(node.min, top)):
            _emit(rules, node.item, rng, out)


def value(schema: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A random value valid under an allow-listed schema (docs/protocol.md §2) — or None-safe
    fallbacks."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = rng.choice(kind)
    if kind == "object":
        return {k: value(v, rng, depth + 1) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        lo = schema.get("minItems", 0)
        hi = min(schema.get("maxItems", lo + 3), lo + 3)
        return [value(schema.get("items", {"type": "string"}), rng, depth + 1)
                for _ in range(rng.randint(lo, hi))]
    if kind == "integer":
        return rng.randint(int(schema.get("minimum", -5)), int(schema.get("maximum", 20)))
    if kind == "number":
        lo, hi = schema.get("minimum", -3), schema.get("maximum", 3)
        return rng.choice([lo, hi, round(rng.uniform(lo, hi), 3)])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    lo = schema.get("minLength", 0)
    hi = min(schema.get("maxLength", lo + 12), lo + 12)
    alphabet = [c for c in POOL if c != "<"]  # `<` is spelled \u003c by the grammar
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))
