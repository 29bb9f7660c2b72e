"""Model backends: an OpenAI-compatible client, the offline generator and the `serve` app."""

from safer_toolkit.builder.backends.base import (
    CallFailed,
    ChatBackend,
    ChatRequest,
    ChatResult,
)

__all__ = ["CallFailed", "ChatBackend", "ChatRequest", "ChatResult"]
