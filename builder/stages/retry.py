"""Feedback turns: a rejected reply goes back to the model with the reasons, as a new request.

The feedback changes the messages, so the retry is a different call with its own cache entry:
a resumed build replays the same conversation and pays for none of it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from safer_toolkit.builder.backends.base import ChatRequest

MAX_FEEDBACK_LINES = 12


def with_feedback(request: ChatRequest, reply: str, problems: Sequence[str],
                  instruction: str) -> ChatRequest:
    """`request` continued with the model's `reply` and a user turn listing `problems`."""
    listed = "\n".join(f"- {p}" for p in problems[:MAX_FEEDBACK_LINES])
    more = len(problems) - MAX_FEEDBACK_LINES
    if more > 0:
        listed += f"\n- … and {more} more"
    feedback = f"Your reply was rejected:\n{listed}\n{instruction}"
    messages = [*request.messages,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": [{"type": "text", "text": feedback}]}]
    return replace(request, messages=messages)
