"""The stage interface: what one item carries from stage to stage, and how a stage stops it.

A build runs each item through its split's recipe (`builder.recipes`), one `ItemStage` after
another (a module of this folder each; the model calls and checks they use live in
`builder.stages`), like datatrove's `PipelineStep.run` over documents: a stage takes the item's
`ItemState` and returns the next state, or a `Rejection` whose reason is counted (per split,
per stage: the funnel in the manifest and the card) — the way datatrove's `BaseFilter.filter`
answers False with a reason. The state is frozen: a stage adds what it made with `replace`,
so what reaches the ledger is exactly what the stages produced (`ItemState.kept`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ...validation import Protocol as ResolvedProtocol
from ..backends.base import CallFailed
from ..config import BuildConfig, ModelConfig
from ..ledger import Ledger
from ..progress import Progress
from ..roles import Roles
from ..sources.base import SourceItem
from ..stages.judge import JudgeTally
from ..stages.perturb import Perturbed
from ..stages.respond import Candidate


@dataclass(frozen=True)
class Rejection:
    """Why a stage stopped an item: a short `reason` tag (a validator code, a rule, a call
    failure tag); `failed` when a call failed for good rather than the item's output falling
    short (the item is then `failed`, not `rejected`), with what the failure log keeps."""

    reason: str
    failed: bool = False
    detail: str = ""

    @classmethod
    def call_failed(cls, failure: CallFailed) -> Rejection:
        """A call that failed after its retries (a rerun sends it again)."""
        return cls(failure.reason, True, failure.detail[:500])


@dataclass(frozen=True)
class Kept:
    """What the ledger keeps of an item that went through its whole recipe: what its rows are
    assembled from (`assemble.rows_for`). `decision` is the stated decision of the kept trace
    (the eval rows' `expected_decision`); `rejected` the DPO rejected sides."""

    protocol: Mapping[str, Any]
    instruction: str
    models: Mapping[str, str]
    trace: str | None = None
    judgement: Mapping[str, Any] | None = None
    decision: str | None = None
    rejected: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "instruction": self.instruction,
                "models": dict(self.models), "trace": self.trace, "judgement": self.judgement,
                "decision": self.decision, "rejected": list(self.rejected)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Kept:
        return cls(data["protocol"], data["instruction"], data["models"], data["trace"],
                   data["judgement"], data["decision"], tuple(data["rejected"]))


@dataclass(frozen=True)
class ItemState:
    """One item on its way through its split's recipe: what each stage has made so far.

    plan sets `protocol` (resolved once, for every later stage), `instruction` (the toolkit
    instruction rendered from it: what the responders are given is what the row's system turn
    says) and `models["planner"]`; respond the `candidates`; judge the `best` candidate, the
    `decision` its trace states and the responder and judge models; perturb the `rejected`
    sides.
    """

    split: str
    item: SourceItem
    protocol: ResolvedProtocol | None = None
    instruction: str = ""
    models: Mapping[str, str] = field(default_factory=dict)  # the models that answered
    candidates: tuple[Candidate, ...] = ()
    best: Candidate | None = None
    decision: str | None = None  # the decision the best candidate's trace states
    rejected: tuple[Perturbed, ...] = ()

    @property
    def document(self) -> dict[str, Any]:
        """The protocol document the rows carry (after plan)."""
        assert self.protocol is not None, "a stage before plan has no protocol"
        return self.protocol.document

    def kept(self) -> Kept:
        """What the ledger keeps of the item once its recipe is done."""
        best = self.best
        return Kept(
            self.document, self.instruction, dict(self.models),
            trace=best.text if best else None,
            judgement=best.judgement.to_json() if best and best.judgement else None,
            decision=self.decision,
            rejected=tuple({"kind": p.kind, "text": p.text, "codes": p.codes}
                           for p in self.rejected))


class Context(Protocol):
    """What a stage may use of the build that runs it (`pipeline.Build`): the configuration,
    the model roles, the ledger's logs, the progress bars and the tallies for the manifest."""

    config: BuildConfig
    roles: Roles
    ledger: Ledger
    progress: Progress
    yields: dict[str, Counter[str]]
    judged: JudgeTally

    def sampling(self, model: ModelConfig) -> dict[str, Any]:
        """A role's sampling parameters with the build's seed."""
        ...


class ItemStage(ABC):
    """One stage of a recipe. `name` is its name in the funnel, the yield, the progress bars
    and the reasons (`plan:plan_schema`); `unit` what its progress bar counts; `counts_yield`
    whether its model exchanges are counted in the manifest's `yield`."""

    name: ClassVar[str]
    unit: ClassVar[str] = "item"
    counts_yield: ClassVar[bool] = False

    @abstractmethod
    async def run(self, state: ItemState, build: Context) -> ItemState | Rejection:
        """The item's next state, or why it stops here. A call that fails for good is a
        `Rejection.call_failed`; anything raised is a bug (the item fails as
        `internal_error`) or the build's own state failing (the build stops)."""

    def work(self, config: BuildConfig) -> int:
        """Progress units this stage advances per item (the bars' totals; they may grow)."""
        return 1
