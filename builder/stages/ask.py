"""The one ask → check → re-ask loop every model role goes through (plan, respond, judge).

A stage supplies only what it asks and how it reads the answer — Curator's `prompt(row)` /
`parse(row, response)` pair: a `Stage` has `request(row)` and `parse(row, text)`, the latter
returning a `Reading` (what the reply means, or the codes and problems it was rejected for,
and the repairs it took to read it). Everything else lives here, once:

- the reply's text is the message content, else the server's reasoning field (counted as a
  `reasoning_field` repair — a reasoning-model server is answering, not failing);
- a reply cut at `max_tokens` (`finish_reason: "length"`) is asked again with twice the room,
  up to the role's cap (`max_tokens_cap`), and counted as a truncation; past the cap the call
  fails with `finish_length`, naming the setting to raise — never silently dropped;
- a rejected reply goes back to the model with the reasons (a feedback turn: a new request,
  with its own cache entry, so a fixed `seed` cannot buy the same bad reply twice and a
  resumed build replays the same conversation without paying for it again);
- repairs, truncations and re-asks are counted on the role's `CallStats`, and each exchange
  ends in one yield `outcome` (`OUTCOMES`) that the build counts per stage.

The JSON roles' requests are constrained as the preflight chose for the role (`constrain`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from ..backends.base import CallFailed, ChatBackend, ChatRequest, ChatResult
from ..backends.stats import CallStats
from ..cache import TRUNCATED_REASON
from .constrain import constrained
from .content import text_only

T = TypeVar("T")
Row = TypeVar("Row", contravariant=True)

MAX_FEEDBACK_LINES = 12
#: A truncated request without `max_tokens` is grown from this, and capped at 8× it.
DEFAULT_MAX_TOKENS = 1024
#: The yield of one exchange: valid on the first reply as it came, valid once its wrapping was
#: repaired, valid after a re-ask (feedback or more room), rejected every time, or failed.
OUTCOMES = ("first_try", "repaired", "re_asked", "rejected", "failed")


@dataclass
class Reading(Generic[T]):
    """What a stage made of one reply: `value` (also kept for a rejected reply when the stage
    has one to log), the `codes` and `problems` it was rejected for (none: accepted) and the
    `repairs` reading it took, by kind."""

    value: T | None
    codes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    repairs: Counter[str] = field(default_factory=Counter)
    reply: str = ""  # the text the model sent (what a feedback turn quotes back)
    model: str = ""  # the model the endpoint answered as (the rows' provenance)

    @property
    def ok(self) -> bool:
        return not self.codes


class Stage(Protocol[Row, T]):
    """A model role's part: what it asks about a row and how it reads the reply (`name` and
    `instruction` are read-only, so frozen dataclass stages match)."""

    @property
    def name(self) -> str: ...

    @property
    def instruction(self) -> str: ...  # the last line of a feedback turn

    def request(self, row: Row) -> ChatRequest: ...

    def parse(self, row: Row, text: str) -> Reading[T]: ...


@dataclass(frozen=True)
class Asker:
    """Who is asked: a role's backend (cached in a build) and its limits.

    `max_tokens_cap` bounds how far a truncated reply's `max_tokens` grows (0: 4× the
    request's own, or 8× `DEFAULT_MAX_TOKENS` without one); `constrain` is the role's response
    format mode; `role` names the role's config table in messages; without `images` the
    requests go without their image parts (a text-only model)."""

    backend: ChatBackend
    max_tokens_cap: int = 0
    constrain: str = "json_schema"
    role: str = ""
    images: bool = True

    @property
    def stats(self) -> CallStats:
        stats = getattr(self.backend, "stats", None)
        return stats if isinstance(stats, CallStats) else _UNCOUNTED


_UNCOUNTED = CallStats()  # for backends that keep no counters (the counts go nowhere)


def with_feedback(request: ChatRequest, reply: str, problems: Sequence[str],
                  instruction: str) -> ChatRequest:
    """`request` continued with the model's `reply` and a user turn listing `problems`."""
    listed = "\n".join(f"- {p}" for p in problems[:MAX_FEEDBACK_LINES])
    more = len(problems) - MAX_FEEDBACK_LINES
    if more > 0:
        listed += f"\n- … and {more} more"
    feedback = f"Your reply was rejected:\n{listed}\n{instruction}"
    messages = [*request.messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": [{"type": "text", "text": feedback}]}]
    return replace(request, messages=messages)


def _token_key(sampling: dict[str, Any]) -> str:
    return "max_completion_tokens" if "max_completion_tokens" in sampling else "max_tokens"


class Exchange(Generic[T]):
    """One conversation with one role about one row (see the module doc)."""

    def __init__(self, asker: Asker, request: ChatRequest, read: Callable[[str], Reading[T]],
                 instruction: str) -> None:
        self.asker, self.read, self.instruction = asker, read, instruction
        self.request = constrained(request if asker.images else text_only(request),
                                   asker.constrain)
        self.readings: list[Reading[T]] = []
        self.truncations = 0
        self.failure: CallFailed | None = None

    @classmethod
    def of(cls, asker: Asker, stage: Stage[Any, T], row: Any) -> Exchange[T]:
        """The exchange that asks `stage` about `row`."""
        return cls(asker, stage.request(row), lambda text: stage.parse(row, text),
                   stage.instruction)

    def _grown(self, partial: ChatResult | None) -> ChatRequest | None:
        """The request with twice the room, or None at the role's cap."""
        sampling = dict(self.request.sampling)
        key = _token_key(sampling)
        current = sampling.get(key)
        current = current if isinstance(current, int) and current > 0 else None
        used = partial.completion_tokens if partial is not None else 0
        cap = self.asker.max_tokens_cap or (4 * current if current else 8 * DEFAULT_MAX_TOKENS)
        wanted = min(cap, 2 * (current or used or DEFAULT_MAX_TOKENS))
        if wanted <= (current or used):
            return None
        return replace(self.request, sampling={**sampling, key: wanted})

    async def ask(self) -> Reading[T]:
        """Send the current request (with more room while it comes back cut) and read it.

        Raises `CallFailed` when the call fails; `self.failure` keeps it."""
        stats = self.asker.stats
        while True:
            try:
                result = await self.asker.backend.complete(self.request)
            except CallFailed as exc:
                grown = self._grown(exc.partial) if exc.reason == TRUNCATED_REASON else None
                if grown is None:
                    if exc.reason == TRUNCATED_REASON:
                        key = _token_key(self.request.sampling)
                        where = f"models.{self.asker.role}." if self.asker.role else ""
                        exc = CallFailed(exc.reason, f"{exc.detail}, cut at {key} "
                                         f"{self.request.sampling.get(key, '(server default)')};"
                                         f" raise {where}max_tokens_cap", partial=exc.partial,
                                         sent=exc.sent)
                    self.failure = exc
                    raise exc from None
                self.truncations += 1
                stats.truncations += 1
                stats.reasks[TRUNCATED_REASON] += 1
                self.request = grown
                continue
            reading = self.read(result.text)
            if not result.content.strip() and result.reasoning.strip():
                reading.repairs["reasoning_field"] += 1
            reading.reply, reading.model = result.text, result.model
            stats.repairs.update(reading.repairs)
            self.readings.append(reading)
            return reading

    def feedback(self) -> None:
        """Continue the conversation with the last reply's problems (a re-ask follows)."""
        last = self.readings[-1]
        self.asker.stats.reasks.update(sorted(set(last.codes)))
        self.request = with_feedback(self.request, last.reply, last.problems, self.instruction)
        if not self.asker.images:  # the feedback turn too: a text-only server takes no parts
            self.request = text_only(self.request)

    async def converse(self, max_asks: int) -> Reading[T]:
        """Ask, and re-ask with feedback while the reply is rejected, `max_asks` replies at most.
        Raises `CallFailed` when a call fails."""
        reading = await self.ask()
        while not reading.ok and len(self.readings) < max(1, max_asks):
            self.feedback()
            reading = await self.ask()
        return reading

    @property
    def accepted(self) -> Reading[T] | None:
        return next((r for r in self.readings if r.ok), None)

    @property
    def outcome(self) -> str:
        """This exchange's yield (one of `OUTCOMES`)."""
        accepted = self.accepted
        if accepted is None:
            return "failed" if self.failure is not None else "rejected"
        if len(self.readings) > 1 or self.truncations:
            return "re_asked"
        return "repaired" if accepted.repairs else "first_try"
