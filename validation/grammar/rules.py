"""A small grammar IR (literals, character classes, sequences, alternatives, bounded repeats,
rule references) and its rendering in the dialects servers take.

The compilers build expressions here once; `render` writes them as xgrammar EBNF (vLLM
`structured_outputs.grammar`, SGLang `ebnf`), llama.cpp GBNF (`grammar`), or llguidance Lark
(vLLM's guidance backend; the matcher `--check` uses). Rules are deduplicated by content, so a
string bound or a JSON body used by many calls is written once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["ebnf", "gbnf", "lark"]
DIALECTS: tuple[str, ...] = ("ebnf", "gbnf", "lark")


@dataclass(frozen=True, slots=True)
class Lit:
    """A fixed text (possibly empty)."""

    text: str


@dataclass(frozen=True, slots=True)
class Chars:
    """One character from `ranges` (inclusive code-point pairs), or from outside them."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False

    def __contains__(self, char: str) -> bool:
        code = ord(char)
        inside = any(lo <= code <= hi for lo, hi in self.ranges)
        return inside != self.negated


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a named rule."""

    name: str


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    """`item` between `min` and `max` times (`max` None: unbounded)."""

    item: Expr
    min: int
    max: int | None


Expr = Lit | Chars | Ref | Seq | Alt | Repeat
EMPTY = Lit("")


def chars(spec: str, *, negated: bool = False) -> Chars:
    """A class from single characters and `a-z` spans, e.g. `chars('0-9a-fA-F')`."""
    ranges: list[tuple[int, int]] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            ranges.append((ord(spec[i]), ord(spec[i + 2])))
            i += 3
        else:
            ranges.append((ord(spec[i]), ord(spec[i])))
            i += 1
    return Chars(tuple(ranges), negated)


def seq(*items: Expr) -> Expr:
    """A sequence, flattened, with adjacent literals joined and empty ones dropped."""
    flat: list[Expr] = []
    for item in items:
        parts = item.items if isinstance(item, Seq) else (item,)
        for part in parts:
            if isinstance(part, Lit):
                if not part.text:
                    continue
                if flat and isinstance(flat[-1], Lit):
                    flat[-1] = Lit(flat[-1].text + part.text)
                    continue
            flat.append(part)
    if not flat:
        return EMPTY
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def alt(*items: Expr) -> Expr:
    """Alternatives, flattened and deduplicated in order."""
    flat: list[Expr] = []
    for item in items:
        for part in item.items if isinstance(item, Alt) else (item,):
            if part not in flat:
                flat.append(part)
    if not flat:
        raise ValueError("an alternative needs at least one branch")
    return flat[0] if len(flat) == 1 else Alt(tuple(flat))


def repeat(item: Expr, lo: int, hi: int | None) -> Expr:
    if hi is not None and hi < lo:
        raise ValueError(f"repeat bounds {lo}..{hi} are empty")
    if hi == 0 or item == EMPTY:
        return EMPTY
    if lo == hi == 1:
        return item
    return Repeat(item, lo, hi)


def optional(item: Expr) -> Expr:
    return repeat(item, 0, 1)


_NAME = re.compile(r"[^a-z0-9]+")


class RuleSet:
    """Named rules, deduplicated by content: `rule(hint, expr)` returns a reference."""

    def __init__(self) -> None:
        self.rules: dict[str, Expr] = {}
        self._by_expr: dict[Expr, str] = {}
        #: rules that stay parser rules in Lark even when regular (the walk states: as lexemes
        #: their union would overflow llguidance's lexer)
        self.structural: set[str] = set()

    def name(self, hint: str) -> str:
        """A fresh rule name from `hint` (lowercase letters, digits and hyphens)."""
        base = _NAME.sub("-", hint.lower()).strip("-") or "r"
        if not base[0].isalpha():
            base = "r-" + base
        name, n = base, 1
        while name in self.rules:
            n += 1
            name = f"{base}-{n}"
        self.rules[name] = EMPTY  # reserved until defined
        return name

    def define(self, name: str, expr: Expr, *, structural: bool = False) -> Ref:
        """Give a reserved name its expression (for recursive or forward-referenced rules)."""
        self.rules[name] = expr
        if structural:
            self.structural.add(name)
        return Ref(name)

    def rule(self, hint: str, expr: Expr) -> Ref:
        """A rule for `expr`, reusing an existing one with the same content."""
        if isinstance(expr, Ref):
            return expr
        found = self._by_expr.get(expr)
        if found is None:
            found = self.name(hint)
            self.rules[found] = expr
            self._by_expr[expr] = found
        return Ref(found)

    def reachable(self, root: str) -> list[str]:
        """Rule names reachable from `root`, in first-reached order."""
        order: list[str] = []
        seen = {root}
        todo = [root]
        while todo:
            name = todo.pop(0)
            order.append(name)
            for ref in _refs(self.rules[name]):
                if ref not in seen:
                    seen.add(ref)
                    todo.append(ref)
        return order


def _refs(expr: Expr) -> Iterable[str]:
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Ref):
            yield node.name
        elif isinstance(node, Seq | Alt):
            stack.extend(reversed(node.items))
        elif isinstance(node, Repeat):
            stack.append(node.item)


# ---------------------------------------------------------------- rendering

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _escape(char: str, specials: str) -> str:
    """One character in a literal or a class, read alike by xgrammar, llama.cpp and llguidance.

    ASCII controls are escaped as `\\xHH` (llama.cpp reads two hex digits, xgrammar as many as
    follow, so a caller never lets a hex digit follow); other characters are written as
    themselves (all three read UTF-8), but for unprintable ones from U+1000 (line separators),
    as `\\uXXXX`. A `\\u` with a leading zero is avoided: llguidance's GBNF reader (vLLM's
    guidance backend) drops the zeros and then misreads it."""
    if char in specials:
        return "\\" + char
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named:
        return named
    code = ord(char)
    if code < 0x20:
        return f"\\x{code:02X}"
    # an unprintable character from U+1000 on has no leading zero to lose: `\\u` is safe
    return f"\\u{code:04X}" if 0x1000 <= code <= 0xFFFF and not char.isprintable() else char


_PLAIN_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r",
                                "\t": "\\t"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]|[\u1000-\uffff]")


def _literal(text: str) -> str:
    """A quoted literal; where an escape would be followed by a hex digit, a new one starts."""
    if not _CONTROL.search(text):  # the common case: nothing but the five plain escapes
        return f'"{text.translate(_PLAIN_ESCAPES)}"'
    chunks, current = [], ""
    for i, char in enumerate(text):
        piece = _escape(char, '"\\')
        current += piece
        if piece.startswith("\\x") and text[i + 1:i + 2] in _HEX_DIGITS:
            chunks.append(current)
            current = ""
    chunks.append(current)
    return " ".join(f'"{c}"' for c in chunks)


def _class(node: Chars) -> str:
    """A class whose items run from high code points to low (so an `\\xHH` escape is followed
    by another escape, a `-` or the `]`), a literal `-` last and `^` never first."""
    items: list[tuple[int, int]] = []
    dash = False
    for lo, hi in node.ranges:
        if lo <= ord("-") <= hi:
            dash = True
            items += [r for r in ((lo, ord("-") - 1), (ord("-") + 1, hi)) if r[0] <= r[1]]
        else:
            items.append((lo, hi))
    items.sort(reverse=True)
    if not node.negated and len(items) > 1 and items[0][0] == ord("^"):
        items.append(items.pop(0))
    parts = [_escape(chr(lo), "\\[]") if lo == hi
             else f"{_escape(chr(lo), chr(92) + '[]')}-{_escape(chr(hi), chr(92) + '[]')}"
             for lo, hi in items]
    body = "".join(parts) + ("-" if dash else "")
    if not node.negated and body in ("^", "-"):
        return _literal(body)
    return "[" + ("^" if node.negated else "") + body + "]"


def _suffix(lo: int, hi: int | None) -> str:
    if (lo, hi) == (0, 1):
        return "?"
    if (lo, hi) == (0, None):
        return "*"
    if (lo, hi) == (1, None):
        return "+"
    if hi is None:
        return f"{{{lo},}}"
    return f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"


def _expr(node: Expr, nested: bool, dialect: Dialect) -> str:
    if isinstance(node, Lit):
        text = _literal(node.text)
        return f"({text})" if nested and " " in text and text.count('"') > 2 else text
    if isinstance(node, Chars):
        return _class(node)
    if isinstance(node, Ref):
        return node.name
    if isinstance(node, Seq):
        text = " ".join(_expr(i, True, dialect) for i in node.items)
        return f"({text})" if nested else text
    if isinstance(node, Alt):
        text = " | ".join(_expr(i, False, dialect) for i in node.items)
        return f"({text})" if nested else text
    item = _expr(node.item, True, dialect)
    if isinstance(node.item, Repeat):
        item = f"({item})"
    return item + _suffix(node.min, node.max)


#: llama.cpp refuses a repetition bound above this ("exceeds sane defaults").
GBNF_MAX_REPEAT = 2000


def _split_repeats(node: Expr) -> Expr:
    """GBNF form: a repetition bound above `GBNF_MAX_REPEAT` as an unambiguous chain."""
    if isinstance(node, Seq | Alt):
        return type(node)(tuple(_split_repeats(i) for i in node.items))
    if not isinstance(node, Repeat):
        return node
    item, lo, hi = _split_repeats(node.item), node.min, node.max
    step = GBNF_MAX_REPEAT
    if lo <= step and (hi is None or hi <= step):
        return Repeat(item, lo, hi)
    block = Repeat(item, step, step)
    rest_hi = None if hi is None else hi - step
    if lo >= step:
        return seq(block, _split_repeats(repeat(item, lo - step, rest_hi)))
    # fewer than `step`, or `step` and then the rest: never both
    return alt(repeat(item, lo, step - 1), seq(block, _split_repeats(repeat(item, 0, rest_hi))))


# ---------------------------------------------------------------- lark (llguidance)

def _lark_class(node: Chars) -> str:
    def one(code: int) -> str:
        char = chr(code)
        if char.isalnum() or char in " !\"#%&',:;<=>@_`~" or (code > 0x7F and char.isprintable()):
            return char
        return f"\\x{{{code:X}}}"

    parts = [one(lo) if lo == hi else f"{one(lo)}-{one(hi)}" for lo, hi in node.ranges]
    return "/[" + ("^" if node.negated else "") + "".join(parts) + "]/"


def _lark_expr(node: Expr, nested: bool, names: dict[str, str]) -> str:
    if isinstance(node, Lit):
        return json.dumps(node.text, ensure_ascii=False)
    if isinstance(node, Chars):
        return _lark_class(node)
    if isinstance(node, Ref):
        return names[node.name]
    if isinstance(node, Seq | Alt):
        sep = " " if isinstance(node, Seq) else " | "
        text = sep.join(_lark_expr(i, isinstance(node, Seq), names) for i in node.items)
        return f"({text})" if nested else text
    item = _lark_expr(node.item, True, names)
    if isinstance(node.item, Repeat):
        item = f"({item})"
    hi = "" if node.max is None else node.max
    return f"{item}{{{node.min},{hi}}}"


def _terminals(rules: RuleSet, names: list[str]) -> set[str]:
    """Rules that reference only terminals (no recursion): what llguidance's GBNF reader makes
    lexemes of. Rendering them the same way keeps its lexing (and speed) for the Lark text."""
    refs = {n: set(_refs(rules.rules[n])) for n in names}
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name in names:
            if name not in found and name not in rules.structural and refs[name] <= found:
                found.add(name)
                changed = True
    return found


def _render_lark(rules: RuleSet, lines: list[str]) -> str:
    order = rules.reachable("root")
    terminal = _terminals(rules, order)
    names = {n: ("start" if n == "root" else
                 n.upper().replace("-", "_") if n in terminal and n != "root" else
                 n.replace("-", "_")) for n in order}
    for name in order:
        lines.append(f"{names[name]}: {_lark_expr(rules.rules[name], False, names)}")
    return "\n".join(lines) + "\n"


def render(rules: RuleSet, dialect: Dialect, header: str = "") -> str:
    """The grammar text for `dialect`: the rules reachable from `root`, `root` first."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown grammar dialect {dialect!r}; expected one of "
                         f"{', '.join(DIALECTS)}")
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    if dialect == "lark":
        return _render_lark(rules, lines)
    for name in rules.reachable("root"):
        expr = rules.rules[name]
        if dialect == "gbnf":
            expr = _split_repeats(expr)
        lines.append(f"{name} ::= {_expr(expr, False, dialect)}")
    return "\n".join(lines) + "\n"
