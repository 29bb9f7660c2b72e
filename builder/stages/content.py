"""The item's image as an OpenAI content part (a data URL with the right MIME type), the
source's description of it when the source has one, and a request without the image for a role
whose model reads text only."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from ..backends.base import ChatRequest, data_url, image_url_part
from ..prompts.wire import DESCRIPTION_HEADER, payload_part

#: Data URLs kept: at least the items in flight in a usual build, so an item's image is encoded
#: once for its plan, every responder sample and every judge call. A miss only re-encodes.
DATA_URLS_KEPT = 256


def image_mime(name: str) -> str:
    """The MIME type of an image file name (`image/png` when the name says nothing)."""
    mime, _ = mimetypes.guess_type(name)
    return mime if mime and mime.startswith("image/") else "image/png"


@lru_cache(maxsize=DATA_URLS_KEPT)
def _data_url(image: bytes, image_name: str) -> str:
    return data_url(image, image_mime(image_name))


def image_content(image: bytes, image_name: str) -> dict[str, Any]:
    """The content part of an image; a fresh dict each time, the encoded URL shared."""
    return image_url_part(_data_url(image, image_name))


def description_parts(description: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The source's description of the picture as a labelled payload part (none without one):
    what a caption would tell a model, and the only way the offline backend learns what a
    picture shows."""
    return [payload_part(DESCRIPTION_HEADER, dict(description))] if description else []


def text_only(request: ChatRequest) -> ChatRequest:
    """`request` without its image parts, for a text-only model or server (a role with
    `images = false`): llama-cpp-python serving a text GGUF, say, cannot take content parts."""
    def strip(message: dict[str, Any]) -> dict[str, Any]:
        content = message.get("content")
        if not isinstance(content, list):
            return message
        texts = [p.get("text", "") for p in content
                 if isinstance(p, dict) and p.get("type") == "text"]
        return {**message, "content": "\n\n".join(texts)}

    return replace(request, messages=[strip(m) for m in request.messages])
