"""The reference SFT → DPO → GRPO curriculum on Qwen2.5-VL with TRL.

    safer-toolkit train sft|dpo|grpo --config qwen2_5_vl_3b [KEY=VALUE ...]

Modules: `config` (one TOML per model size, overrides), `sft` / `dpo` / `grpo` (a stage config
dataclass and `train(cfg)` each), `stage` (rows, model, saving, provenance), `rewards` (TRL
reward functions), `judge` (the semantic judge's request and parser), `easyr1` (reading the
authors' EasyR1 format), `easyr1_reward` (the reward file for the authors' EasyR1 fork),
`processing` (an image-only Qwen2.5-VL processor where torchvision is
missing). Importing this package pulls in no torch: the heavy imports happen inside `train`.
"""
