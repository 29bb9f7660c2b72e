"""The build: sources → dedup/split → plan → respond → validate → judge → perturb → assemble →
export, with items flowing through the stages concurrently.

There is no stage barrier: each item runs its own chain of calls as an asyncio task, so while one
item waits for its judge another is being planned, and every endpoint stays busy up to its
concurrency. Each split is filled in candidate order: an item that is rejected or fails is
replaced by the next reserve candidate of the same split, and the kept set is always the first N
survivors in candidate order — whatever the timing — so a build is deterministic.

Every call goes through the content-addressed cache, so `kill -9` and a rerun finish the same
build without resending a finished call, and a rerun of a finished build sends nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safer_toolkit.builder import assemble
from safer_toolkit.builder.backends.base import CallFailed, ChatBackend
from safer_toolkit.builder.backends.client import ModelEndpoint, OpenAIChatBackend
from safer_toolkit.builder.backends.offline import OfflineBackend
from safer_toolkit.builder.backends.stats import CallStats
from safer_toolkit.builder.cache import CachedBackend, CallCache
from safer_toolkit.builder.config import SPLITS, BuildConfig, ModelConfig
from safer_toolkit.builder.ledger import FAILED, KEPT, REJECTED, Ledger, Outcome
from safer_toolkit.builder.manifest import build_manifest
from safer_toolkit.builder.progress import Progress, summary_table
from safer_toolkit.builder.prompts import render_toolkit_instruction
from safer_toolkit.builder.sources import SOURCE_KINDS, SourceItem, kinds_text
from safer_toolkit.builder.stages.judge import JudgeOutputInvalid, judge_request, judge_response
from safer_toolkit.builder.stages.perturb import perturb
from safer_toolkit.builder.stages.plan import plan_item
from safer_toolkit.builder.stages.respond import (
    Candidate,
    Responder,
    sample_candidates,
    select_best,
)
from safer_toolkit.builder.storage import StorageError

BACKENDS = ("offline", "openai")
STATE_DIR = ".build"
OFFLINE_ITEMS_IN_FLIGHT = 32


class BuildError(RuntimeError):
    """The build cannot start or finish (bad sources, an export that refuses the rows)."""


# -- model roles ---------------------------------------------------------------------------

@dataclass
class Roles:
    """The cached backend of every model role, plus what must be closed at the end."""

    planner: CachedBackend
    responders: list[Responder]
    judge: CachedBackend | None
    stats: dict[str, CallStats]
    wire: dict[str, CallStats]  # per endpoint group (openai only): attempts, retries, billed
    inner: list[ChatBackend]
    concurrency: int

    async def aclose(self) -> None:
        for backend in self.inner:
            await backend.aclose()


def _endpoint_key(m: ModelConfig) -> tuple[Any, ...]:
    """Roles alike in all of this share one client; prices too, as the client bills the wire
    (attempts and retries included) at its endpoint's prices."""
    return (m.base_urls, m.api_key_env, m.timeout_s, m.max_retries, m.price_in, m.price_out)


def make_roles(config: BuildConfig, backend: str, cache: CallCache) -> Roles:
    """One cached backend per role. Roles that name the same endpoint (at the same prices)
    share one client: a deployment serves so many requests at a time whichever role sends them,
    so its in-flight bound is the largest concurrency among them."""
    named: list[tuple[str, ModelConfig]] = [("planner", config.planner)]
    named += [(f"responder[{i}]", r) for i, r in enumerate(config.responders)]
    if config.judge is not None:
        named.append(("judge", config.judge))
    inner: dict[str, ChatBackend] = {}
    wire: dict[str, CallStats] = {}
    concurrency = 0
    if backend == "offline":
        offline = OfflineBackend()
        inner = {role: offline for role, _ in named}
        concurrency = OFFLINE_ITEMS_IN_FLIGHT
    else:
        groups: dict[tuple[Any, ...], list[tuple[str, ModelConfig]]] = {}
        for role, m in named:
            groups.setdefault(_endpoint_key(m), []).append((role, m))
        for members in groups.values():
            first = members[0][1]
            bound = max(m.concurrency for _, m in members)
            concurrency += bound
            client = OpenAIChatBackend(ModelEndpoint(
                role="+".join(r for r, _ in members), model=first.model,
                base_urls=list(first.base_urls), api_key_env=first.api_key_env or None,
                concurrency=bound, timeout_s=first.timeout_s, max_retries=first.max_retries,
                price_in=first.price_in, price_out=first.price_out))
            wire[client.endpoint.role] = client.stats
            for role, _ in members:
                inner[role] = client
    stats = {role: CallStats(price_in=m.price_in, price_out=m.price_out) for role, m in named}
    cached = {role: CachedBackend(inner[role], cache, stats=stats[role]) for role, _ in named}
    responders = [Responder(cached[f"responder[{i}]"], r.model, r.sampling, r.samples)
                  for i, r in enumerate(config.responders)]
    unique = list({id(b): b for b in inner.values()}.values())
    return Roles(cached["planner"], responders, cached.get("judge"), stats, wire, unique,
                 concurrency)


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


