"""JSON Schema (the allow-listed subset of docs/protocol.md §2) → a grammar of its values as
canonical JSON.

Canonical means what the codec writes (`json.dumps`): keys in the schema's `properties` order,
`", "` and `": "` separators, no exponents. Two narrowings keep every accepted text valid:
a `<` inside a string is spelled `\\u003c` (a raw `<` could open a block tag in the trace text),
and numbers carry at most 18 integer digits (what a JSON parser reads exactly). Everything the
grammar accepts is valid under the schema; a valid value in another spelling (other key order,
other spacing, `1e2`) is outside it.

`GrammarLimits` tightens lengths for generation: a schema's `maxLength` of 1,000 lets a small model
ramble until `max_tokens`; a cap only shrinks the language, so what it allows stays valid.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from ..protocol import schema_validator
from .options import GrammarLimits
from .rules import (
    EMPTY,
    Chars,
    Expr,
    Lit,
    RuleSet,
    alt,
    chars,
    optional,
    repeat,
    seq,
)

#: Integer digits a number may carry (every such integer parses exactly).
MAX_DIGITS = 18
_INT_LIMIT = 10**MAX_DIGITS - 1
#: Fraction digits a number may carry.
MAX_FRACTION = 16
#: Nesting of a value whose schema leaves it open (`{}`): deep enough, never unbounded.
ANY_DEPTH = 4
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")

DIGIT = chars("0-9")
HEX = chars("0-9a-fA-F")


def json_text(value: Any) -> str:
    """A value as canonical JSON text, with `<` spelled `\\u003c` (see the module docstring)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def accepts(schema: dict[str, Any], value: Any) -> bool:
    """Whether `value` is valid under `schema` (compiled once per schema, in the validator's
    own cache)."""
    return bool(schema_validator(schema).is_valid(value))


def _cap(hi: int | None, cap: int | None, lo: int) -> int | None:
    if cap is None:
        return hi
    hi = cap if hi is None else min(hi, cap)
    return max(hi, lo)


def _same_length(lo: str, hi: str) -> Expr:
    """Digit strings of one length between `lo` and `hi` (inclusive, leading zeros allowed)."""
    if not lo:
        return EMPTY
    if lo[0] == hi[0]:
        return seq(Lit(lo[0]), _same_length(lo[1:], hi[1:]))
    k = len(lo) - 1
    lo_full, hi_full = lo[1:] == "0" * k, hi[1:] == "9" * k
    first = int(lo[0]) + (0 if lo_full else 1)
    last = int(hi[0]) - (0 if hi_full else 1)
    branches: list[Expr] = []
    if not lo_full:
        branches.append(seq(Lit(lo[0]), _same_length(lo[1:], "9" * k)))
    if first <= last:
        branches.append(seq(Chars(((ord("0") + first, ord("0") + last),)),
                            repeat(DIGIT, k, k)))
    if not hi_full:
        branches.append(seq(Lit(hi[0]), _same_length("0" * k, hi[1:])))
    return alt(*branches)


def natural_range(lo: int, hi: int) -> Expr:
    """Decimal naturals in [lo, hi] without leading zeros (0 ≤ lo ≤ hi)."""
    branches = []
    for length in range(len(str(lo)), len(str(hi)) + 1):
        a = lo if length == len(str(lo)) else 10 ** (length - 1)
        b = hi if length == len(str(hi)) else 10**length - 1
        branches.append(_same_length(str(a), str(b)))
    return alt(*branches)


def _int_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    lo = None if lo is None or lo < -_INT_LIMIT else math.ceil(lo)
    hi = None if hi is None or hi > _INT_LIMIT else math.floor(hi)
    return lo, hi


def integer_range(lo: int | None, hi: int | None) -> Expr | None:
    """Integers in [lo, hi] (None: unbounded, within 18 digits); None when the range is empty."""
    if lo is not None and hi is not None and lo > hi:
        return None
    branches: list[Expr] = []
    top = _INT_LIMIT if hi is None else min(hi, _INT_LIMIT)
    bottom = 0 if lo is None else max(lo, 0)
    if bottom <= top:
        branches.append(natural_range(bottom, top))
    if lo is None or lo < 0:  # negatives: "-" and a magnitude in [m_lo, m_hi]
        m_lo = 1 if hi is None or hi >= 0 else -hi
        m_hi = _INT_LIMIT if lo is None else min(-lo, _INT_LIMIT)
        if m_lo <= m_hi:
            branches.append(seq(Lit("-"), natural_range(m_lo, m_hi)))
    return alt(*branches) if branches else None


