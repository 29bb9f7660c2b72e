"""Model backends: an OpenAI-compatible client, the offline generator and the `serve` app."""

from .base import (
    CallFailed,
    ChatBackend,
    ChatRequest,
    ChatResult,
)

__all__ = ["CallFailed", "ChatBackend", "ChatRequest", "ChatResult"]
