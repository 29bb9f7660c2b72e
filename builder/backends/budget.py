"""A build's spending limit: requests sent and dollars billed, across every model role.

Every client of a build asks the one `Budget` before each request leaves the process; once the
limit is reached the request is refused (`CallFailed("budget", sent=False)`) and the build stops
starting items. Answers from the cache cost nothing and are never refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import CallFailed
from .stats import cost_usd

BUDGET_REASON = "budget"


@dataclass
class Budget:
    """At most `max_calls` requests (each HTTP attempt, retries and preflight included) and
    `max_cost` dollars billed; None means no limit."""

    max_calls: int | None = None
    max_cost: float | None = None
    calls: int = 0
    cost: float = 0.0

    @property
    def exhausted(self) -> bool:
        return (self.max_calls is not None and self.calls >= self.max_calls) or \
            (self.max_cost is not None and self.cost >= self.max_cost)

    def admit(self) -> None:
        """Count one request about to be sent, or refuse it when the budget is spent."""
        if self.exhausted:
            raise CallFailed(BUDGET_REASON, self.describe(), sent=False)
        self.calls += 1

    def bill(self, prompt_tokens: int, completion_tokens: int, price_in: float,
             price_out: float) -> None:
        self.cost += cost_usd(prompt_tokens, completion_tokens, price_in, price_out)

    def seen(self, calls: int, cost: float) -> None:
        """Catch up with spending counted elsewhere (a shard's, the cluster gate's)."""
        self.calls, self.cost = max(self.calls, calls), max(self.cost, cost)

    def describe(self) -> str:
        """What was spent against which limit, naming the flags that set them."""
        parts = []
        if self.max_calls is not None:
            parts.append(f"{self.calls} of --max-calls {self.max_calls} requests")
        if self.max_cost is not None:
            parts.append(f"${self.cost:.4f} of --max-cost ${self.max_cost:g}")
        return "; ".join(parts) or "no limit"
