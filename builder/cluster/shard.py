"""A shard: one Ray actor that runs the build's own per-item code (`pipeline.Build.process`).

A shard holds what a one-process build holds — the model roles and their clients, and a call
cache — and runs many items at once on its event loop. Each item gets a `Build` of its own
whose ledger and progress are tallies (`_Tally`) and whose roles count into fresh counters
(`Roles.counting`), so everything the item did goes back to the driver with its outcome
(`Report`) and is counted once even when Ray runs the item again after its worker died.

The shard's cache is its own SQLite file under `DIR/.build/shards/`, reading through to the
build's main cache for calls earlier runs finished: every finished call is committed before
the item goes on, so an item that Ray retries on the restarted shard (the same file) sends only
the calls that were in flight. Its clients take their wire slots from the gate (`gate`), so
the endpoints' concurrency holds across shards. It checks at start that it sees the driver's
output folder (`session.MARKER`) and says where it runs in `shards/shard-N.json`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson
import ray

from ... import __version__
from ...errors import StateError
from ..backends.budget import Budget
from ..backends.stats import CallStats
from ..cache import CallCache
from ..config import BuildConfig
from ..ledger import Outcome
from ..pipeline import Build
from ..preflight import RoleCheck
from ..roles import make_roles
from ..sources.base import SourceItem
from .gate import GateBudget, GateSlots

SHARDS_DIR = "shards"
#: The driver's own parts of a `Build`; every other field is a tally merged across items.
BUILD_PARTS = ("config", "roles", "ledger", "progress")


class StorageNotShared(StateError, RuntimeError):
    """This node does not see the driver's output folder."""


def shard_cache(state: Path, run: str, index: int) -> Path:
    return state / SHARDS_DIR / f"calls-{run}-{index}.sqlite"


@dataclass
class _Tally:
    """A per-item ledger and progress: what `Build.process` tells them, to replay."""

    rejects: list[tuple[str, list[str], dict[str, Any]]] = field(default_factory=list)
    logs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    advanced: Counter[str] = field(default_factory=Counter)

    def reject(self, stage: str, codes: list[str], /, **logged: Any) -> None:
        self.rejects.append((stage, list(codes), logged))

    def log(self, name: str, entry: dict[str, Any]) -> None:
        self.logs.append((name, entry))

    def advance(self, stage: str, n: int = 1) -> None:
        self.advanced[stage] += n


@dataclass
class Report:
    """One item's outcome and everything it did, for the driver to count."""

    outcome: Outcome
    stats: dict[str, CallStats]
    tallies: dict[str, Any]
    tally: _Tally
    shard: int
    node: str
    pid: int
    budget: tuple[int, float]


# ray's stub omits the actor-only options (max_concurrency) from `remote`'s keyword overload
@ray.remote(max_restarts=-1, max_concurrency=100_000)  # type: ignore[call-overload]
class Shard:
    """The actor (see the module doc)."""

    def __init__(self, index: int, shards: int, run: str, state: str, token: str,
                 config: BuildConfig, backend: str, checks: dict[str, RoleCheck],
                 gate_name: str | None) -> None:
        self.index, self.config = index, config
        self.state = Path(state)
        self.node = ray.util.get_node_ip_address()
        marker = self.state / "cluster-check"
        try:
            seen = marker.read_text().strip()
        except OSError:
            seen = ""
        if seen != token:
            raise StorageNotShared(f"node {self.node} does not see {self.state} as the driver "
                                   "wrote it")
        incarnation = uuid.uuid4().hex
        self.cache = CallCache(shard_cache(self.state, run, index), exclusive=True,
                               base=self.state / "calls.sqlite")
        slots = None
        budget: Budget = Budget(config.max_calls or None, config.max_cost or None)
        if gate_name is not None:  # by name: a handle argument would pin it in the object store
            gate = ray.get_actor(gate_name)
            holder = f"shard-{index}"
            ray.get(gate.forget.remote(holder, incarnation))
            budget = GateBudget(gate, budget.max_calls, budget.max_cost)

            def slots(endpoint: str, bound: int) -> GateSlots:
                return GateSlots(gate, endpoint, bound, holder, incarnation, budget,
                                 keep=max(1, bound // shards))

        self.budget = budget
        self.roles = make_roles(config, backend, self.cache, budget, slots)
        self.roles.apply(checks)
        self._cpu = time.process_time()
        where = {"shard": index, "node": self.node, "node_id": ray.get_runtime_context()
                 .get_node_id(), "pid": os.getpid(), "incarnation": incarnation,
                 "toolkit_version": __version__,
                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        path = self.state / SHARDS_DIR / f"shard-{index}.json"
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_bytes(orjson.dumps(where))
        temp.replace(path)

    def ready(self) -> str:
        """Where this shard runs (its constructor ran, so it sees the output folder)."""
        return self.node

    async def process(self, split: str, ordinal: int, item: SourceItem) -> Report:
        roles = self.roles.counting()
        tally = _Tally()
        job = Build(self.config, roles, tally, tally)  # type: ignore[arg-type]
        outcome = await job.process(split, ordinal, item)
        tallies = {f.name: getattr(job, f.name) for f in fields(job)
                   if f.name not in BUILD_PARTS}
        return Report(outcome, roles.stats, tallies, tally, self.index, self.node, os.getpid(),
                      (self.budget.calls, self.budget.cost))

    async def close(self) -> dict[str, Any]:
        """Close the clients and the cache (so the driver can absorb it); this run's figures."""
        await self.roles.aclose()
        self.cache.close()
        return {"shard": self.index, "node": self.node, "pid": os.getpid(),
                "cpu_s": round(time.process_time() - self._cpu, 3)}
