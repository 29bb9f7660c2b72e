"""Audit one release folder: read it once, measure every figure, judge each against its bound."""

from __future__ import annotations

from pathlib import Path

from .answers import answer_figures
from .balance import label_balance
from .images import image_figures
from .overlap import overlap_figures
from .pairs import pair_figures
from .prompts import prompt_figures
from .read import read_release
from .report import Audit
from .thresholds import AuditThresholds


def audit_folder(folder: Path, limits: AuditThresholds | None = None) -> Audit:
    """Every figure of the release in `folder` (its `sft/ dpo/ grpo/ eval/` parquet files)."""
    limits = limits or AuditThresholds()
    release = read_release(Path(folder))
    frames = release.frames
    sft = frames.get("sft")
    figures = [
        *answer_figures(sft["answer"].to_list() if sft is not None else [], limits),
        *pair_figures(frames.get("dpo"), limits),
        *prompt_figures(frames, limits),
        *overlap_figures(frames, release.has_groups, limits),
        *image_figures(Path(folder), limits),
    ]
    return Audit(figures, limits.to_json(), {"label_balance": label_balance(frames)})
