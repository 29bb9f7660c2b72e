"""A tiny random Qwen2.5-VL with its processor and a tokenizer trained here, saved to a folder.

Nothing is downloaded: the tokenizer is a byte-level BPE trained in-process on the texts it will
see, the chat template is the Qwen2.5-VL one TRL ships, and the model is the real
`Qwen2_5_VLForConditionalGeneration` architecture at a size a CPU trains in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
PATCH = 14
MERGE = 2
HIDDEN = 64
HEADS = 4


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096,
                    whole: Sequence[str] = ()):
    """A byte-level BPE tokenizer with Qwen's special tokens and chat template; strings in
    `whole` become single (ordinary, decoded) tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    tokenizer.chat_template = qwen2_5_vl_chat_template
    tokenizer.add_tokens([AddedToken(w, special=False, normalized=False) for w in whole])
    return tokenizer


def warm_start(model, tokenizer, conversations: list[list[dict[str, str]]], *, steps: int,
               lr: float = 5e-3, batch: int = 4, assistant_only: bool = True) -> float:
    """Teach the language model the toolkit format on text-only conversations (loss on the
    assistant turn only).

    A real policy starts from an instruct model that already writes something like the
    format, so GRPO sees rewards that differ within a group; a random model never would (all
    rewards 0, all advantages 0, no update). Returns the last loss."""
    import torch

    examples = []
    for conversation in conversations:
        prompt = tokenizer.apply_chat_template(conversation[:-1], add_generation_prompt=True,
                                               tokenize=True, return_dict=True)["input_ids"]
        full = tokenizer.apply_chat_template(conversation, tokenize=True,
                                             return_dict=True)["input_ids"]
        assert full[:len(prompt)] == prompt
        examples.append((torch.tensor(full), len(prompt)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        chunk = [examples[(step * batch + j) % len(examples)] for j in range(batch)]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((batch, width), tokenizer.pad_token_id)
        mask = torch.zeros((batch, width), dtype=torch.long)
        labels = torch.full((batch, width), -100)
        for j, (row, prompt_len) in enumerate(chunk):
            ids[j, :len(row)], mask[j, :len(row)] = row, 1
            start = prompt_len if assistant_only else 0
            labels[j, start:len(row)] = row[start:]
        # Project only the supervised positions: the long prompt needs no logits.
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        keep = targets != -100
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden[keep]), targets[keep])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return loss.item()


def build(out_dir: Path, texts: Iterable[str], *, max_pixels: int = 56 * 56,
          whole: Sequence[str] = (), warm: list[list[dict[str, str]]] | None = None,
          warm_steps: int = 0,
          **warm_options: Any) -> Path:
    """Save a tiny Qwen2.5-VL, its processor and tokenizer to `out_dir`; returns `out_dir`.

    `texts` train the tokenizer (`whole` strings become single tokens); `warm` conversations
    (text only) warm-start the model for `warm_steps` steps."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from safer_toolkit.training_reference.processing import ImageOnlyQwen2_5_VLProcessor

    tokenizer = train_tokenizer(texts, whole=whole)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = HIDDEN // HEADS
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": HIDDEN, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": HEADS, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "max_window_layers": 2,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                "mrope_section": [head_dim // 8, head_dim // 8, head_dim // 4]},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
            "patch_size": PATCH, "spatial_merge_size": MERGE, "temporal_patch_size": 2,
            "window_size": PATCH * MERGE * 2, "out_hidden_size": HIDDEN,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    if warm and warm_steps:
        loss = warm_start(model, tokenizer, warm, steps=warm_steps, **warm_options)
        assert math.isfinite(loss), f"warm start diverged (loss {loss})"
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=PATCH, merge_size=MERGE, temporal_patch_size=2,
        min_pixels=(PATCH * MERGE) ** 2, max_pixels=max_pixels)
    processor = ImageOnlyQwen2_5_VLProcessor(image_processor=image_processor,
                                             tokenizer=tokenizer,
                                             chat_template=tokenizer.chat_template)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
