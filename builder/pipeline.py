"""The build: sources → dedup/split → plan → respond → validate → judge → perturb → assemble →
export, with items flowing through the stages concurrently.

There is no stage barrier: each item runs its own chain of calls as an asyncio task — its split's
recipe (`recipes`), one stage after another on a typed state (`steps`) — so while one item waits
for its judge another is being planned, and every endpoint stays busy up to its concurrency.
Splits are filled in candidate order, with more candidates drawn when losses run above the
reserve (`fill`), so the kept set — and the bytes of every split — depend only on the inputs,
the config and the seed.

Against real endpoints a build first checks the keys (an unset key variable stops it before any
call) and runs the preflight (`preflight`: model names, keys, what response format each server
takes). Every model call goes through one ask → check → re-ask loop (`stages.ask`) and the
content-addressed cache, so `kill -9` and a rerun finish the same build without resending a
finished call, and a rerun of a finished build sends nothing. A build whose splits end empty
writes no release (its state stays in `.build/` for the rerun).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..errors import BuildError, InputError
from . import assemble, recipes
from .cache import CallCache
from .config import SPLITS, BuildConfig, ModelConfig
from .fill import Draws, Fill, draw_limit, run_items
from .ledger import FAILED, REJECTED, Ledger, Outcome
from .manifest import build_manifest
from .preflight import Preflight, PreflightError, preflight
from .progress import Progress, summary_table
from .recipes import RECIPES, Funnel, stage_totals, stage_units
from .roles import BACKENDS, Roles, make_roles, probes
from .sources import SOURCE_KINDS, SourceItem, kinds_text
from .stages.ask import OUTCOMES
from .stages.judge import JudgeTally
from .steps.item import ItemState, Kept, Rejection
from .storage import StorageError

__all__ = ["BACKENDS", "STATE_DIR", "BuildError", "BuildResult", "MissingKey", "build",
           "make_roles"]

STATE_DIR = ".build"
Read = TypeVar("Read")


class MissingKey(BuildError):
    """A role names an API-key variable that is not set (nothing was sent)."""


def missing_key(config: BuildConfig) -> MissingKey | None:
    """The error for the key variables the roles name that the environment does not set."""
    missing = {role: var for role, var in config.key_variables().items()
               if not os.environ.get(var)}
    return MissingKey("; ".join(f"environment variable {var} is not set ({role}'s api_key_env)"
                                for role, var in missing.items()) + "; nothing was sent"
                      ) if missing else None


# -- sources and splits ----------------------------------------------------------------------

def split_sizes(config: BuildConfig) -> dict[str, int]:
    """Candidates assigned per split: the prompts needed plus the reserve that replaces losses."""
    return {s: n + (math.ceil(n * config.reserve) + 2 if n else 0)
            for s, n in config.prompt_counts().items()}


class SourceLog:
    """Records a source skipped (with file and line), counted for the manifest."""

    KEEP = 1000

    def __init__(self) -> None:
        self.count = 0
        self.kept: list[str] = []

    def __call__(self, bad: Any) -> None:
        self.count += 1
        if len(self.kept) < self.KEEP:
            self.kept.append(str(bad))


def source_items(config: BuildConfig, needed: int,
                 on_bad: Callable[[Any], None]) -> Iterator[SourceItem]:
    """Every configured source's items, in configuration order."""
    return each_source(config, lambda spec: SOURCE_KINDS[spec["kind"]].load(spec, needed, on_bad))


def each_source(config: BuildConfig, load: Callable[[Mapping[str, Any]], Iterable[Read]]
                ) -> Iterator[Read]:
    """What `load(spec)` gives for every configured source, in configuration order; an unknown
    kind, a bad source (`InputError`) or an unreadable file stops the build naming the source
    (the one-process build reads here, the cluster's intake through Ray tasks)."""
    for i, spec in enumerate(config.sources):
        kind = spec.get("kind")
        where = f"sources[{i}] ({kind})"
        if kind not in SOURCE_KINDS:
            raise BuildError(f"{where}: unknown kind; expected {kinds_text()}")
        try:
            yield from load(spec)
        except (InputError, OSError) as exc:  # SourceError, or a file that cannot be read
            raise BuildError(f"{where}: {exc}") from None


