"""Stage 2, DPO: prefer the valid trace over its systematic perturbations (TRL `DPOTrainer`).

Rows: the dataset's `dpo` config — `prompt` [system, user (image, question)], `chosen` and
`rejected` [assistant], `images` (plus `perturbation`, `rejected_codes`, which TRL ignores).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .config import StageConfig

COLUMNS = ("prompt", "chosen", "rejected", "images")


@dataclass
class DPOStageConfig(StageConfig):
    """DPO settings; the learning rate is the paper's (5e-7)."""

    learning_rate: float = 5e-7
    beta: float = 0.1  # DPO temperature (TRL's default; the paper does not state one)
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])

    TRAINER_FIELDS: ClassVar[tuple[str, ...]] = (*StageConfig.TRAINER_FIELDS, "beta",
                                                 "loss_type")


def train(cfg: DPOStageConfig) -> dict[str, Any]:
    """Run DPO from the SFT model and save to `cfg.output_dir`; returns the summary."""
    from . import stage

    return stage.train_on_rows("dpo", cfg, COLUMNS)
