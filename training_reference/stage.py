"""What every stage does around its TRL trainer: load rows, model and processor; save the
result so the next stage can start from it; record how it was made."""

from __future__ import annotations

import dataclasses
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import TrainingError
from ..validation.report import AtomicWriter
from .config import StageConfig

log = logging.getLogger(__name__)

PROVENANCE_FILE = "safer_toolkit_training.json"


class StageInputError(TrainingError, ValueError):
    """A stage's input (rows or model) cannot be used; the message says which and why."""


class DatasetUnusable(StageInputError):
    """The training rows are missing, empty or lack the stage's columns."""


class ModelUnusable(StageInputError):
    """The input model or its processor cannot be loaded."""


def load_rows(cfg: StageConfig, columns: tuple[str, ...]) -> Any:
    """The stage's split (`load_dataset(dataset, config)`), images decoded, columns checked."""
    import datasets

    try:
        ds = datasets.load_dataset(cfg.dataset, cfg.dataset_config, split=cfg.split)
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DatasetUnusable(f"{cfg.dataset} [{cfg.dataset_config}/{cfg.split}]: "
                              f"cannot load ({exc})") from None
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DatasetUnusable(f"{cfg.dataset} [{cfg.dataset_config}]: missing column(s) "
                              f"{', '.join(missing)} (has {', '.join(ds.column_names)})")
    if not len(ds):
        raise DatasetUnusable(f"{cfg.dataset} [{cfg.dataset_config}/{cfg.split}]: no rows")
    feature = ds.features["images"]
    if not isinstance(getattr(feature, "feature", None), datasets.Image):
        ds = ds.cast_column("images", datasets.List(datasets.Image()))
    if cfg.max_train_samples:
        ds = ds.select(range(min(cfg.max_train_samples, len(ds))))
    return ds


def load_model_and_processor(cfg: StageConfig) -> tuple[Any, Any]:
    """The input model (vision tower frozen if asked) and its image-capable processor."""
    import torch
    from transformers import AutoModelForImageTextToText

    from .processing import NotAVisionProcessor, load_processor

    dtype = getattr(torch, cfg.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise ModelUnusable(f"dtype {cfg.dtype!r} is not a torch dtype (bfloat16, float32, ...)")
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            cfg.model, dtype=dtype,
            attn_implementation=cfg.attn_implementation)
        processor = load_processor(cfg.model, size={"shortest_edge": cfg.min_pixels,
                                                    "longest_edge": cfg.max_pixels})
    except (OSError, ValueError, NotAVisionProcessor) as exc:
        raise ModelUnusable(f"model {cfg.model!r}: {exc}") from None
    if cfg.freeze_vision_tower:
        model.get_encoder("image").requires_grad_(False)
    return model, processor


def peft_config(cfg: StageConfig) -> Any:
    """A peft `LoraConfig` when LoRA is enabled, else None (full fine-tuning)."""
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")


def _versions() -> dict[str, str]:
    out = {}
    for name in ("safer-toolkit", "torch", "transformers", "trl", "peft", "accelerate",
                 "datasets"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def finish(stage: str, cfg: StageConfig, trainer: Any, processor: Any,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save a full model (LoRA merged) + processor to output_dir and a provenance record.

    Returns the summary written to `safer_toolkit_training.json`."""
    out = Path(cfg.output_dir)
    if cfg.lora.enabled:
        trainer.save_model(str(out / "adapter"))
        if trainer.accelerator.is_main_process:
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged.save_pretrained(out)
    else:
        trainer.save_model(str(out))  # gathers sharded (ZeRO-3/FSDP) weights itself
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(out)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    summary = {
        "stage": stage,
        "input_model": cfg.model,
        "dataset": cfg.dataset,
        "dataset_config": cfg.dataset_config,
        "split": cfg.split,
        "rows": len(trainer.train_dataset),
        "global_steps": trainer.state.global_step,
        "losses": losses,
        "log_history": trainer.state.log_history,
        "config": dataclasses.asdict(cfg),
        "versions": _versions(),
        **(extra or {}),
    }
    if trainer.accelerator.is_main_process:
        with AtomicWriter(out / PROVENANCE_FILE) as f:
            f.file.write(json.dumps(summary, indent=2, sort_keys=True, default=str).encode()
                         + b"\n")
    log.info("%s: %d steps, losses %s; saved to %s", stage, trainer.state.global_step, losses,
             out)
    return summary


def train_on_rows(name: str, cfg: StageConfig, columns: tuple[str, ...]) -> dict[str, Any]:
    """SFT's and DPO's run: the rows (read before TRL is imported, so a bad dataset fails fast),
    TRL's `SFTConfig`/`SFTTrainer` (`DPO…` for dpo) on the stage's columns, then `finish`."""
    rows = load_rows(cfg, columns)
    import trl

    trainer = name.upper()
    model, processor = load_model_and_processor(cfg)
    args = getattr(trl, f"{trainer}Config")(**{"max_length": None,  # never cut image tokens
                                               **cfg.trainer_kwargs()})
    run = getattr(trl, f"{trainer}Trainer")(model=model, args=args,
                                            train_dataset=rows.select_columns(columns),
                                            processing_class=processor,
                                            peft_config=peft_config(cfg))
    run.train()
    return finish(name, cfg, run, processor)
