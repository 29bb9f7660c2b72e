"""What a grammar may narrow, and the error for a protocol it cannot express."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ProtocolError


class GrammarError(ProtocolError, ValueError):
    """A protocol or schema the grammar compiler cannot express (the message says why)."""


@dataclass(frozen=True)
class GrammarLimits:
    """Generation-time narrowing; every field None (the default) is the exact grammar.

    A schema's `maxLength` of 1,000 lets a small model ramble until `max_tokens`, and the exact
    walks of a loop protocol run to thousands of grammar rules. Each cap only shrinks the
    language, so every text the narrowed grammar allows still validates strictly:

    - `max_string` / `max_items`: cap every JSON string's length / array's size (a schema's own
      smaller bound stays; a `minLength` above the cap wins over it);
    - `max_answer`: the answer has at most this many characters (and no `<` at all);
    - `max_walk_states`: when the exact walk automaton has more states, the grammar allows fewer
      calls (max_calls lowered, down to min_calls), then no revisits (max_visits 1), until it
      fits; `TraceGrammar.narrowed` says what was lowered.
    """

    max_string: int | None = None
    max_items: int | None = None
    max_answer: int | None = None
    max_walk_states: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_string", "max_items", "max_answer", "max_walk_states"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {value!r}")

    @classmethod
    def generation(cls) -> GrammarLimits:
        """Caps that suit constrained generation with a small model (the benchmark's)."""
        return cls(max_string=160, max_items=6, max_answer=600, max_walk_states=600)

    @property
    def exact(self) -> bool:
        return (self.max_string, self.max_items, self.max_answer,
                self.max_walk_states) == (None, None, None, None)

    def describe(self) -> str:
        if self.exact:
            return "exact"
        caps = [f"{name.removeprefix('max_').replace('_', ' ')} ≤ {value}"
                for name, value in (("max_string", self.max_string),
                                    ("max_items", self.max_items),
                                    ("max_answer", self.max_answer),
                                    ("max_walk_states", self.max_walk_states))
                if value is not None]
        return "narrowed for generation: " + ", ".join(caps)
