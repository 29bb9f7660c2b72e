"""Stage 1, SFT: teach the policy the toolkit format from gold traces (TRL `SFTTrainer`).

Rows: the dataset's `sft` config — `messages` [system toolkit instruction, user (image,
question), assistant (text-form trace + answer)] and `images`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .config import StageConfig

COLUMNS = ("messages", "images")


@dataclass
class SFTStageConfig(StageConfig):
    """SFT settings; the learning rate is the paper's (1e-5)."""

    learning_rate: float = 1e-5
    assistant_only_loss: bool = True  # loss on the assistant turn only, not the long system prompt

    TRAINER_FIELDS: ClassVar[tuple[str, ...]] = (*StageConfig.TRAINER_FIELDS,
                                                 "assistant_only_loss")


def train(cfg: SFTStageConfig) -> dict[str, Any]:
    """Run SFT and save the model to `cfg.output_dir`; returns the provenance summary."""
    from . import stage

    return stage.train_on_rows("sft", cfg, COLUMNS)
