"""Does a grammar accept a text? Asked of a real grammar matcher (llguidance), never re-derived.

llguidance compiles the grammar's Lark rendering (its native syntax, parsed in Rust); a grammar
past its size limits (a loop protocol's exact walks) is read from GBNF instead, the way vLLM's
guidance backend reads a GBNF request. The text is walked one byte at a time (llguidance's
byte-level tokenizer, no model). A refusal says where the text leaves the grammar: the
character offset, its line and column, and the text from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from ...errors import ProtocolError
from .trace import TraceGrammar

NEAR_CHARS = 40


class MatcherUnavailable(ProtocolError, RuntimeError):
    """llguidance is not installed (`pip install 'safer-toolkit[grammar]'`)."""


@dataclass(frozen=True)
class Match:
    """The matcher's answer for one text; where it was refused when it was."""

    accepted: bool
    offset: int | None = None  # characters into the text
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    near: str | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"accepted": self.accepted}
        if not self.accepted:
            found.update(offset=self.offset, line=self.line, column=self.column,
                         near=self.near, message=self.message)
        return found


@cache
def _llguidance() -> tuple[Any, Any]:
    try:
        import llguidance
    except ImportError:
        raise MatcherUnavailable("the grammar matcher needs llguidance: "
                                 "pip install 'safer-toolkit[grammar]'") from None
    return llguidance, llguidance.LLTokenizer("byte")


def require_matcher() -> None:
    """Raise `MatcherUnavailable` now rather than at the first record."""
    _llguidance()


def _where(text: str, offset: int, message: str) -> Match:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Match(False, offset, line, column, text[offset:offset + NEAR_CHARS], message)


class GrammarMatcher:
    """A compiled grammar that answers `match(text)`; build once per grammar, reuse."""

    def __init__(self, grammar: TraceGrammar | str) -> None:
        """`grammar`: a compiled `TraceGrammar`, or a grammar text in GBNF/EBNF."""
        llguidance, self._tokenizer = _llguidance()
        self._llguidance = llguidance
        error = ""
        if isinstance(grammar, TraceGrammar):
            self._compiled = llguidance.LLMatcher.grammar_from_lark(grammar.text("lark"))
            error = self._refusal()
            if not error:
                return
            grammar = grammar.text("gbnf")
        self._compiled = llguidance.grammar_from("gbnf", grammar)
        error = self._refusal()
        if error:
            raise ValueError(f"the matcher refuses the grammar: {error[:500]}")

    def _refusal(self) -> str:
        probe = self._llguidance.LLMatcher(self._tokenizer, self._compiled, log_level=0)
        return probe.get_error() if probe.is_error() else ""

    def match(self, text: str) -> Match:
        """Whether the grammar accepts all of `text`, and where it stops if not."""
        data = text.encode("utf-8", "surrogatepass")
        tokens = list(data)  # the byte tokenizer's ids are the byte values
        matcher = self._llguidance.LLMatcher(self._tokenizer, self._compiled, log_level=0)
        taken = matcher.validate_tokens(tokens)
        if taken < len(tokens):
            offset = len(data[:taken].decode("utf-8", "ignore"))
            return _where(text, offset, "the text leaves the grammar here")
        if not matcher.consume_tokens(tokens) or matcher.is_error():
            return _where(text, len(text), f"matcher error: {matcher.get_error()}")
        if not matcher.is_accepting():
            return _where(text, len(text), "the text ends before the grammar does")
        return Match(True)