def exclusion_list(config: BuildConfig) -> tuple[Any, dict[str, Any] | None]:
    """The benchmark exclusion list and its description for the manifest (None if empty)."""
    from .stages.dedup import ExclusionList

    if config.exclusion == "none":
        return ExclusionList(), None
    if config.exclusion == "default":
        found = ExclusionList.default()
        name = "default"
    else:
        try:
            found = ExclusionList.load(config.exclusion)
        except (OSError, ValueError) as exc:
            raise BuildError(f"exclusion list: {exc}") from None
        name = Path(config.exclusion).name
    if not len(found):
        return found, None
    return found, {"list": name, "sha256": len(found.sha256), "phash": len(found.phash),
                   "questions": len(found.questions)}


@dataclass
class Assigned:
    """The split assignment, the pool it was drawn from, and how to load a bigger pool."""

    assignment: Any  # stages.split.SplitAssignment
    exclusion: dict[str, Any] | None
    pool: Any  # stages.split.DedupPool
    needed: int
    load: Callable[[int], Any]  # needed → a fresh DedupPool of the sources loaded for it


def assign(config: BuildConfig, on_bad: SourceLog, cluster: Any = None) -> Assigned:
    """Dedup and split assignment; the reserve shrinks to nothing before the build gives up.
    With a `cluster` (`cluster.Cluster`) the sources are read and hashed on it."""
    from .stages.split import PoolTooSmall, dedup_pool, draw_splits

    exclude, described = exclusion_list(config)
    sizes = split_sizes(config)

    def load(needed: int, log: Callable[[Any], None] = lambda bad: None) -> Any:
        if cluster is not None:
            return cluster.pool(config, needed, log, exclude)
        return dedup_pool(source_items(config, needed, log), config.seed, exclude)

    needed = sum(sizes.values())
    pool = load(needed, on_bad)
    try:
        assignment = draw_splits(pool, sizes)
    except PoolTooSmall:
        try:
            assignment = draw_splits(pool, config.prompt_counts())
        except PoolTooSmall as exc:
            raise BuildError(f"not enough source items: {exc}") from None
    return Assigned(assignment, described, pool, needed, load)


# -- one item ------------------------------------------------------------------------------

@dataclass
class Build:
    """One build's items: each runs through its split's recipe (`recipes.RECIPES`), and what
    its stages did is counted here (the fields after `progress` are tallies, merged across
    shards on a cluster)."""

    config: BuildConfig
    roles: Roles
    ledger: Ledger
    progress: Progress
    yields: dict[str, Counter[str]] = field(
        default_factory=lambda: {stage: Counter() for stage in recipes.yield_stages()})
    judged: JudgeTally = field(default_factory=JudgeTally)  # for the card (blind judge)
    funnel: Funnel = field(default_factory=dict)  # split → stage → in / out / stopped by reason

    def sampling(self, m: ModelConfig) -> dict[str, Any]:
        return {**m.sampling, "seed": self.config.seed}

    async def process(self, split: str, ordinal: int, item: SourceItem) -> Outcome:
        """Run one item through its stages; every exit is an `Outcome` with a reason."""
        outcome = Outcome(split, ordinal, item.source_id)
        state, stage = ItemState(split, item), ""
        try:
            for step in RECIPES[split]:
                stage = step.name
                recipes.count(self.funnel, split, stage, "in")
                result = await step.run(state, self)
                if isinstance(result, Rejection):
                    recipes.stopped(self.funnel, split, stage, result)
                    outcome.status = FAILED if result.failed else REJECTED
                    outcome.reason, outcome.detail = f"{stage}:{result.reason}", result.detail
                    break
                recipes.count(self.funnel, split, stage, "out")
                state = result
            else:
                outcome.payload = state.kept().to_json()
        except StorageError:
            raise  # the build's own state cannot be written: stop the build, not this item
        except Exception as exc:  # a bug must not sink the other items; it is reported loudly
            outcome.status, outcome.reason = FAILED, f"internal_error:{type(exc).__name__}"
            outcome.detail = traceback.format_exc()[-4000:]
            recipes.stopped(self.funnel, split, stage, Rejection(outcome.reason, True))
        if outcome.status == FAILED:
            self.ledger.log("failures", {"split": split, "item": item.source_id,
                                         "reason": outcome.reason, "detail": outcome.detail})
        return outcome


