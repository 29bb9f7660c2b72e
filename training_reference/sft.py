"""Stage 1, SFT: teach the policy the toolkit format from gold traces (TRL `SFTTrainer`).

Rows: the dataset's `sft` config — `messages` [system toolkit instruction, user (image,
question), assistant (text-form trace + answer)] and `images`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from safer_toolkit.training_reference.config import StageConfig

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
    from safer_toolkit.training_reference import stage

    rows = stage.load_rows(cfg, COLUMNS)  # before importing TRL: a bad dataset fails fast
    from trl import SFTConfig, SFTTrainer

    model, processor = stage.load_model_and_processor(cfg)
    args = SFTConfig(**{"max_length": None,  # never truncate into image tokens
                        **cfg.trainer_kwargs()})
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows.select_columns(COLUMNS),
                         processing_class=processor, peft_config=stage.peft_config(cfg))
    trainer.train()
    return stage.finish("sft", cfg, trainer, processor)