_FRACTION = optional(seq(Lit("."), repeat(DIGIT, 1, MAX_FRACTION)))
_ZERO_FRACTION = optional(seq(Lit("."), repeat(Lit("0"), 1, MAX_FRACTION)))


def _side(lo: int, hi: int | None) -> list[Expr]:
    """Magnitudes I.F with I in [lo, hi): any fraction; I == hi: zeros only (hi None: open)."""
    branches: list[Expr] = []
    top = _INT_LIMIT if hi is None else min(hi - 1, _INT_LIMIT)
    if lo <= top:
        branches.append(seq(natural_range(lo, top), _FRACTION))
    if hi is not None and lo <= hi <= _INT_LIMIT:
        branches.append(seq(natural_range(hi, hi), _ZERO_FRACTION))
    return branches


def number_range(lo: float | None, hi: float | None) -> Expr | None:
    """Decimal numbers in [lo, hi] (no exponent); None when the grammar can give none."""
    if lo is None and hi is None:
        return seq(optional(Lit("-")), natural_range(0, _INT_LIMIT), _FRACTION)
    if lo is not None and hi is not None and lo > hi:
        return None
    a = None if lo is None else math.ceil(max(lo, -_INT_LIMIT))
    b = None if hi is None else math.floor(min(hi, _INT_LIMIT))
    if a is not None and b is not None and a > b:
        return _decimals_between(Decimal(str(lo)), Decimal(str(hi)))
    branches: list[Expr] = []
    if b is None or b >= 0:  # non-negative: I.F with I ≥ max(a, 0)
        branches += _side(max(a or 0, 0), b)
    if a is None or a < 0:  # negative: -(J.F) with J ≥ 1 (or ≥ -b when hi < 0)
        j_lo = 1 if b is None or b >= 0 else -b
        branches += [seq(Lit("-"), x) for x in _side(j_lo, None if a is None else -a)]
    return alt(*branches) if branches else None


def _decimals_between(lo: Decimal, hi: Decimal) -> Expr | None:
    """A range with no integer inside (e.g. 0.2–0.8): the shortest decimals in it."""
    for places in range(1, 7):
        step = Decimal(1).scaleb(-places)
        first = (lo / step).to_integral_value(rounding="ROUND_CEILING")
        last = (hi / step).to_integral_value(rounding="ROUND_FLOOR")
        if first <= last:
            values = [f"{(k * step):.{places}f}" for k in range(int(first), int(last) + 1)][:64]
            return alt(*(Lit(v) for v in values))
    return None


