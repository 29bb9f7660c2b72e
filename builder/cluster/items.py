"""The driver's side of the items: shards started, items sent to them, reports counted.

The fill (`fill.run_items`) runs on the driver exactly as in a one-process build — candidates
in order, a split launching only while kept + in flight < target, more candidates drawn in
deterministic rounds — so the kept set is the first N survivors in candidate order whichever
shard finishes first. Only `process` differs: it sends the item to the least busy shard and
counts what the item did (`shard.Report`) into the driver's `Build` — call figures per role,
yields and other tallies, rejected and failed entries for the ledger's logs, progress — and
into per-node figures for the manifest. An item whose shard died more often than Ray retries
it fails with reason `shard:worker_lost`, like any failed item.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import ray

from ..ledger import FAILED, Outcome
from ..pipeline import Build, BuildError
from ..sources.base import SourceItem
from .shard import Report, Shard

#: How often Ray runs an item again on its restarted shard before the item fails.
ITEM_RETRIES = 3
#: CPU a shard reserves: it mostly waits on endpoints, and intake tasks need room beside it.
SHARD_CPUS = 0.5
#: Run figures summed per node from each item's call counters.
NODE_FIGURES = ("sent", "cache_hits", "attempts")


@dataclass
class _Handle:
    index: int
    actor: Any
    busy: int = 0
    pids: set[int] = field(default_factory=set)


def merge_tally(into: Any, part: Any) -> Any:
    """`part` added to `into` (returned): numbers summed, counters and dicts merged key by key,
    dataclasses field by field, anything else by its own `merge`. A tally of another kind is a
    bug: it says so rather than drop figures."""
    if isinstance(into, int | float) and not isinstance(into, bool):
        return into + part
    if isinstance(into, Counter):
        into.update(part)
    elif isinstance(into, dict):
        for key, value in part.items():
            into[key] = merge_tally(into[key], value) if key in into else value
    elif hasattr(into, "merge"):
        into.merge(part)
    elif is_dataclass(into):
        for f in fields(into):
            setattr(into, f.name, merge_tally(getattr(into, f.name), getattr(part, f.name)))
    else:
        raise TypeError(f"cannot merge a Build tally of type {type(into).__name__}")
    return into


class ShardSet:
    """The build's shard actors and the `process` the fill calls (see the module doc)."""

    def __init__(self, job: Build, shards: list[Any]) -> None:
        self.job = job
        self._shards = [_Handle(i, actor) for i, actor in enumerate(shards)]
        self.nodes: dict[str, Counter[str]] = {}
        self.lost = 0

    @classmethod
    def start(cls, job: Build, count: int, placement: list[Any], *, run: str, state: Path,
              token: str, backend: str, checks: Mapping[str, Any],
              gate_name: str | None) -> ShardSet:
        # an actor class (see the ignore on `@ray.remote` in shard.py: ray's stub misses it)
        shards = [Shard.options(num_cpus=SHARD_CPUS,  # type: ignore[attr-defined]
                                max_task_retries=ITEM_RETRIES,
                                scheduling_strategy=placement[i % len(placement)])
                  .remote(i, count, run, str(state), token, job.config, backend,
                          dict(checks), gate_name)
                  for i in range(count)]
        return cls(job, shards)

    async def ready(self) -> None:
        """Wait until every shard runs; a shard that cannot start stops the build here."""
        try:
            await asyncio.gather(*(s.actor.ready.remote() for s in self._shards))
        except ray.exceptions.RayError as exc:  # its constructor raised: say what it said
            said = [line for line in str(exc).splitlines() if line[:1].isalpha() and ": " in line]
            raise BuildError(f"a shard could not start: {said[-1] if said else exc}") from None

    async def process(self, split: str, ordinal: int, item: SourceItem) -> Outcome:
        shard = min(self._shards, key=lambda s: (s.busy, s.index))
        shard.busy += 1
        try:
            report: Report = await shard.actor.process.remote(split, ordinal, item)
        except ray.exceptions.RayActorError as exc:
            self.lost += 1
            outcome = Outcome(split, ordinal, item.source_id, FAILED, "shard:worker_lost",
                              detail=str(exc)[:4000])
            self.job.ledger.log("failures", {"split": split, "item": item.source_id,
                                             "reason": outcome.reason, "detail": outcome.detail})
            return outcome
        except ray.exceptions.RayTaskError as exc:  # what the per-item code lets through
            raise BuildError(f"shard {shard.index}: {exc.cause or exc}") from None
        finally:
            shard.busy -= 1
        shard.pids.add(report.pid)
        self._count(report)
        return report.outcome

    def _count(self, report: Report) -> None:
        job = self.job
        for role, stats in report.stats.items():
            job.roles.stats[role].merge(stats)
        for name, tally in report.tallies.items():
            setattr(job, name, merge_tally(getattr(job, name), tally))
        for stage, codes, logged in report.tally.rejects:
            job.ledger.reject(stage, codes, **logged)
        for name, entry in report.tally.logs:
            job.ledger.log(name, entry)
        for stage, n in report.tally.advanced.items():
            job.progress.advance(stage, n)
        job.roles.budget.seen(*report.budget)
        node = self.nodes.setdefault(report.node, Counter())
        node["items"] += 1
        for stats in report.stats.values():
            for name in NODE_FIGURES:
                node[name] += getattr(stats, name)

    async def close(self) -> list[dict[str, Any]]:
        """Close every shard (clients, cache files) and end its process; their figures."""
        closed = []
        for shard in self._shards:
            with contextlib.suppress(ray.exceptions.RayError):
                closed.append(await shard.actor.close.remote())
            ray.kill(shard.actor, no_restart=True)
        return closed

    def figures(self, closed: list[dict[str, Any]]) -> dict[str, Any]:
        """Per node: shards, items, requests sent, cache hits, attempts, shard CPU seconds;
        per shard: where it ran and how often it was restarted."""
        per_node: dict[str, dict[str, Any]] = {}
        for node, counts in sorted(self.nodes.items()):
            per_node[node] = {"shards": 0, **{k: counts[k] for k in ("items", *NODE_FIGURES)},
                              "cpu_s": 0.0}
        for c in closed:
            entry = per_node.setdefault(c["node"], {"shards": 0, "items": 0, "cpu_s": 0.0})
            entry["shards"] += 1
            entry["cpu_s"] = round(entry["cpu_s"] + c["cpu_s"], 3)
        return {"nodes": per_node,
                "shards": [{"shard": s.index, "restarts": max(0, len(s.pids) - 1)}
                           for s in self._shards],
                "items_lost": self.lost}
