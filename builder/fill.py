"""Filling the splits: candidates in order, more of them when losses outrun the reserve.

Each split is filled in candidate order: an item that is rejected or fails is replaced by the
next candidate of the same split, and the kept set is always the first N survivors in candidate
order — whatever the timing — so a build is deterministic. A split launches a candidate only
while kept + in flight < target, so it ends with the shortest prefix of its candidates that
holds `target` survivors.

When a split has tried every candidate it was given (its share of the reserve included) and is
still short, `Draws` gives every split its next round of candidates: the pool items no split
holds yet (from the sources loaded again with twice the need when the pool is spent), drawn
with the same stratification, in proportion to the splits' targets, and with eval still held
out by family (`stages.split.draw_round`). A round's candidates depend
only on the config and the round's number, never on which split asked first, so the candidate
order — and with it the kept set — stays deterministic. Drawing stops at `max_draw` × a split's
target, when the sources have nothing new, or when the build's budget is spent.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .ledger import KEPT, Outcome
from .sources.base import SourceItem


@dataclass
class Fill:
    """One split being filled from its candidates, in order."""

    split: str
    candidates: list[SourceItem]
    target: int
    limit: int = 0  # candidates this split may ever have (0: no more than given)
    next: int = 0
    kept: int = 0
    in_flight: int = 0

    def ready(self) -> bool:
        return self.next < len(self.candidates) and self.kept + self.in_flight < self.target

    def starved(self) -> bool:
        """Every candidate launched, still short, and allowed more."""
        return (self.next == len(self.candidates) and self.kept + self.in_flight < self.target
                and len(self.candidates) < self.limit)


def _identity(item: SourceItem) -> tuple[str, str]:
    return (item.source_dataset, item.source_id)


class Draws:
    """Rounds of further candidates (see the module doc).

    `load(needed)` returns the deduplicated pool (`stages.split.DedupPool`) of the sources
    loaded for `needed` items; `first` is the pool the initial assignment came from and
    `needed` what it was loaded for.
    """

    def __init__(self, first: Any, needed: int, taken: Iterator[SourceItem],
                 load: Callable[[int], Any], held_out: frozenset[str] = frozenset(),
                 trained: frozenset[str] = frozenset()) -> None:
        self._pool, self._needed, self._load = first, needed, load
        self._used = {_identity(item) for item in taken}
        #: the families eval holds and those training holds (the first draw's, then each round's)
        self.held_out, self.trained = set(held_out), set(trained)
        self.rounds = 0
        self.exhausted = False

    def _rest(self) -> Any:
        """The pool without the items some split already holds."""
        from .stages.split import DedupPool

        strata = {s: [(o, it) for o, it in members if _identity(it) not in self._used]
                  for s, members in self._pool.strata.items()}
        return DedupPool({s: m for s, m in strata.items() if m}, {})

    def next_round(self, targets: Mapping[str, int]) -> dict[str, list[SourceItem]]:
        """Every split's candidates of the next round (empty when the sources are spent)."""
        from .stages.split import draw_round

        while not len(rest := self._rest()):
            grown = self._load(2 * self._needed)
            if len(grown) <= len(self._pool):  # the sources have nothing new
                self.exhausted = True
                return {}
            self._pool, self._needed = grown, 2 * self._needed
        self.rounds += 1
        drawn = draw_round(rest, targets, self.held_out, self.trained)
        # every item of the round is spent: those drawn, and the held-out families' leftovers
        # the round left out (no other split may take them; a later round reloads instead)
        self._used.update(_identity(item) for members in rest.strata.values()
                          for _, item in members)
        return drawn


Process = Callable[[str, int, SourceItem], Awaitable[Outcome]]


async def _stop(tasks: dict[asyncio.Task[Outcome], Fill]) -> None:
    """Cancel and await every task, so none is left with an exception nobody retrieves."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_items(process: Process, record: Callable[[Outcome], None], fills: list[Fill],
                    cap: int, *, draws: Draws | None = None,
                    stopped: Callable[[], bool] = lambda: False) -> None:
    """Keep up to `cap` items in flight, round-robin over the splits, until each is full (or
    nothing more may be tried); each outcome goes to `record` as it ends."""
    tasks: dict[asyncio.Task[Outcome], Fill] = {}
    while True:
        launched = True
        while launched and len(tasks) < cap and not stopped():
            launched = False
            for fill in fills:
                if len(tasks) < cap and fill.ready():
                    item = fill.candidates[fill.next]
                    task = asyncio.ensure_future(process(fill.split, fill.next, item))
                    tasks[task] = fill
                    fill.next += 1
                    fill.in_flight += 1
                    launched = True
            if (not launched and draws is not None and not draws.exhausted and not stopped()
                    and any(f.starved() for f in fills)):
                targets = {f.split: f.target for f in fills}
                extra = await asyncio.to_thread(draws.next_round, targets)
                for fill in fills:
                    room = max(0, fill.limit - len(fill.candidates))
                    fill.candidates.extend(extra.get(fill.split, [])[:room])
                launched = bool(extra)
        if not tasks:
            return
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        error = next((e for t in done if not t.cancelled() and (e := t.exception())), None)
        if error is not None:  # fatal (a storage error): end the other items, then report it
            await _stop(tasks)
            raise error
        for task in done:
            fill = tasks.pop(task)
            outcome = task.result()
            fill.in_flight -= 1
            fill.kept += outcome.status == KEPT
            record(outcome)


def draw_limit(target: int, available: int, max_draw: float) -> int:
    """The most candidates a split may have: `max_draw` × its target, never fewer than it was
    given."""
    return max(available, math.ceil(target * max_draw))
