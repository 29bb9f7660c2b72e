"""The reference SFT → DPO → GRPO curriculum on Qwen2.5-VL with TRL (SPEC §1, §6)."""