# -- the whole build -------------------------------------------------------------------------

@dataclass
class BuildResult:
    manifest: dict[str, Any]
    release: dict[str, Any] | None  # None: no row survived, nothing was released
    summary: str
    shortfall: dict[str, int]
    internal_errors: int
    run: dict[str, Any]  # this run: wall time and CPU per phase, requests sent, cache hits
    audit: dict[str, Any] | None = None  # the release audit's result (`release.audit`)

    @property
    def rows(self) -> int:
        return sum(s["rows"] for s in self.manifest["counts"]["splits"].values())


class _Clock:
    """Wall and CPU seconds per phase of the build (reported in the manifest's `run`)."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.monotonic(), time.process_time()

    def lap(self) -> dict[str, float]:
        wall, cpu = time.monotonic(), time.process_time()
        lap = {"wall_s": round(wall - self._wall, 3), "cpu_s": round(cpu - self._cpu, 3)}
        self._wall, self._cpu = wall, cpu
        return lap


def _counts(config: BuildConfig, fills: list[Fill], ledger: Ledger, funnel: Funnel
            ) -> dict[str, Any]:
    splits = {}
    for fill in fills:
        per_row = config.rejected_per_prompt if fill.split == "dpo" else 1
        kept = min(fill.kept, fill.target)
        splits[fill.split] = {
            "target": fill.target * per_row, "rows": kept * per_row, "kept": fill.kept,
            "rejected": ledger.status[(fill.split, REJECTED)],
            "failed": ledger.status[(fill.split, FAILED)],
            "candidates": fill.next, "available": len(fill.candidates),
            "shortfall": (fill.target - kept) * per_row}
    return {"splits": splits, "reasons": dict(sorted(ledger.reasons.items())),
            "funnel": recipes.funnel_json(funnel)}


def _yields(yields: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {stage: {o: counter[o] for o in OUTCOMES} for stage, counter in yields.items()}


async def _preflight(config: BuildConfig, roles: Roles, fills: list[Fill],
                     cache: CallCache) -> Preflight:
    first = next(f.candidates[0] for f in fills if f.candidates)
    try:
        checked = await preflight(probes(config, roles, first), cache)
    except PreflightError as exc:
        raise BuildError(f"preflight: {exc}") from None
    roles.apply(checked.roles)
    return checked


async def build(config: BuildConfig, out_dir: Path, *, backend: str = "offline",
                preset: str | None = None, progress: bool = True,
                cluster: Any = None) -> BuildResult:
    """Run a whole build into `out_dir` (see the module docstring); returns its report.
    With a `cluster` (`cluster.connect`) the sources and the items run on Ray."""
    from .release.export import write_dataset

    if backend not in BACKENDS:
        raise BuildError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "openai" and (missing := missing_key(config)):
        raise missing
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    out_dir = Path(out_dir)
    state = out_dir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    if cluster is not None:
        cluster.prepare(state, config, backend)
    clock = _Clock()
    bad_records = SourceLog()
    try:
        assigned = assign(config, bad_records, cluster)
    except BuildError as exc:
        if bad_records.count:
            raise BuildError(f"{exc}; {bad_records.count} source record(s) were skipped, "
                             f"see {state / 'bad_records.txt'}") from None
        raise
    finally:
        if bad_records.kept:
            (state / "bad_records.txt").write_text("\n".join(bad_records.kept) + "\n")
    assignment = assigned.assignment
    phases = {"sources": clock.lap()}
    targets = config.prompt_counts()
    fills = []
    for s in SPLITS:
        candidates = list(assignment.splits.get(s, []))
        fills.append(Fill(s, candidates, targets[s],
                          draw_limit(targets[s], len(candidates), config.max_draw)))
    cache = CallCache(state / "calls.sqlite")
    roles = make_roles(config, backend, cache)
    checked: Preflight | None = None
    ledger: Ledger | None = None
    try:
        try:
            if backend == "openai" and any(f.candidates for f in fills):
                checked = await _preflight(config, roles, fills, cache)
            phases["preflight"] = clock.lap()
            ledger = Ledger(state)
            bars = Progress(stage_totals(config), stage_units(), enabled=progress)
            cap = config.max_items_in_flight or max(8, 2 * roles.concurrency)
            job = Build(config, roles, ledger, bars)
            process = job.process if cluster is None else await cluster.start(
                job, cache, backend, checked.roles if checked else {})
            draws = Draws(assigned.pool, assigned.needed,
                          (item for items in assignment.splits.values() for item in items),
                          assigned.load, assignment.held_out_families,
                          frozenset(item.family for name, items in assignment.splits.items()
                                    if name != "eval" for item in items))
            try:
                await run_items(process, ledger.record, fills, cap, draws=draws,
                                stopped=lambda: roles.budget.exhausted)
            finally:
                bars.close()
                if cluster is not None:
                    await cluster.stop(cache)
        finally:
            await roles.aclose()
    except BaseException:
        if ledger is not None:
            ledger.close()
        cache.close()
        raise
    phases["items"] = clock.lap()
    counts = _counts(config, fills, ledger, job.funnel)
    calls_run = {role: s.run() for role, s in roles.stats.items()}
    run = {"started_at": started_at, "wall_s": round(time.monotonic() - t0, 3),
           "phases": phases, "calls": calls_run,
           "sent": sum(c["sent"] for c in calls_run.values()),
           "cache_hits": sum(c["cache_hits"] for c in calls_run.values()),
           "draw_rounds": draws.rounds}
    if checked is not None:
        run["preflight"] = checked.to_json()
    if cluster is not None:
        run["cluster"] = cluster.figures()
    if roles.budget.max_calls is not None or roles.budget.max_cost is not None:
        run["budget"] = {"max_calls": roles.budget.max_calls, "max_cost": roles.budget.max_cost,
                         "calls": roles.budget.calls, "cost_usd": round(roles.budget.cost, 6),
                         "exhausted": roles.budget.exhausted}
    manifest = build_manifest(
        config, backend=backend, preset=preset, counts=counts, rejections=ledger.rejections,
        failures=ledger.failures,
        dropped={**assignment.dropped, **({"bad_record": bad_records.count}
                                          if bad_records.count else {})},
        calls={role: s.stable() for role, s in roles.stats.items()}, yields=_yields(job.yields),
        constrain={role: c.to_json() for role, c in checked.roles.items()} if checked else None,
        run=run, exclusion=assigned.exclusion,
        judge=job.judged.to_json() if config.judge else None)

    def rows(fill: Fill) -> Iterator[dict[str, Any]]:
        for ordinal, kept in ledger.kept(fill.split, fill.target):
            yield from assemble.rows_for(fill.split, fill.candidates[ordinal],
                                         Kept.from_json(kept))

    released = any(min(f.kept, f.target) for f in fills)
    try:
        if released:
            release = write_dataset(out_dir, {f.split: rows(f) for f in fills},
                                    manifest=manifest, build_config=config.to_toml(),
                                    audit=config.audit)
        else:  # nothing to release: the report stays with the build state for the rerun
            release = None
            (state / "manifest.json").write_bytes(
                orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    finally:
        ledger.close()
        cache.close()
    phases["export"] = clock.lap()
    run = {**run, "wall_s": round(time.monotonic() - t0, 3)}  # the manifest keeps its own
    internal = sum(n for reason, n in ledger.failures.items()
                   if reason.startswith("internal_error"))
    shortfall = {s: c["shortfall"] for s, c in counts["splits"].items() if c["shortfall"]}
    notes = checked.notes() if checked is not None else []
    if roles.budget.exhausted:
        notes.append(f"stopped at the budget: {roles.budget.describe()}")
    drained = [f.split for f in fills if f.kept < f.target and f.next >= f.limit]
    if drained and not roles.budget.exhausted:
        notes.append(f"{', '.join(drained)} tried as many candidates as max_draw allows "
                     f"({config.max_draw:g}× the split's prompts): raise max_draw, or fix the "
                     "losses below")
    elif any(f.kept < f.target for f in fills) and draws.exhausted:
        notes.append("the sources have no unused item left: add sources")
    return BuildResult(manifest, release, summary_table(manifest, run, notes), shortfall,
                       internal, run, release.get("audit") if release else None)
