"""Call accounting for one model role, shaped for `manifest.json`.

A manifest has a stable part that must be byte-identical across identical builds, and a run part
that says what this particular run did. A resumed or repeated build uses the same calls with the
same results, but sends a different number of them, retries differently and takes a different
time. So the two halves are kept apart:

- **stable** (`calls`, `prompt_tokens`, `completion_tokens`, `cost_usd`, `repairs`,
  `truncations`, `reasks`, `answered_by`): every result the build used, whether sent now, read
  from the cache or shared with an identical in-flight call, with the token counts (and the
  model that answered) recorded when it was first produced, and what reading those results took
  — replies made readable by kind of repair (`repairs`), replies cut at `max_tokens`
  (`truncations`) and replies asked again by reason (`reasks`). Only integers are summed (so
  completion order cannot change a bit); cost is derived from them at the end with the role's
  prices.
- **run** (`sent`, `attempts`, `cache_hits`, `coalesced`, `failed`, `retries`, `billed_*`,
  `paced_s`, `wall_s`): what this run paid and how it went. `sent` counts requests that left the
  process; `attempts` every HTTP attempt (retries included); `retries` the wire-level retries by
  reason (429, 5xx, timeouts …); `billed_*` includes calls that failed after the model produced
  tokens; `paced_s` sums the seconds requests were held back by the server's rate-limit headers.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any


def cost_usd(prompt_tokens: int, completion_tokens: int, price_in: float,
             price_out: float) -> float:
    """Cost of a token count at prices given in dollars per million tokens."""
    return round((prompt_tokens * price_in + completion_tokens * price_out) / 1e6, 6)


@dataclass
class CallStats:
    """Counters shared by a `CachedBackend` and the client under it (one per model role)."""

    price_in: float = 0.0
    price_out: float = 0.0
    # stable: the results the build used
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    repairs: Counter[str] = field(default_factory=Counter)
    truncations: int = 0
    reasks: Counter[str] = field(default_factory=Counter)
    answered_by: Counter[str] = field(default_factory=Counter)  # served model name → results
    # run: what this run did
    sent: int = 0
    attempts: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    billed_prompt_tokens: int = 0
    billed_completion_tokens: int = 0
    paced_s: float = 0.0
    _first_start: float | None = field(default=None, repr=False)
    _last_end: float | None = field(default=None, repr=False)

    def started(self) -> None:
        """Mark a call's start (for the run's wall time)."""
        if self._first_start is None:
            self._first_start = time.monotonic()

    def ended(self) -> None:
        """Mark a call's end."""
        self._last_end = time.monotonic()

    def used(self, prompt_tokens: int, completion_tokens: int, model: str = "") -> None:
        """Count one result the build used (`model`: the name the endpoint answered as)."""
        self.calls += 1
        if model:
            self.answered_by[model] += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def billed(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Count tokens an endpoint charged for in this run."""
        self.billed_prompt_tokens += prompt_tokens
        self.billed_completion_tokens += completion_tokens

    def merge(self, other: CallStats) -> None:
        """Add `other`'s counts to these (one item's calls, counted apart in a Ray shard); the
        prices stay. Its clock is another process's: the wall time becomes the merges' span."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name.startswith("_") or f.name in ("price_in", "price_out"):
                continue
            if isinstance(mine, Counter):
                mine.update(theirs)
            else:
                setattr(self, f.name, mine + theirs)
        if other._first_start is not None:
            self.started()
            self.ended()

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for a token count at this role's prices."""
        return cost_usd(prompt_tokens, completion_tokens, self.price_in, self.price_out)

    @property
    def wall_s(self) -> float:
        """Seconds from the first call's start to the last call's end in this run."""
        if self._first_start is None or self._last_end is None:
            return 0.0
        return round(self._last_end - self._first_start, 3)

    def stable(self) -> dict[str, Any]:
        """The part of the manifest that identical builds reproduce byte for byte."""
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost_usd": self.cost_of(self.prompt_tokens, self.completion_tokens),
                "repairs": dict(sorted(self.repairs.items())), "truncations": self.truncations,
                "reasks": dict(sorted(self.reasks.items())),
                "answered_by": dict(sorted(self.answered_by.items()))}

    def run(self) -> dict[str, Any]:
        """The part that describes this run only (counts that depend on timing and history)."""
        return {"sent": self.sent, "attempts": self.attempts, "cache_hits": self.cache_hits,
                "coalesced": self.coalesced, "failed": dict(sorted(self.failed.items())),
                "retries": dict(sorted(self.retries.items())),
                "billed_prompt_tokens": self.billed_prompt_tokens,
                "billed_completion_tokens": self.billed_completion_tokens,
                "billed_cost_usd": self.cost_of(self.billed_prompt_tokens,
                                                self.billed_completion_tokens),
                "paced_s": round(self.paced_s, 3), "wall_s": self.wall_s}
