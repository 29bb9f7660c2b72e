"""`safer-toolkit train sft|dpo|grpo --config FILE [KEY=VALUE ...]`."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import sys

from .config import (
    ConfigError,
    load_stage_config,
    parse_overrides,
)

_CONFIG_CLASSES = {"sft": "SFTStageConfig", "dpo": "DPOStageConfig", "grpo": "GRPOStageConfig"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # One sub-parser per stage, so `STAGE --config FILE KEY=VALUE ...` parses in that order.
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage, help_text in (("sft", "supervised fine-tuning on gold traces"),
                             ("dpo", "preference tuning against perturbed traces"),
                             ("grpo", "RL with format/depth/semantic/protocol rewards")):
        sub = stages.add_parser(stage, help=help_text)
        sub.add_argument("--config", required=True, metavar="FILE",
                         help="TOML with [defaults] and per-stage tables, or the name of a "
                              "shipped config (qwen2_5_vl_3b, qwen2_5_vl_7b)")
        sub.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                         help="override a key of the stage's table (dotted for sub-tables, "
                              "TOML values): learning_rate=2e-5 lora.enabled=true")
        sub.add_argument("--print-config", action="store_true",
                         help="print the resolved stage config as JSON and exit")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"safer_toolkit.training_reference.{args.stage}")
    try:
        cfg = load_stage_config(getattr(module, _CONFIG_CLASSES[args.stage]), args.config,
                                args.stage, parse_overrides(args.overrides))
    except ConfigError as exc:
        print(f"safer-toolkit train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True))
        return 0
    from .stage import StageInputError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = module.train(cfg)
    except (ConfigError, StageInputError) as exc:
        print(f"safer-toolkit train {args.stage}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("stage", "global_steps", "losses", "rows")}))
    print(f"saved to {cfg.output_dir}", file=sys.stderr)
    return 0