def source_items(config: BuildConfig, needed: int, on_bad: SourceLog) -> Iterator[SourceItem]:
    """Every configured source's items, in configuration order."""
    for i, spec in enumerate(config.sources):
        kind = spec.get("kind")
        where = f"sources[{i}] ({kind})"
        if kind not in SOURCE_KINDS:
            raise BuildError(f"{where}: unknown kind; expected {kinds_text()}")
        try:
            yield from SOURCE_KINDS[kind].load(spec, needed, on_bad)
        except (ValueError, TypeError, OSError) as exc:  # SourceError is a ValueError
            raise BuildError(f"{where}: {exc}") from None


def exclusion_list(config: BuildConfig) -> tuple[Any, dict[str, Any] | None]:
    """The benchmark exclusion list and its description for the manifest (None if empty)."""
    from safer_toolkit.builder.stages.dedup import ExclusionList

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


def assign(config: BuildConfig, on_bad: SourceLog) -> tuple[Any, dict[str, Any] | None]:
    """Dedup and split assignment; the reserve shrinks to nothing before the build gives up."""
    from safer_toolkit.builder.stages.split import PoolTooSmall, dedup_pool, draw_splits

    exclude, described = exclusion_list(config)
    sizes = split_sizes(config)
    pool = dedup_pool(source_items(config, sum(sizes.values()), on_bad), config.seed, exclude)
    try:
        return draw_splits(pool, sizes), described
    except PoolTooSmall:
        pass
    try:
        return draw_splits(pool, config.prompt_counts()), described
    except PoolTooSmall as exc:
        raise BuildError(f"not enough source items: {exc}") from None


# -- one item ------------------------------------------------------------------------------

