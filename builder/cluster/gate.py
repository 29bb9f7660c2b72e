"""The gate: every endpoint's wire slots and the build's budget, shared by all shards.

One async actor holds, per endpoint, the `Slots` a one-process client holds itself (so a retry
still goes before any first attempt) and the build's `Budget`. A shard's client holds a slot
from it for each attempt (`GateSlots.held`; a shard keeps up to its share between attempts), and
with a budget limit asks it for each attempt, which is when the request is admitted against
the budget. So the configured concurrency bounds the requests in flight across the whole
cluster, never once per shard, and `--max-calls` counts every shard's requests.

Slots are counted per shard incarnation. When Ray restarts a shard whose process died holding
slots, the new incarnation's first word (`forget`) hands them back; a slot granted to a dead
incarnation goes back at once. The gate records each endpoint's peak in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import ray

from ..backends.base import CallFailed
from ..backends.budget import BUDGET_REASON, Budget
from ..backends.client import Slots

_STALE = "stale"


# ray's stub omits the actor-only options (max_concurrency) from `remote`'s keyword overload
@ray.remote(num_cpus=0, max_concurrency=100_000)  # type: ignore[call-overload]
class Gate:
    """The actor (see the module doc); `budget` starts with what the driver has spent."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._slots: dict[str, Slots] = {}
        self._held: Counter[tuple[str, str]] = Counter()  # (endpoint, holder) → slots
        self._alive: dict[str, str] = {}  # holder → its live incarnation
        self._in_flight: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        self._cpu = time.process_time()
        self._grants = 0

    async def acquire(self, endpoint: str, bound: int, retry: bool, holder: str,
                      incarnation: str) -> tuple[str | None, int, float]:
        """Wait for a slot and admit one request: (refusal or None, calls, cost spent)."""
        slots = self._slots.setdefault(endpoint, Slots(bound))
        await slots.acquire(retry)
        refusal = None
        if self._alive.get(holder) != incarnation:
            refusal = _STALE
        else:
            try:
                self._budget.admit()
            except CallFailed as refused:
                refusal = refused.detail
        if refusal is not None:
            slots.release()
        else:
            self._grants += 1
            self._held[(endpoint, holder)] += 1
            self._in_flight[endpoint] += 1
            self._peak[endpoint] = max(self._peak[endpoint], self._in_flight[endpoint])
        return refusal, self._budget.calls, self._budget.cost

    def release(self, endpoint: str, holder: str, incarnation: str) -> None:
        if self._alive.get(holder) == incarnation and self._held[(endpoint, holder)] > 0:
            self._give_back(endpoint, holder, 1)

    def _give_back(self, endpoint: str, holder: str, n: int) -> None:
        self._held[(endpoint, holder)] -= n
        self._in_flight[endpoint] -= n
        for _ in range(n):
            self._slots[endpoint].release()

    def bill(self, prompt_tokens: int, completion_tokens: int, price_in: float,
             price_out: float) -> None:
        self._budget.bill(prompt_tokens, completion_tokens, price_in, price_out)

    def forget(self, holder: str, incarnation: str) -> None:
        """`holder` starts (again) as `incarnation`: what earlier ones held goes back."""
        for (endpoint, who), n in list(self._held.items()):
            if who == holder and n:
                self._give_back(endpoint, holder, n)
        self._alive[holder] = incarnation

    def figures(self) -> dict[str, Any]:
        b = self._budget
        return {"peak_in_flight": dict(sorted(self._peak.items())), "calls": b.calls,
                "cost_usd": round(b.cost, 6), "exhausted": b.exhausted,
                "grants": self._grants, "cpu_s": round(time.process_time() - self._cpu, 3)}


class GateBudget(Budget):
    """A shard's view of the build's budget, which the gate keeps: a request is admitted there
    with its slot (`GateSlots`), so `admit` has nothing left to do; bills go to the gate, and
    `calls`/`cost` are what the gate last said."""

    def __init__(self, gate: Any, max_calls: int | None, max_cost: float | None) -> None:
        super().__init__(max_calls, max_cost)
        self.gate = gate

    def admit(self) -> None:
        """Admitted by the gate with the slot."""

    def bill(self, prompt_tokens: int, completion_tokens: int, price_in: float,
             price_out: float) -> None:
        super().bill(prompt_tokens, completion_tokens, price_in, price_out)
        self.gate.bill.remote(prompt_tokens, completion_tokens, price_in, price_out)


class GateSlots:
    """An endpoint's slots as a client holds them (`Slots.held`), kept by the gate.

    Without a budget limit a shard keeps up to `keep` slots (its share of the bound) between
    requests instead of handing each back — a request that finds one idle goes without asking
    the gate, which halves the gate's work and takes it off most requests' path — and hands back
    every slot beyond its share at once and the idle ones after `IDLE_S` unused, so a busy shard
    gets what the others do not use. The gate still counts every slot held, so the bound holds.
    With a budget limit every request is admitted at the gate."""

    IDLE_S = 0.05

    def __init__(self, gate: Any, endpoint: str, bound: int, holder: str, incarnation: str,
                 budget: GateBudget, keep: int = 0) -> None:
        self.gate, self.endpoint, self.bound = gate, endpoint, bound
        self.holder, self.incarnation, self.budget = holder, incarnation, budget
        limited = budget.max_calls is not None or budget.max_cost is not None
        self.keep = 0 if limited else keep
        self._leases = 0  # slots the gate granted this shard, in use or idle
        self._idle = 0
        self._uses = 0

    @contextlib.asynccontextmanager
    async def held(self, *, retry: bool) -> AsyncIterator[None]:
        if self._idle:
            self._idle -= 1
        else:
            await self._lease(retry)
        self._uses += 1
        try:
            yield
        finally:
            if self._leases > self.keep:
                self._give_back(1)
            else:
                self._idle += 1
                asyncio.get_running_loop().call_later(self.IDLE_S, self._trim, self._uses)

    async def _lease(self, retry: bool) -> None:
        ref = self.gate.acquire.remote(self.endpoint, self.bound, retry, self.holder,
                                       self.incarnation)
        try:
            refusal, calls, cost = await ref
        except asyncio.CancelledError:  # a slot granted after this gave up goes back
            ref.future().add_done_callback(self._release_if_granted)
            raise
        self.budget.seen(calls, cost)
        if refusal == _STALE:  # this process was replaced: nothing should still run here
            raise CallFailed("connection", "this shard was restarted", sent=False)
        if refusal is not None:
            raise CallFailed(BUDGET_REASON, refusal, sent=retry)
        self._leases += 1

    def _give_back(self, n: int) -> None:
        self._leases -= n
        for _ in range(n):
            self.gate.release.remote(self.endpoint, self.holder, self.incarnation)

    def _trim(self, uses: int) -> None:
        """Idle slots nobody took since `uses` go back to the gate."""
        if uses == self._uses and self._idle:
            idle, self._idle = self._idle, 0
            self._give_back(idle)

    def _release_if_granted(self, future: Any) -> None:
        if not future.cancelled() and future.exception() is None and future.result()[0] is None:
            self.gate.release.remote(self.endpoint, self.holder, self.incarnation)