class JsonGrammar:
    """Compiles schema nodes into rules of one `RuleSet` (shared with the trace grammar)."""

    def __init__(self, rules: RuleSet, limits: GrammarLimits) -> None:
        self.rules = rules
        self.limits = limits
        unit = alt(
            Chars(((ord('"'), ord('"')), (ord("\\"), ord("\\")), (ord("<"), ord("<")),
                   (0, 0x1F)), negated=True),
            seq(Lit("\\"), chars('"\\\\/bfnrt')),
            seq(Lit("\\u"), alt(seq(chars("0-9a-cA-Ce-fE-F"), repeat(HEX, 3, 3)),
                                seq(chars("dD"), chars("0-7"), repeat(HEX, 2, 2)))),
            seq(Lit("\\u"), chars("dD"), chars("89abAB"), repeat(HEX, 2, 2),
                Lit("\\u"), chars("dD"), chars("c-fC-F"), repeat(HEX, 2, 2)),
        )
        self._char = rules.rule("json-char", unit)

    # -- scalars
    def string(self, lo: int = 0, hi: int | None = None) -> Expr | None:
        hi = _cap(hi, self.limits.max_string, lo)
        if hi is not None and lo > hi:
            return None
        body = repeat(self._char, lo, hi)
        return self.rules.rule(f"string-{lo}-{'n' if hi is None else hi}",
                               seq(Lit('"'), body, Lit('"')))

    def _literals(self, values: list[Any]) -> Expr | None:
        return alt(*(Lit(json_text(v)) for v in values)) if values else None

    # -- the dispatcher
    def value(self, schema: dict[str, Any], hint: str) -> Expr | None:
        """The grammar of every canonical JSON text valid under `schema`; None if none is."""
        if "enum" in schema or "const" in schema:
            candidates = list(schema["enum"]) if "enum" in schema else [schema["const"]]
            return self._literals([v for v in candidates if accepts(schema, v)])
        kinds = schema.get("type", list(_TYPES) if len(schema.keys() - {"title", "description"})
                           else None)
        if kinds is None:
            return self.any_value(ANY_DEPTH)
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if "number" in kinds and "integer" in kinds:
            kinds.remove("integer")  # number already spells every integer
        branches = [b for b in (self._typed(k, schema, hint) for k in kinds) if b is not None]
        return alt(*branches) if branches else None

    def _typed(self, kind: str, schema: dict[str, Any], hint: str) -> Expr | None:
        if kind == "string":
            return self.string(schema.get("minLength", 0), schema.get("maxLength"))
        if kind == "integer":
            lo, hi = _int_bounds(schema)
            return self._number(f"integer-{lo}-{hi}", integer_range(lo, hi))
        if kind == "number":
            lo, hi = schema.get("minimum"), schema.get("maximum")
            return self._number(f"number-{lo}-{hi}", number_range(lo, hi))
        if kind == "boolean":
            return alt(Lit("true"), Lit("false"))
        if kind == "null":
            return Lit("null")
        if kind == "array":
            return self._array(schema, hint)
        return self._object(schema, hint)

    def _number(self, hint: str, expr: Expr | None) -> Expr | None:
        """A number as a rule of its own: a matcher with a lexer (llguidance) then reads it as
        one token. Inline, its pieces are tokens of their own, and a greedy lexer reads `100`
        as the literal that starts `1000`-`1005` and refuses it."""
        return None if expr is None else self.rules.rule(hint, expr)

    def _array(self, schema: dict[str, Any], hint: str) -> Expr | None:
        lo = schema.get("minItems", 0)
        hi = _cap(schema.get("maxItems"), self.limits.max_items, lo)
        if hi is not None and lo > hi:
            return None
        items = schema.get("items")
        item = self.any_value(ANY_DEPTH - 1) if items is None else self.value(items, hint + "-item")
        return self.array_of(item, lo, hi, hint)

    def array_of(self, item: Expr | None, lo: int, hi: int | None, hint: str) -> Expr | None:
        if item is None:
            return Lit("[]") if lo == 0 else None
        if hi == 0:
            return Lit("[]")
        more = repeat(seq(Lit(", "), item), max(lo - 1, 0), None if hi is None else hi - 1)
        full = seq(Lit("["), item, more, Lit("]"))
        return self.rules.rule(f"{hint}-array", alt(Lit("[]"), full) if lo == 0 else full)

    def _object(self, schema: dict[str, Any], hint: str) -> Expr | None:
        props = schema.get("properties")
        if props is None:
            if schema.get("additionalProperties") is False:
                return Lit("{}")
            return self.any_object(ANY_DEPTH - 1)
        required = set(schema.get("required", ()))
        members: list[tuple[Expr, bool]] = []
        for key, sub in props.items():
            value = self.value(sub, f"{hint}-{key}")
            if value is None:
                if key in required:
                    return None
                continue
            members.append((seq(Lit(json_text(key) + ": "), value), key in required))
        body = self._members(members, hint)
        return self.rules.rule(f"{hint}-object", seq(Lit("{"), body, Lit("}")))

    def _members(self, members: list[tuple[Expr, bool]], hint: str) -> Expr:
        """Members in a fixed order, optional ones omissible, commas only between them.

        head(i) spells the members from i on when none was written yet, tail(i) after one was;
        an optional member makes both a rule so the text stays linear in the member count."""
        tail: Expr = EMPTY
        head: Expr = EMPTY
        for i, (member, required) in reversed(list(enumerate(members))):
            new_tail, new_head = seq(Lit(", "), member, tail), seq(member, tail)
            if required:
                tail, head = new_tail, new_head
            else:
                tail = self.rules.rule(f"{hint}-tail-{i}", alt(new_tail, tail))
                head = self.rules.rule(f"{hint}-head-{i}", alt(new_head, head))
        return head

    # -- open values (a schema that leaves them free)
    def any_value(self, depth: int) -> Expr:
        branches = [self.string(), self._number("number", number_range(None, None)),
                    Lit("true"), Lit("false"), Lit("null")]
        if depth > 0:
            branches += [self.array_of(self.any_value(depth - 1), 0, self.limits.max_items,
                                       f"any-{depth}"),
                         self.any_object(depth - 1)]
        return self.rules.rule(f"any-value-{depth}", alt(*(b for b in branches if b)))

    def any_object(self, depth: int) -> Expr:
        key = self.string()
        assert key is not None  # no length bounds: always satisfiable
        member = seq(key, Lit(": "), self.any_value(depth))
        hi = self.limits.max_items
        more = repeat(seq(Lit(", "), member), 0, None if hi is None else hi - 1)
        return self.rules.rule(f"any-object-{depth}",
                               alt(Lit("{}"), seq(Lit("{"), member, more, Lit("}"))))

