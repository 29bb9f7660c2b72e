"""The one request/response shape every backend speaks (the chat-completions wire protocol).

A request is pure data, so its content hash is the cache key: the model, the messages with every
image replaced by its sha256, the sampling parameters, the response format and the prompt
template version. Never the API key or the base URL: replicas of one deployment share a cache.
A request is treated as immutable once built: its description (what the key hashes and the
cache stores) is computed once, on first use. Server-specific body fields (`extra`: a trace
grammar) are keyed only when present, so requests without them keep their keys; a long text among
them is described by its sha256 (a grammar runs to tens of kB, the same for every sample).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import orjson

from ...errors import EndpointError

_DATA_URL_PREFIX = "data:"


def data_url(data: bytes, mime: str) -> str:
    """`data` as a base64 data URL."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_url_part(url: str) -> dict[str, Any]:
    """An OpenAI content part carrying the image at `url` (a data URL, say)."""
    return {"type": "image_url", "image_url": {"url": url}}


def image_part(data: bytes, mime: str) -> dict[str, Any]:
    """An OpenAI content part carrying an image as a base64 data URL."""
    return image_url_part(data_url(data, mime))


#: Texts in `extra` longer than this are described (and keyed) by their sha256.
_LONG_TEXT = 1024


def _hash_long(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hash_long(v) for k, v in value.items()}
    if isinstance(value, str) and len(value) > _LONG_TEXT:
        return {"sha256": hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest(),
                "chars": len(value)}
    return value


def _hash_images(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("type") == "image_url":
            url = value.get("image_url", {}).get("url", "")
            if url.startswith(_DATA_URL_PREFIX) and "," in url:
                raw = base64.b64decode(url.split(",", 1)[1])
                return {"type": "image_url", "image_sha256": hashlib.sha256(raw).hexdigest()}
        return {k: _hash_images(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hash_images(v) for v in value]
    return value


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions call.

    `sampling` holds wire parameters (temperature, top_p, max_tokens, seed, …);
    `response_format` is the OpenAI `response_format` object or None; `template_version`
    names the prompt template (its hash) that rendered `messages`; `extra` holds body fields a
    server reads beside them (a grammar: `validation.grammar.requests.grammar_extras`).
    """

    model: str
    messages: list[dict[str, Any]]
    sampling: dict[str, Any] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None
    template_version: str = ""
    extra: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        """Everything the key covers, images and long texts by sha256: what the cache stores
        for audit."""
        described = {"model": self.model, "messages": _hash_images(self.messages),
                     "sampling": self.sampling, "response_format": self.response_format,
                     "template_version": self.template_version}
        if self.extra:
            described["extra"] = _hash_long(self.extra)
        return described

    @cached_property
    def described(self) -> bytes:
        """`describe()` as JSON with sorted keys, computed once: the bytes the key hashes and
        the cache stores (images are decoded and hashed here, not on every use)."""
        return orjson.dumps(self.describe(), option=orjson.OPT_SORT_KEYS)

    def key(self) -> str:
        """The content hash that addresses this call in the cache."""
        return hashlib.sha256(self.described).hexdigest()

    def body(self) -> dict[str, Any]:
        """The JSON body to POST to `/chat/completions`."""
        body: dict[str, Any] = {"model": self.model, "messages": self.messages, **self.sampling}
        if self.response_format is not None:
            body["response_format"] = self.response_format
        if self.extra:
            body.update(self.extra)
        return body


@dataclass(frozen=True)
class ChatResult:
    """The first choice of a completion, with accounting.

    `reasoning` is the text a reasoning-model server put beside the answer (`reasoning`, or
    the older `reasoning_content`) when `content` came back empty: the reply extractors read
    the answer from it then, and the cache keeps it so a replay reads the same.
    """

    content: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    from_cache: bool = False
    reasoning: str = ""

    @property
    def text(self) -> str:
        """Where the answer is: the content, else the reasoning field."""
        return self.content if self.content.strip() else self.reasoning


class CallFailed(EndpointError):
    """A call that produced no usable completion after its retries.

    `reason` is a short stable tag (e.g. `http_429`, `http_500`, `timeout`, `connection`,
    `bad_json`, `finish_length`, `finish_content_filter`, `budget`) counted in the manifest.
    `partial` is what the endpoint did return when it ended early (`finish_*`): the builder
    re-asks a cut reply with more room, while an evaluation judges a truncated answer as it
    stands, as the authors do. It is never stored as a successful result. `sent` is False when
    the request never left the process (no API key, the build's budget spent): such a call is
    not counted as sent.
    """

    def __init__(self, reason: str, detail: str = "", *,
                 partial: ChatResult | None = None, sent: bool = True) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.partial = partial
        self.sent = sent


class ChatBackend(Protocol):
    """What every stage calls: the OpenAI-compatible client and the offline generator alike."""

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None: ...
