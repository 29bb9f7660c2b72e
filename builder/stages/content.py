"""The item's image as an OpenAI content part (a data URL with the right MIME type), and the
source's description of it when the source has one."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from safer_toolkit.builder.backends.base import data_url, image_url_part
from safer_toolkit.builder.prompts.wire import DESCRIPTION_HEADER, payload_part

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
