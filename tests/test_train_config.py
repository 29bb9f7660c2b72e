"""`safer-toolkit train` configs: the shipped files carry the published settings, stages chain,
overrides apply, and bad input is one line on stderr with exit status 2."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest

from safer_toolkit.cli import main
from safer_toolkit.training_reference.config import ConfigError, load_stage_config
from safer_toolkit.training_reference.dpo import DPOStageConfig
from safer_toolkit.training_reference.grpo import GRPOStageConfig, reward_functions
from safer_toolkit.training_reference.rewards import (
    depth_reward,
    format_reward,
    protocol_reward,
)
from safer_toolkit.training_reference.sft import SFTStageConfig

CONFIGS = Path(__file__).parents[1] / "training_reference" / "configs"
CLASSES = {"sft": SFTStageConfig, "dpo": DPOStageConfig, "grpo": GRPOStageConfig}


@pytest.mark.parametrize(("name", "base"), [("qwen2_5_vl_3b", "Qwen/Qwen2.5-VL-3B-Instruct"),
                                            ("qwen2_5_vl_7b", "Qwen/Qwen2.5-VL-7B-Instruct")])
def test_shipped_configs_carry_the_published_settings_and_chain(name: str, base: str) -> None:
    path = CONFIGS / f"{name}.toml"
    sft, dpo, grpo = (load_stage_config(CLASSES[s], path, s) for s in ("sft", "dpo", "grpo"))
    assert (sft.learning_rate, dpo.learning_rate, grpo.learning_rate) == (1e-5, 5e-7, 1e-6)
    assert (grpo.num_generations, grpo.temperature, grpo.beta, grpo.max_completion_length,
            grpo.num_train_epochs) == (4, 1.0, 0.01, 2048, 2.0)
    rw = grpo.rewards
    assert (rw.format, rw.depth, rw.semantic) == (0.1, 0.2, 0.7)
    assert grpo.use_vllm is False and sft.lora.enabled is False
    assert sft.model == base
    assert dpo.model == sft.output_dir and grpo.model == dpo.output_dir
    assert [c.dataset_config for c in (sft, dpo, grpo)] == ["sft", "dpo", "grpo"]
    assert grpo.judge["base_urls"] and grpo.judge["model"]
    # GRPO needs the global batch to divide into groups of num_generations
    assert (grpo.per_device_train_batch_size * grpo.gradient_accumulation_steps) \
        % grpo.num_generations == 0


#: What the shipped configs set on purpose away from the stage defaults. Every other key they
#: set restates a default (the published settings are the defaults) and must stay equal to it.
CHOSEN = {"dataset", "output_root", "model", "max_pixels", "per_device_train_batch_size",
          "gradient_accumulation_steps", "warmup_steps", "judge", "trl"}
CHOSEN_BY_STAGE = {"sft": {"num_train_epochs"}}


def _leaves(default: object, table: dict, prefix: str = ""):
    for key, value in table.items():
        current = getattr(default, key)
        if dataclasses.is_dataclass(current):
            yield from _leaves(current, value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value, current


@pytest.mark.parametrize("stage", list(CLASSES))
@pytest.mark.parametrize("name", ["qwen2_5_vl_3b", "qwen2_5_vl_7b"])
def test_shipped_configs_restate_the_defaults_they_do_not_change(name: str, stage: str) -> None:
    doc = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
    table = {**{k: v for k, v in doc["defaults"].items() if k not in doc[stage]}, **doc[stage]}
    chosen = CHOSEN | CHOSEN_BY_STAGE.get(stage, set())
    restated = [(key, value, default) for key, value, default in _leaves(CLASSES[stage](), table)
                if key.partition(".")[0] not in chosen]
    assert "learning_rate" in {key for key, _, _ in restated}
    assert [r for r in restated if r[1] != r[2]] == []


def test_overrides_apply_to_the_stage_and_output_root_moves_the_chain(tmp_path: Path) -> None:
    cfg = load_stage_config(GRPOStageConfig, CONFIGS / "qwen2_5_vl_3b.toml", "grpo", {
        "output_root": str(tmp_path), "learning_rate": 3e-6, "lora": {"enabled": True, "r": 8},
        "rewards": {"protocol": 0.5}, "trl": {"logging_steps": 1}})
    assert cfg.model == f"{tmp_path}/dpo" and cfg.output_dir == f"{tmp_path}/grpo"
    assert cfg.learning_rate == 3e-6 and cfg.lora.enabled and cfg.lora.r == 8
    assert cfg.lora.alpha == 128  # the rest of the table kept
    assert cfg.rewards.protocol == 0.5 and cfg.rewards.semantic == 0.7
    kwargs = cfg.trainer_kwargs()
    assert kwargs["learning_rate"] == 3e-6 and kwargs["logging_steps"] == 1
    assert kwargs["output_dir"] == f"{tmp_path}/grpo"


@pytest.mark.parametrize(("stage", "own"), [
    ("sft", {"assistant_only_loss": True}),
    ("dpo", {"beta": 0.1, "loss_type": ["sigmoid"]}),
    ("grpo", {"num_generations": 4, "temperature": 1.0, "beta": 0.01,
              "max_completion_length": 2048, "use_vllm": False, "vllm_mode": "colocate"}),
])
def test_each_stage_hands_its_own_trainer_fields_to_trl(stage: str, own: dict) -> None:
    cfg = load_stage_config(CLASSES[stage], CONFIGS / "qwen2_5_vl_3b.toml", stage)
    kwargs = cfg.trainer_kwargs()
    assert {k: kwargs[k] for k in own} == own
    assert "rewards" not in kwargs and "judge" not in kwargs and "lora" not in kwargs
    if stage == "dpo":  # TRL gets a copy: the recorded config stays as it was
        assert kwargs["loss_type"] is not cfg.loss_type
    name = next(iter(own))
    cfg.trl = {name: "from [trl]"}  # a [STAGE.trl] option still has the last word
    assert cfg.trainer_kwargs()[name] == "from [trl]"


def test_reward_functions_follow_the_weights() -> None:
    cfg = load_stage_config(GRPOStageConfig, CONFIGS / "qwen2_5_vl_3b.toml", "grpo",
                            {"rewards": {"semantic": 0.0, "protocol": 0.3}})
    funcs, weights = reward_functions(cfg, None)
    assert funcs == [format_reward, depth_reward, protocol_reward]
    assert weights == [0.1, 0.2, 0.3]
    judge = object()
    funcs, weights = reward_functions(cfg, judge)
    assert funcs[2] is judge and weights == [0.1, 0.2, 0.0, 0.3]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"learning_rat": 1.0}, "unknown key(s) learning_rat"),
    ({"learning_rate": "fast"}, "learning_rate: must be a number, not 'fast'"),
    ({"lora": 3}, "lora: must be a table"),
    ({"lora": {"rank": 3}}, "lora: unknown key(s) rank"),
    ({"num_generations": True}, "num_generations: must be an integer, not True"),
    ({"dataset_format": "csv"}, "grpo.dataset_format: must be one of hub, easyr1, not 'csv'"),
])
def test_bad_keys_and_types_are_named(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"qwen2_5_vl_3b\.toml: grpo") as err:
        load_stage_config(GRPOStageConfig, CONFIGS / "qwen2_5_vl_3b.toml", "grpo", overrides)
    assert message in str(err.value)


def test_cli_prints_the_resolved_config_from_a_shipped_name(capsys) -> None:
    rc = main(["train", "dpo", "--config", "qwen2_5_vl_7b", "beta=0.2", "loss_type=[\"ipo\"]",
               "output_root=out", "--print-config"])
    assert rc == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["beta"] == 0.2 and cfg["loss_type"] == ["ipo"]
    assert cfg["model"] == "out/sft" and cfg["learning_rate"] == 5e-7


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "sft", "--config", "missing.toml"], "missing.toml: cannot read"),
    (["train", "sft", "--config", "BAD", "lr"], "override 'lr' is not KEY=VALUE"),
    (["train", "grpo", "--config", "qwen2_5_vl_3b", "dataset="], "needs `dataset`"),
    (["train", "sft", "--config", "qwen2_5_vl_3b", "model=", "output_root=x"], "needs `model`"),
    (["train", "sft", "--config", "qwen2_5_vl_3b", "dataset=nowhere/x"],
     "cannot load"),
    # the judge is checked before the dataset is read (here it could not be)
    (["train", "grpo", "--config", "qwen2_5_vl_3b", "dataset=nowhere/x", "judge.modle=\"m\""],
     "[grpo.judge]: "),
])
def test_cli_usage_errors_are_one_line_and_exit_2(argv: list[str], message: str, tmp_path,
                                                  monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD").write_text("[sft]\n")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_a_config_with_a_stray_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[defaults]\ndataset = "d"\n[sfft]\nmodel = "m"\n')
    with pytest.raises(ConfigError, match=r"c\.toml: \(top level\): unknown key\(s\) sfft; "
                                          "expected defaults, dpo, grpo, sft"):
        load_stage_config(SFTStageConfig, path, "sft")
    path.write_text('sft = 3\n')  # a stage that is not a table: named, not a traceback
    with pytest.raises(ConfigError, match=r"c\.toml: sft: must be a table"):
        load_stage_config(SFTStageConfig, path, "sft")
    path.write_text('[defaults\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_stage_config(SFTStageConfig, path, "sft")
