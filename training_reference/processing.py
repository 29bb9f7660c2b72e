"""Loading a vision-language processor, including where torchvision is missing.

The stock Qwen2.5-VL processor builds a video processor that needs torchvision; without it
`AutoProcessor` quietly falls back to the bare tokenizer and TRL then refuses the model as
text-only. The toolkit trains on images only, so an image-only subclass (registered with
`AutoProcessor`, so saved checkpoints load back) keeps CPU-only machines and CI working.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, AutoProcessor, ProcessorMixin, Qwen2_5_VLConfig
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor

from ..errors import TrainingError


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without its video part (no torchvision needed)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                 chat_template: str | None = None, **kwargs: Any) -> None:
        super().__init__(image_processor=image_processor, tokenizer=tokenizer,
                         video_processor=None, chat_template=chat_template, **kwargs)


AutoProcessor.register(Qwen2_5_VLConfig, ImageOnlyQwen2_5_VLProcessor, exist_ok=True)

_IMAGE_ONLY = {"qwen2_5_vl": ImageOnlyQwen2_5_VLProcessor}


class NotAVisionProcessor(TrainingError, RuntimeError):
    """The checkpoint gave a text-only processing class."""


def load_processor(path: str, **kwargs: Any) -> ProcessorMixin:
    """The model's processor; the image-only one where the stock one cannot be built."""
    processor = AutoProcessor.from_pretrained(path, **kwargs)
    if isinstance(processor, ProcessorMixin) and getattr(processor, "image_processor", None):
        return processor
    model_type = AutoConfig.from_pretrained(path).model_type
    fallback = _IMAGE_ONLY.get(model_type)
    if fallback is None:
        raise NotAVisionProcessor(
            f"{path}: AutoProcessor returned {type(processor).__name__}, not an image processor "
            f"(model type {model_type!r}); is torchvision installed and importable?")
    return fallback.from_pretrained(path, **kwargs)
