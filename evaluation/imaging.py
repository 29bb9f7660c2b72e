"""Images as the authors' evaluation sends them (`--image-resize authors`).

Their inference and judge scripts (`eval/utils/image_utils.py` in their code) send every image
as an EXIF-transposed RGB JPEG (quality 92, optimised) scaled, aspect kept, with LANCZOS into
338²…512² pixels: larger images down to 512², smaller ones up to 338². The same picture at
another size or encoding gives the model (and the judge) other pixels, so scores are only
comparable with the paper's under the same preprocessing. By default (`none`) the release's
original bytes are sent.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageOps

IMAGE_RESIZES = ("none", "authors")
AUTHORS_MIN_PIXELS = 338 * 338
AUTHORS_MAX_PIXELS = 512 * 512
AUTHORS_JPEG_QUALITY = 92


def _scaled(image: Image.Image, pixels: int) -> Image.Image:
    scale = math.sqrt(pixels / (image.width * image.height))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, resample=Image.Resampling.LANCZOS)


def authors_image(data: bytes, name: str) -> tuple[bytes, str]:
    """(JPEG bytes, `name` with a .jpg suffix) of an encoded image, preprocessed as the
    authors' evaluation does; raises `OSError`/`ValueError` for an image that cannot be
    decoded (PIL's decompression-bomb limit applies)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image = ImageOps.exif_transpose(opened)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.width * image.height > AUTHORS_MAX_PIXELS:
        image = _scaled(image, AUTHORS_MAX_PIXELS)
    if image.width * image.height < AUTHORS_MIN_PIXELS:
        image = _scaled(image, AUTHORS_MIN_PIXELS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=AUTHORS_JPEG_QUALITY, optimize=True)
    return out.getvalue(), Path(name).with_suffix(".jpg").name
