"""The item's image as an OpenAI content part (a data URL with the right MIME type)."""

from __future__ import annotations

import mimetypes
from typing import Any

from safer_toolkit.builder.backends.base import image_part


def image_mime(name: str) -> str:
    """The MIME type of an image file name (`image/png` when the name says nothing)."""
    mime, _ = mimetypes.guess_type(name)
    return mime if mime and mime.startswith("image/") else "image/png"


def image_content(image: bytes, image_name: str) -> dict[str, Any]:
    return image_part(image, image_mime(image_name))
