"""One evaluation run: responses → validator verdicts and decisions → judge → results, metrics,
report.

Every model and judge call goes through the builder's client and its content-addressed cache
(`OUT/.cache/calls.sqlite`), so an interrupted run resumes where it stopped and a rerun of a
finished run sends no request at all. A judge reply that is not a complete, in-range rubric
object is sent back with the reasons (the builder's feedback loop: a new request, so the cache
cannot hand back the same bad reply), a bounded number of times; then the item is recorded as
missing with the reason — never scored by guess. An answer cut at the token limit is judged as
it stands, as the authors judge it, and flagged `truncated` (it is cached as a cut answer, so a
rerun neither pays for it again nor sees it change). Other calls that failed are not cached:
running the same command again retries exactly those.

Outputs (each written atomically): `results.jsonl`, `metrics.json` (provenance + metrics; the
same inputs give the same bytes), `report.md` + `chart.png`, and `run.json` (what this run sent,
read from the cache, retried, and how long it took — the only file that differs on a rerun).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from PIL import Image

from ..builder.backends.base import CallFailed, ChatBackend
from ..builder.backends.client import ModelEndpoint, OpenAIChatBackend
from ..builder.cache import TRUNCATED_REASON, CachedBackend, CallCache
from ..builder.stages.judge import JudgeOutputInvalid
from ..validation.report import AtomicWriter
from .imaging import IMAGE_RESIZES, authors_image
from .items import EvalItem, load_eval_items
from .metrics import compute_metrics
from .prompts import ModelPrompt, PromptError
from .report import write_report
from .responses import ResponseFile, read_responses
from .results import Checker, item_result, missing, write_results
from .rubric import Rubric, ToolkitRubric

METRICS_FORMAT = 1
CACHE_FILE = Path(".cache") / "calls.sqlite"
#: Reasons that another run would not change: the item itself has nothing to score, or the
#: endpoint gave a definite answer (cut at the token limit, filtered, refused). Any other
#: failed call (HTTP errors, timeouts, no API key) is worth running the command again for.
FINAL_REASONS = frozenset({"bad_row", "no_response", "prompt_error", "judge_invalid"})
FINAL_CALL_OUTCOMES = ("finish_length", "finish_content_filter", "refusal")


@dataclass(frozen=True)
class EvalSettings:
    """What to evaluate and how. Exactly one of `model` and `responses` is set."""

    dataset: str
    out: Path
    judge: ModelEndpoint
    model: ModelEndpoint | None = None
    responses: Path | None = None
    prompt: ModelPrompt = field(default_factory=ModelPrompt)
    config: str = "eval"
    split: str = "test"
    judge_attempts: int = 3
    #: show the judge the item's reference label and category (the builder's informed judge);
    #: off by default, as the authors' evaluation judge sees image, question and response only
    judge_sees_reference: bool = False
    #: the judge's rubric; None = the toolkit's (`rubric.ToolkitRubric`)
    rubric: Rubric | None = None
    #: `none` sends the release's image bytes; `authors` preprocesses as the authors' eval
    image_resize: str = "none"

    def __post_init__(self) -> None:
        if (self.model is None) == (self.responses is None):
            raise ValueError("give either a model endpoint or a responses file, not both")
        if self.judge_attempts < 1:
            raise ValueError("judge_attempts must be at least 1")
        if self.image_resize not in IMAGE_RESIZES:
            raise ValueError(f"image_resize must be one of {', '.join(IMAGE_RESIZES)}")
        if self.rubric is not None and self.judge_sees_reference:
            raise ValueError("the judge sees the reference only with the toolkit rubric")

    @property
    def judge_rubric(self) -> Rubric:
        return self.rubric or ToolkitRubric(self.judge_sees_reference)


@dataclass(frozen=True)
class Reply:
    """The response to judge (None when there is none, with the reason) and how it ended."""

    text: str | None
    why_missing: dict[str, str] | None = None
    finish_reason: str | None = None  # None for a responses file


@dataclass
class RunSummary:
    """What `evaluate` wrote and did."""

    metrics: dict[str, Any]
    run: dict[str, Any]
    retryable: int  # items that failed on a call; a rerun tries them again


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n"


class _Evaluation:
    """The per-item flow of one run, over already-built backends."""

    def __init__(self, settings: EvalSettings, judge: ChatBackend, model: ChatBackend | None,
                 responses: ResponseFile | None) -> None:
        self.s = settings
        self.judge, self.model, self.responses = judge, model, responses
        self.checker = Checker()

    async def response(self, item: EvalItem) -> Reply:
        if self.responses is not None:
            text = self.responses.responses.get(item.id)
            if text is None:
                why = self.responses.unusable.get(item.id, "the responses file has no line "
                                                           "for this id")
                return Reply(None, missing("response", "no_response", why))
            return Reply(text)
        assert self.model is not None and self.s.model is not None
        try:
            request = self.s.prompt.request(item, self.s.model.model, self.s.model.sampling)
        except PromptError as exc:
            return Reply(None, missing("response", "prompt_error", str(exc)))
        try:
            result = await self.model.complete(request)
        except CallFailed as exc:
            if exc.reason == TRUNCATED_REASON and exc.partial is not None:
                # judged as it stands, as the authors judge a cut answer; flagged as truncated
                return Reply(exc.partial.content, finish_reason=exc.partial.finish_reason)
            return Reply(None, missing("response", f"model_{exc.reason}", exc.detail))
        return Reply(result.content, finish_reason=result.finish_reason)

    async def item(self, item: EvalItem) -> dict[str, Any]:
        if item.problem is not None:
            return item_result(item, response=None, checker=self.checker,
                               why_missing=missing("dataset", "bad_row", item.problem))
        reply = await self.response(item)
        response, why = reply.text, reply.why_missing
        if response is None:
            return item_result(item, response=None, checker=self.checker, why_missing=why)
        finish_reason = reply.finish_reason
        rubric = self.s.judge_rubric
        request = rubric.request(self.s.judge.model, item, response, self.s.judge.sampling)
        try:
            judgement = await rubric.judge(self.judge, request, self.s.judge_attempts)
        except JudgeOutputInvalid as exc:
            why = missing("judge", "judge_invalid",
                          f"no valid rubric object in {self.s.judge_attempts} attempt(s); "
                          f"last reply: {exc}")
        except CallFailed as exc:
            why = missing("judge", f"judge_{exc.reason}", exc.detail)
        else:
            return item_result(item, response=response, checker=self.checker,
                               scores=judgement.to_json(), rationale=judgement.rationale,
                               finish_reason=finish_reason)
        return item_result(item, response=response, checker=self.checker, why_missing=why,
                           finish_reason=finish_reason)


def _provenance(s: EvalSettings, items: list[EvalItem], stats: dict[str, Any]) -> dict[str, Any]:
    from .. import __version__, schemas
    from ..builder.release.export import sha256_file  # heavy: only when writing

    ids = "\n".join(item.id for item in items).encode()
    if s.model is not None:
        model: dict[str, Any] = {"name": s.model.model, "prompt": s.prompt.kind,
                                 "template_version": s.prompt.version,
                                 "sampling": s.model.sampling}
    else:
        assert s.responses is not None
        model = {"responses_file": str(s.responses), "sha256": sha256_file(s.responses)}
    return {
        "toolkit_version": __version__,
        "dataset": {"source": s.dataset, "config": s.config, "split": s.split,
                    "items": len(items), "ids_sha256": hashlib.sha256(ids).hexdigest()},
        "model": model,
        "judge": {"model": s.judge.model, **s.judge_rubric.describe(),
                  "sees_reference": s.judge_sees_reference,
                  "sampling": s.judge.sampling, "max_attempts": s.judge_attempts},
        "image_resize": s.image_resize,
        "schemas": schemas.schema_hashes(),
        "calls": stats,
    }


async def _run(s: EvalSettings, items: list[EvalItem],
               responses: ResponseFile | None) -> tuple[list[dict[str, Any]], dict, dict]:
    from tqdm import tqdm

    cache = CallCache(s.out / CACHE_FILE)
    judge = CachedBackend(OpenAIChatBackend(s.judge), cache)
    # a cut answer is judged, so it is kept (as a cut answer, never a success) like any other
    model = None if s.model is None else CachedBackend(OpenAIChatBackend(s.model), cache,
                                                       keep_truncated=True)
    evaluation = _Evaluation(s, judge, model, responses)
    # Bound the items in flight so requests (with their images) are not all built at once.
    gate = asyncio.Semaphore(2 * max(s.judge.concurrency, s.model.concurrency if s.model else 1))
    progress = tqdm(total=len(items), desc="eval", unit="item", disable=None)

    async def one(item: EvalItem) -> dict[str, Any]:
        async with gate:
            try:
                return await evaluation.item(item)
            finally:
                progress.update()

    try:
        results = await asyncio.gather(*(one(item) for item in items))
    finally:
        progress.close()
        await judge.aclose()
        if model is not None:
            await model.aclose()
        cache.close()
    roles = {"judge": judge.stats, **({"model": model.stats} if model else {})}
    return (list(results), {k: v.stable() for k, v in roles.items()},
            {k: v.run() for k, v in roles.items()})


def _resized(item: EvalItem) -> EvalItem:
    """The item with its images preprocessed as the authors' evaluation does (one that cannot
    be decoded makes the item a `bad_row`, reported like any other)."""
    if item.problem is not None:
        return item
    try:
        return replace(item, images=tuple(authors_image(data, name)
                                          for data, name in item.images))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return replace(item, problem=f"image cannot be preprocessed as the authors' ({exc})")


def _retryable(reason: str) -> bool:
    return reason not in FINAL_REASONS and not reason.endswith(FINAL_CALL_OUTCOMES)


def evaluate(s: EvalSettings) -> RunSummary:
    """Run one evaluation into `s.out` (see the module docstring).

    Raises `DatasetError` when the dataset cannot be read and `OSError` when the responses
    file cannot.
    """
    started = time.monotonic()
    items = load_eval_items(s.dataset, s.config, s.split)
    if s.image_resize == "authors":
        items = [_resized(item) for item in items]
    responses = None
    problems: dict[str, list[str]] = {"dataset_problems": [i.problem for i in items if i.problem]}
    if s.responses is not None:
        responses = read_responses(s.responses, {item.id for item in items})
        problems["response_file_problems"] = responses.problems
        problems["unknown_response_ids"] = responses.unknown_ids
    s.out.mkdir(parents=True, exist_ok=True)
    results, stable, run = asyncio.run(_run(s, items, responses))
    write_results(s.out / "results.jsonl", results)
    metrics = {"format": METRICS_FORMAT, "provenance": _provenance(s, items, stable),
               "problems": problems, **compute_metrics(results)}
    with AtomicWriter(s.out / "metrics.json") as f:
        f.file.write(_dump(metrics))
    write_report(s.out, metrics)
    run = {"judge_sees_reference": s.judge_sees_reference, "calls": run,
           "wall_s": round(time.monotonic() - started, 3)}
    with AtomicWriter(s.out / "run.json") as f:
        f.file.write(_dump(run))
    retryable = sum(1 for r in results if r["missing"] and _retryable(r["missing"]["reason"]))
    return RunSummary(metrics, run, retryable)
