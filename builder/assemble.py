"""Assemble: kept items → dataset rows in the release's TRL vision formats.

Rows carry only what the trained model may see in its prompt — the toolkit instruction rendered
from the row's protocol, the image placeholder and the question — plus the columns the trainer,
the evaluation and a re-validation need (`protocol` as compact JSON, labels, provenance, models).
Row ids are content hashes of the source's identity, so they are stable across builds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ..validation import Trace, stated_verdict
from ..validation.vocabulary import FOLLOW_UP_DECISION
from .sources.base import SourceItem
from .steps.item import Kept


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def prompt_turns(instruction: str, question: str) -> list[dict[str, Any]]:
    """[system toolkit instruction, user [image placeholder, question]]."""
    return [{"role": "system", "content": [_text(instruction)]},
            {"role": "user", "content": [{"type": "image", "text": None}, _text(question)]}]


def assistant_turn(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [_text(text)]}]


def row_id(split: str, item: SourceItem) -> str:
    digest = hashlib.sha256(f"{item.source_dataset}\x1f{item.source_id}".encode()).hexdigest()
    return f"{split}-{digest[:16]}"


def _no_verdict(text: str) -> None:
    """An untyped gate states nothing; reading untyped calls lets their follow-ups count."""
    return None


def trace_decision(trace: Trace, label: str) -> str:
    """The decision a trace states (`stated_verdict`, any follow-up tool counting when it has no
    gate verdict), else the label's plain one."""
    stated = stated_verdict(trace.calls, _no_verdict, FOLLOW_UP_DECISION)
    if stated is not None:
        return stated[0]
    return "refuse" if label == "harmful" else "comply"


def _common(item: SourceItem, doc: Mapping[str, Any], models: Mapping[str, str]
            ) -> dict[str, Any]:
    return {
        "protocol": orjson.dumps(doc).decode(),
        "risk_category": doc["risk_category"],
        "label": doc["label"],
        "source_dataset": item.source_dataset,
        "source_id": item.source_id,
        "source_license": item.source_license,
        "source_group": item.family,
        "planner_model": models.get("planner", ""),
        "responder_model": models.get("responder", ""),
        "judge_model": models.get("judge", ""),
    }


def rows_for(split: str, item: SourceItem, kept: Kept) -> Iterator[dict[str, Any]]:
    """The row(s) of one kept item: its protocol, the toolkit instruction rendered from it, the
    kept trace, ... (`steps.item.Kept`, what its recipe made)."""
    doc = kept.protocol
    prompt = prompt_turns(kept.instruction, item.question)
    images = [{"bytes": item.image, "path": item.image_name}]
    common = _common(item, doc, kept.models)
    rid = row_id(split, item)
    if split == "sft":
        assert kept.trace is not None
        yield {"id": rid, "images": images, "messages": prompt + assistant_turn(kept.trace),
               **common}
    elif split == "dpo":
        assert kept.trace is not None
        del common["label"]  # TRL would read it as KTO's flag; the protocol holds the label
        for k, rejected in enumerate(kept.rejected):
            yield {"id": f"{rid}-{k}", "images": images, "prompt": prompt,
                   "chosen": assistant_turn(kept.trace),
                   "rejected": assistant_turn(rejected["text"]),
                   "perturbation": rejected["kind"], "rejected_codes": rejected["codes"],
                   **common}
    elif split == "grpo":
        yield {"id": rid, "images": images, "prompt": prompt, **common}
    elif split == "eval":
        yield {"id": rid, "images": images, "prompt": prompt,
               "expected_decision": kept.decision, **common}
    else:
        raise ValueError(f"unknown split {split!r}")
