"""A tiny random Qwen2.5-VL with its processor and a tokenizer trained here, saved to a folder.

Nothing is downloaded: the tokenizer is a byte-level BPE trained in-process on the texts it will
see, the chat template is the Qwen2.5-VL one TRL ships, and the model is the real
`Qwen2_5_VLForConditionalGeneration` architecture at a size a CPU trains in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
PATCH = 14
MERGE = 2
HIDDEN = 64
HEADS = 4


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer with Qwen's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
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
    return tokenizer


def warm_start(model, tokenizer, conversations: list[list[dict[str, str]]], *, steps: int,
               lr: float = 3e-3, batch: int = 4) -> float:
    """Teach the language model the chat + toolkit format on text-only conversations.

    A real policy starts from an instruct model that already writes something like the
    format, so GRPO sees rewards that differ within a group; a random model never would (all
    rewards 0, all advantages 0, no update). Returns the last loss."""
    import torch

    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    encoded = [tokenizer(t, return_tensors="pt")["input_ids"][0] for t in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        chunk = [encoded[(step * batch + j) % len(encoded)] for j in range(batch)]
        width = max(len(ids) for ids in chunk)
        ids = torch.full((batch, width), tokenizer.pad_token_id)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for j, row in enumerate(chunk):
            ids[j, :len(row)], mask[j, :len(row)] = row, 1
        loss = model(input_ids=ids, attention_mask=mask,
                     labels=ids.masked_fill(mask == 0, -100)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return float(loss)


def build(out_dir: Path, texts: Iterable[str], *, max_pixels: int = 56 * 56,
          warm: list[list[dict[str, str]]] | None = None, warm_steps: int = 0) -> Path:
    """Save a tiny Qwen2.5-VL, its processor and tokenizer to `out_dir`; returns `out_dir`.

    `texts` train the tokenizer; `warm` conversations (text only) warm-start the model."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from safer_toolkit.training_reference.processing import ImageOnlyQwen2_5_VLProcessor

    tokenizer = train_tokenizer(texts)
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
        warm_start(model, tokenizer, warm, steps=warm_steps)
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