@dataclass
class Build:
    config: BuildConfig
    roles: Roles
    ledger: Ledger
    progress: Progress

    def _sampling(self, m: ModelConfig) -> dict[str, Any]:
        return {**m.sampling, "seed": self.config.seed}

    async def _judge(self, item: SourceItem, doc: dict[str, Any], candidate: Candidate) -> None:
        judge = self.config.judge
        assert judge is not None and self.roles.judge is not None
        request = judge_request(judge.model, image=item.image, image_name=item.image_name,
                                question=item.question, response=candidate.text,
                                label=doc["label"], risk_category=doc["risk_category"],
                                sampling=self._sampling(judge))
        try:
            candidate.judgement = await judge_response(self.roles.judge, request,
                                                       self.config.judge_attempts)
        except JudgeOutputInvalid as exc:
            candidate.judge_failure = "bad_output"
            self.ledger.reject("judge", ["judge_output_invalid"], item=item.source_id,
                               problem=str(exc))
        except CallFailed as exc:
            candidate.judge_failure = exc.reason
        self.progress.advance("judge")

    async def process(self, split: str, ordinal: int, item: SourceItem) -> Outcome:
        """Run one item through its stages; every exit is an `Outcome` with a reason."""
        outcome = Outcome(split, ordinal, item.source_id)
        try:
            await self._process(outcome, item)
        except StageFailed as exc:
            outcome.status, outcome.reason = FAILED, f"{exc.stage}:{exc.failure.reason}"
            outcome.detail = exc.failure.detail[:500]
        except StorageError:
            raise  # the build's own state cannot be written: stop the build, not this item
        except Exception as exc:  # a bug must not sink the other items; it is reported loudly
            outcome.status, outcome.reason = FAILED, f"internal_error:{type(exc).__name__}"
            outcome.detail = traceback.format_exc()[-4000:]
        if outcome.status == FAILED:
            self.ledger.log("failures", {"split": split, "item": item.source_id,
                                         "reason": outcome.reason, "detail": outcome.detail})
        return outcome

    async def _process(self, outcome: Outcome, item: SourceItem) -> Outcome:
        config, split = self.config, outcome.split
        plan = await _staged("plan", plan_item(self.roles.planner, config.planner.model, item,
                                               self._sampling(config.planner),
                                               config.plan_attempts))
        self.progress.advance("plan")
        for attempt in plan.rejected:
            self.ledger.reject("plan", attempt.codes, split=split, item=item.source_id,
                               codes=attempt.codes, problems=attempt.problems[:12])
        protocol = plan.resolved  # resolved once, here, for every stage that follows
        if protocol is None:
            outcome.status = REJECTED
            outcome.reason = "plan:" + "+".join(plan.rejected[-1].codes)
            return outcome
        doc = protocol.document
        # rendered once: what the responders are given is what the row's system turn says
        instruction = render_toolkit_instruction(protocol)
        models = {"planner": config.planner.model}
        if split == "grpo":
            outcome.payload = {"protocol": doc, "instruction": instruction, "models": models}
            return outcome
        candidates = await _staged("respond", sample_candidates(
            self.roles.responders, item, doc, protocol, instruction,
            config.seed, config.repair_attempts))
        self.progress.advance("respond", len(candidates))
        for c in candidates:
            if not c.valid:
                self.ledger.reject("respond", c.codes, split=split, item=item.source_id,
                                   model=c.model, sample=c.order[1], codes=c.codes,
                                   text=c.text[:20_000])
        valid = [c for c in candidates if c.valid]
        if not valid:
            codes = sorted({code for c in candidates for code in c.codes})
            outcome.status, outcome.reason = REJECTED, "respond:" + "+".join(codes)
            return outcome
        if self.roles.judge is not None:
            await asyncio.gather(*(self._judge(item, doc, c) for c in valid))
            if all(c.judgement is None for c in valid):
                outcome.status = FAILED
                outcome.reason = f"judge:{valid[0].judge_failure}"
                outcome.detail = "no valid candidate could be judged"
                return outcome
        best = select_best(candidates, config.thresholds)
        assert best is not None
        if self.roles.judge is not None:
            models["judge"] = config.judge.model  # type: ignore[union-attr]
            if best.judgement is None or not best.judgement.passes(config.thresholds):
                self.ledger.reject("judge", ["below_threshold"])
                outcome.status, outcome.reason = REJECTED, "judge:below_threshold"
                return outcome
        models["responder"] = best.model
        trace = best.trace
        outcome.payload = {"protocol": doc, "instruction": instruction, "models": models,
                           "trace": best.text,
                           "judgement": best.judgement.to_json() if best.judgement else None}
        if split == "eval":
            outcome.payload["expected_decision"] = assemble.trace_decision(trace, doc["label"])
        if split == "dpo":
            rejected = perturb(trace, protocol, doc["label"], key=f"{item.source_dataset}/"
                               f"{item.source_id}", seed=config.seed,
                               count=config.rejected_per_prompt)
            if len(rejected) < config.rejected_per_prompt:
                outcome.status, outcome.reason = REJECTED, "perturb:too_few_caught"
                return outcome
            outcome.payload["rejected"] = [{"kind": p.kind, "text": p.text, "codes": p.codes}
                                           for p in rejected]
            self.progress.advance("perturb", len(rejected))
        return outcome


class StageFailed(Exception):
    """A call failed for good (after its retries) in one stage of one item."""

    def __init__(self, stage: str, failure: CallFailed) -> None:
        super().__init__(f"{stage}: {failure}")
        self.stage, self.failure = stage, failure


async def _staged(stage: str, awaitable: Any) -> Any:
    """Await, naming the stage of a `CallFailed`."""
    try:
        return await awaitable
    except CallFailed as exc:
        raise StageFailed(stage, exc) from None


# -- scheduling ------------------------------------------------------------------------------

@dataclass
class Fill:
    """One split being filled from its candidates, in order."""

    split: str
    candidates: list[SourceItem]
    target: int
    next: int = 0
    kept: int = 0
    in_flight: int = 0

    def ready(self) -> bool:
        return self.next < len(self.candidates) and self.kept + self.in_flight < self.target


