"""Stage 3, GRPO: reward the tool usage itself (TRL `GRPOTrainer`, rewards in `rewards.py`).

Rows: the dataset's `grpo` config — `prompt` [system, user (image, question)], `images`,
`protocol`, `risk_category`, `label` (every column reaches the reward functions by name) — or,
with `dataset_format = "easyr1"`, a folder in the authors' EasyR1 format (see `easyr1.py`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..settings import setting
from .config import ConfigError, StageConfig
from .judge import TEMPLATE_VERSION
from .rewards import RewardWeights

log = logging.getLogger(__name__)

COLUMNS = ("prompt", "images", "protocol")
DATASET_FORMATS = ("hub", "easyr1")


@dataclass
class GRPOStageConfig(StageConfig):
    """GRPO settings; the defaults are the paper's: LR 1e-6, 4 generations per prompt at
    temperature 1.0, KL coefficient 0.01, completions up to 2,048 tokens, 2 epochs."""

    learning_rate: float = 1e-6
    num_train_epochs: float = 2.0
    num_generations: int = 4
    temperature: float = 1.0
    beta: float = 0.01
    max_completion_length: int = 2048
    use_vllm: bool = False  # generate with vLLM (must be installed)
    vllm_mode: str = "colocate"
    dataset_format: str = setting("hub", choices=DATASET_FORMATS, help=(
        '"hub": load_dataset(dataset, "grpo"); "easyr1": a folder in the EasyR1 format'))
    rewards: RewardWeights = field(default_factory=RewardWeights)
    # The semantic judge: `ModelEndpoint` fields (model, base_urls, api_key_env, sampling,
    # concurrency, timeout_s, max_retries, ...). Used only when rewards.semantic > 0.
    judge: dict[str, Any] = field(default_factory=dict)
    judge_sees_image: bool = True

    TRAINER_FIELDS: ClassVar[tuple[str, ...]] = (
        *StageConfig.TRAINER_FIELDS, "num_generations", "temperature", "beta",
        "max_completion_length", "use_vllm", "vllm_mode")


def _judge(cfg: GRPOStageConfig) -> Any:
    """The semantic reward bound to the configured judge endpoint (None at weight 0)."""
    from ..builder.backends.client import ModelEndpoint, OpenAIChatBackend
    from .rewards import SemanticReward

    if not cfg.rewards.semantic:
        return None  # a judge at weight 0 would be paid for nothing
    if not cfg.judge:
        raise ConfigError("[grpo] rewards.semantic > 0 needs a [grpo.judge] endpoint "
                          "(model, base_urls, ...); or set rewards.semantic = 0")
    try:
        endpoint = ModelEndpoint(**{"role": "judge", **cfg.judge})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[grpo.judge]: {exc}") from None
    return SemanticReward(OpenAIChatBackend(endpoint), endpoint.model,
                          sampling=endpoint.sampling, send_image=cfg.judge_sees_image)


def reward_functions(cfg: GRPOStageConfig, semantic: Any) -> tuple[list[Any], list[float]]:
    """The reward callables in TRL order with their weights (protocol kept even at weight 0,
    so adherence is logged)."""
    from . import rewards

    w = cfg.rewards
    funcs: list[Any] = [rewards.format_reward, rewards.depth_reward]
    weights = [w.format, w.depth]
    if semantic is not None:
        funcs.append(semantic)
        weights.append(w.semantic)
    funcs.append(rewards.protocol_reward)
    weights.append(w.protocol)
    return funcs, weights


def _rows(cfg: GRPOStageConfig) -> Any:
    from . import easyr1, stage

    if cfg.dataset_format == "easyr1":
        return easyr1.load_dataset(cfg.dataset, max_rows=cfg.max_train_samples or None)
    return stage.load_rows(cfg, COLUMNS)


def train(cfg: GRPOStageConfig) -> dict[str, Any]:
    """Run GRPO from the DPO model and save to `cfg.output_dir`; returns the summary."""
    from . import stage

    if cfg.use_vllm and importlib.util.find_spec("vllm") is None:
        raise ConfigError("[grpo] use_vllm = true, but vllm is not installed")
    semantic = _judge(cfg)  # first: a judge typo fails before the dataset is read
    rows = _rows(cfg)  # before importing TRL: a bad dataset fails fast
    from trl import GRPOConfig, GRPOTrainer

    funcs, weights = reward_functions(cfg, semantic)
    model, processor = stage.load_model_and_processor(cfg)
    args = GRPOConfig(**{"reward_weights": weights, "log_completions": False,
                         **cfg.trainer_kwargs()})
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=rows,
                          processing_class=processor, peft_config=stage.peft_config(cfg))
    try:
        trainer.train()
    finally:
        if semantic is not None:
            loop = getattr(trainer, "async_loop", None)
            if loop is not None:
                asyncio.run_coroutine_threadsafe(semantic.aclose(), loop).result()
            if semantic.failures:
                log.warning("semantic judge: %d of %d calls failed (%s)",
                            sum(semantic.failures.values()), semantic.calls,
                            dict(semantic.failures))
    extra = None if semantic is None else {
        "judge": {"template_version": TEMPLATE_VERSION, "calls": semantic.calls,
                  "failures": dict(semantic.failures)}}
    return stage.finish("grpo", cfg, trainer, processor, extra)
