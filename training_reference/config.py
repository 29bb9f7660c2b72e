"""Training configuration: one TOML file per model size describes the whole curriculum.

    [defaults]          # every stage, unless the stage sets the key itself
    dataset = "ORG/NAME"        # Hub id or a folder written by `safer-toolkit build`
    output_root = "runs/qwen2.5-vl-3b"
    [sft]               # one table per stage; `[sft.trl]` passes options to TRL verbatim
    model = "Qwen/Qwen2.5-VL-3B-Instruct"
    learning_rate = 1e-5
    [dpo]               # `model` defaults to the sft stage's output_dir, grpo's to dpo's
    ...

Command-line overrides (`key=value`, dotted keys into tables, values in TOML syntax) apply to
the stage being run. Standard library only: the CLI parses a config before importing torch.
"""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError
from ..settings import Reader, read_toml, setting

STAGES = ("sft", "dpo", "grpo")
PREVIOUS = {"dpo": "sft", "grpo": "dpo"}


@dataclass
class LoraSettings:
    """Optional LoRA (peft). The adapter is merged at the end of a stage, so the next stage
    starts from a full model."""

    enabled: bool = False
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"


@dataclass
class StageConfig:
    """What every stage reads; stage configs add their own fields and defaults."""

    model: str = setting("", help="input model: Hub id or folder (\"\" → the previous stage's "
                                  "output_dir)")
    dataset: str = setting("", help="Hub id or a local dataset folder")
    dataset_config: str = setting("", help="\"\" → the stage name (sft, dpo, grpo)")
    split: str = "train"
    max_train_samples: int = setting(0, help="0 → all rows")
    output_root: str = "runs"
    output_dir: str = setting("", help="\"\" → output_root/<stage>")
    seed: int = 42
    # model loading
    dtype: str = "bfloat16"
    attn_implementation: str = "sdpa"
    min_pixels: int = 56 * 56
    max_pixels: int = 1280 * 28 * 28
    freeze_vision_tower: bool = False
    # optimisation (the usual TRL/transformers names)
    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = setting(0.0, help="below 1: a ratio of the total steps")
    weight_decay: float = 0.0
    bf16: bool = True
    activation_checkpointing: bool = True
    logging_steps: float = 10
    save_strategy: str = "epoch"
    report_to: list[str] | str = "none"
    lora: LoraSettings = field(default_factory=LoraSettings)
    trl: dict[str, Any] = setting(factory=dict, help="any other TRL config option, verbatim")

    #: Fields copied into the TRL config under the same name; a stage config extends it with
    #: its own (`(*StageConfig.TRAINER_FIELDS, "beta", ...)`).
    TRAINER_FIELDS: typing.ClassVar[tuple[str, ...]] = (
        "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
        "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps", "weight_decay",
        "bf16", "activation_checkpointing", "logging_steps", "save_strategy", "report_to",
        "seed", "output_dir")

    def trainer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the stage's TRL config class."""
        kwargs = {name: _copy(getattr(self, name)) for name in self.TRAINER_FIELDS}
        kwargs["bf16"] = self.bf16 and self.dtype == "bfloat16"
        return {**kwargs, **self.trl}


def _copy(value: Any) -> Any:
    """A list handed to TRL is a copy: its config may change it, the recorded one may not."""
    return list(value) if isinstance(value, list) else value


C = TypeVar("C", bound=StageConfig)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _toml_value(text: str) -> Any:
    """A TOML value (`2e-5`, `true`, `["a"]`, `"x"`); anything else is a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["lora.r=16", "learning_rate=2e-5"]` → nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        *parents, leaf = key.strip().split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier one")
        node[leaf] = _toml_value(raw.strip())
    return out


CONFIGS_DIR = Path(__file__).parent / "configs"


def resolve_config_path(name: str | Path) -> Path:
    """A file path, or the bare name of a shipped config (`qwen2_5_vl_3b`)."""
    path = Path(name)
    shipped = CONFIGS_DIR / f"{path.name}.toml"
    if not path.exists() and path.suffix == "" and shipped.exists():
        return shipped
    return path


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A training config file's tables (`[defaults]` and one per stage, each a table)."""
    path = resolve_config_path(path)
    r = Reader(str(path))
    doc = r.table(read_toml(path), "", {"defaults", *STAGES})
    for name, table in doc.items():
        r.table(table, name, set(table) if isinstance(table, dict) else set())
    return doc


def _stage_table(doc: dict[str, Any], stage: str) -> dict[str, Any]:
    return _deep_merge(doc.get("defaults", {}), doc.get(stage, {}))


def _output_dir(table: dict[str, Any], stage: str) -> str:
    return table.get("output_dir") or f"{table.get('output_root', 'runs')}/{stage}"


def load_stage_config(cls: type[C], path: str | Path, stage: str,
                      overrides: dict[str, Any] | None = None) -> C:
    """The resolved config of `stage` from file `path` plus overrides.

    Relative dataset/model/output paths are kept as given (relative to the working directory,
    as TRL and `datasets` treat them)."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    doc = read_config_file(path)
    overrides = overrides or {}
    table = _deep_merge(_stage_table(doc, stage), overrides)
    table["output_dir"] = _output_dir(table, stage)
    table["dataset_config"] = table.get("dataset_config") or stage
    if not table.get("model"):
        previous = PREVIOUS.get(stage)
        if previous is None:
            raise Reader(str(path)).fail(stage, "needs `model` (a Hub id or a folder)")
        # An overridden output_root moves the whole chain, so it applies to the previous stage.
        root = {"output_root": overrides["output_root"]} if "output_root" in overrides else {}
        table["model"] = _output_dir({**_stage_table(doc, previous), **root}, previous)
    if not table.get("dataset"):
        raise Reader(str(path)).fail(stage, "needs `dataset` (a Hub id or a dataset folder)")
    return Reader(str(path)).dataclass(cls, table, stage)