async def _stop(tasks: dict[asyncio.Task[Outcome], Fill]) -> None:
    """Cancel and await every task, so none is left with an exception nobody retrieves."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_items(build: Build, fills: list[Fill], cap: int) -> None:
    """Keep up to `cap` items in flight, round-robin over the splits, until each is full.

    A split launches a candidate only while kept + in flight < target, so it ends with the
    shortest prefix of its candidates that holds `target` survivors (or all of them).
    """
    tasks: dict[asyncio.Task[Outcome], Fill] = {}
    while True:
        launched = True
        while launched and len(tasks) < cap:
            launched = False
            for fill in fills:
                if len(tasks) < cap and fill.ready():
                    item = fill.candidates[fill.next]
                    task = asyncio.ensure_future(build.process(fill.split, fill.next, item))
                    tasks[task] = fill
                    fill.next += 1
                    fill.in_flight += 1
                    launched = True
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
            build.ledger.record(outcome)


# -- the whole build -------------------------------------------------------------------------

@dataclass
class BuildResult:
    manifest: dict[str, Any]
    release: dict[str, Any]
    summary: str
    shortfall: dict[str, int]
    internal_errors: int
    run: dict[str, Any]  # this run: wall time and CPU per phase, requests sent, cache hits


class _Clock:
    """Wall and CPU seconds per phase of the build (reported in the manifest's `run`)."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.monotonic(), time.process_time()

    def lap(self) -> dict[str, float]:
        wall, cpu = time.monotonic(), time.process_time()
        lap = {"wall_s": round(wall - self._wall, 3), "cpu_s": round(cpu - self._cpu, 3)}
        self._wall, self._cpu = wall, cpu
        return lap


def _progress_totals(config: BuildConfig) -> dict[str, int]:
    prompts = config.prompt_counts()
    traced = prompts["sft"] + prompts["dpo"] + prompts["eval"]
    samples = sum(r.samples for r in config.responders)
    return {"plan": sum(prompts.values()), "respond": traced * samples,
            "judge": traced * samples if config.judge else 0, "perturb": config.sizes["dpo"]}


def _counts(config: BuildConfig, fills: list[Fill], ledger: Ledger) -> dict[str, Any]:
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
    return {"splits": splits, "reasons": dict(sorted(ledger.reasons.items()))}


async def build(config: BuildConfig, out_dir: Path, *, backend: str = "offline",
                preset: str | None = None, progress: bool = True) -> BuildResult:
    """Run a whole build into `out_dir` (see the module docstring); returns its report."""
    from safer_toolkit.builder.release.export import write_dataset

    if backend not in BACKENDS:
        raise BuildError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    out_dir = Path(out_dir)
    state = out_dir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    bad_records = SourceLog()
    try:
        assignment, exclusion = assign(config, bad_records)
    except BuildError as exc:
        if bad_records.count:
            raise BuildError(f"{exc}; {bad_records.count} source record(s) were skipped, "
                             f"see {state / 'bad_records.txt'}") from None
        raise
    finally:
        if bad_records.kept:
            (state / "bad_records.txt").write_text("\n".join(bad_records.kept) + "\n")
    phases = {"sources": clock.lap()}
    targets = config.prompt_counts()
    fills = [Fill(s, list(assignment.splits.get(s, [])), targets[s]) for s in SPLITS]
    cache = CallCache(state / "calls.sqlite")
    roles = make_roles(config, backend, cache)
    ledger = Ledger(state)
    bars = Progress(_progress_totals(config), enabled=progress)
    cap = config.max_items_in_flight or max(8, 2 * roles.concurrency)
    job = Build(config, roles, ledger, bars)
    try:
        await run_items(job, fills, cap)
    finally:
        bars.close()
        await roles.aclose()
    phases["items"] = clock.lap()
    counts = _counts(config, fills, ledger)
    calls_run = {role: s.run() for role, s in roles.stats.items()}
    run = {"started_at": started_at, "wall_s": round(time.monotonic() - t0, 3),
           "phases": phases, "calls": calls_run,
           "endpoints": {name: {k: v for k, v in s.run().items() if k in
                                ("attempts", "retries", "billed_prompt_tokens",
                                 "billed_completion_tokens", "billed_cost_usd")}
                         for name, s in roles.wire.items()},
           "sent": sum(c["sent"] for c in calls_run.values()),
           "cache_hits": sum(c["cache_hits"] for c in calls_run.values())}
    manifest = build_manifest(
        config, backend=backend, preset=preset, counts=counts, rejections=ledger.rejections,
        failures=ledger.failures,
        dropped={**assignment.dropped, **({"bad_record": bad_records.count}
                                          if bad_records.count else {})},
        calls={role: s.stable() for role, s in roles.stats.items()}, run=run,
        exclusion=exclusion)

    def rows(fill: Fill) -> Iterator[dict[str, Any]]:
        for ordinal, kept in ledger.kept(fill.split, fill.target):
            yield from assemble.rows_for(fill.split, fill.candidates[ordinal], kept)

    try:
        release = write_dataset(out_dir, {f.split: rows(f) for f in fills}, manifest=manifest,
                                build_config=config.to_toml())
    finally:
        ledger.close()
        cache.close()
    phases["export"] = clock.lap()
    run = {**run, "wall_s": round(time.monotonic() - t0, 3)}  # the manifest keeps its own
    internal = sum(n for reason, n in ledger.failures.items()
                   if reason.startswith("internal_error"))
    shortfall = {s: c["shortfall"] for s, c in counts["splits"].items() if c["shortfall"]}
    return BuildResult(manifest, release, summary_table(manifest, run), shortfall, internal,
                       run)
