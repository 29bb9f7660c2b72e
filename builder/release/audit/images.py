"""Figure of the image bytes: does a released picture carry metadata the toolkit wrote?

A released image must be what the model sees and nothing more: a text chunk stating the scene,
the hazards or the attack would be the answer key inside the file. Every distinct image of every
config is read (its header and chunks only, never its pixels):

- PNG: the ancillary metadata chunks `tEXt`, `zTXt`, `iTXt`, `eXIf` and `tIME`;
- JPEG: APP1…APP15 segments (Exif, XMP, …) and `COM` comments (APP0, the JFIF header, is
  image format, not metadata);
- other formats: whatever Pillow reports in `info` beyond the format's own header fields.

`images_with_metadata` counts the images carrying metadata *of ours*: any entry that names
`safer-toolkit`, and any metadata at all in a picture the toolkit drew (source
`safer-toolkit-seed`). Third-party images are kept byte for byte, metadata included;
`source_images_with_metadata` counts those, reported only.
"""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import pyarrow.parquet as pq

from .read import CONFIGS, shards
from .report import Figure
from .thresholds import AuditThresholds

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_METADATA = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}
OURS = b"safer-toolkit"
#: sources whose pictures the toolkit draws itself
TOOLKIT_SOURCES = frozenset({"safer-toolkit-seed"})
_PIL_HEADER_KEYS = {"dpi", "jfif", "jfif_version", "jfif_unit", "jfif_density", "progressive",
                    "progression", "gamma", "transparency", "aspect", "interlace", "loop",
                    "duration", "background", "version", "compression", "adobe",
                    "adobe_transform"}


def png_metadata(data: bytes) -> list[bytes]:
    """The metadata chunks of a PNG (type + payload), walking the chunk list only."""
    found = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind in PNG_METADATA:
            found.append(kind + b":" + data[pos + 8: pos + 8 + length])
        if kind == b"IEND":
            break
        pos += 12 + length
    return found


def jpeg_metadata(data: bytes) -> list[bytes]:
    """APP1–APP15 and COM segments of a JPEG, up to the start of the scan."""
    found = []
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no metadata after this in practice
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if 0xE1 <= marker <= 0xEF or marker == 0xFE:
            found.append(bytes([marker]) + b":" + data[pos + 4: pos + 2 + length])
        pos += 2 + length
    return found


def metadata(data: bytes) -> list[bytes]:
    """Metadata entries of one encoded image (see the module docstring)."""
    if data.startswith(PNG_SIGNATURE):
        return png_metadata(data)
    if data.startswith(b"\xff\xd8"):
        return jpeg_metadata(data)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return [f"{k}:{v}".encode(errors="replace") for k, v in sorted(image.info.items())
                    if k not in _PIL_HEADER_KEYS]
    except (UnidentifiedImageError, OSError, ValueError):
        return []


def image_figures(folder: Path, limits: AuditThresholds) -> list[Figure]:
    seen: set[bytes] = set()
    ours = theirs = 0
    for config in CONFIGS:
        for path in shards(folder, config):
            for batch in pq.ParquetFile(path).iter_batches(columns=["images",
                                                                    "source_dataset"]):
                sources = batch.column("source_dataset").to_pylist()
                for source, images in zip(sources, batch.column("images").to_pylist(),
                                          strict=True):
                    for image in images or ():
                        data = image.get("bytes") or b""
                        digest = hashlib.blake2b(data, digest_size=16).digest()
                        if digest in seen:
                            continue
                        seen.add(digest)
                        entries = metadata(data)
                        if not entries:
                            continue
                        if source in TOOLKIT_SOURCES or any(OURS in e for e in entries):
                            ours += 1
                        else:
                            theirs += 1
    return [Figure("images_with_metadata", "images carrying metadata of ours", ours,
                   limits.images_with_metadata, len(seen), f"{len(seen):,} distinct images"),
            Figure("source_images_with_metadata", "third-party images with their own metadata "
                   "(kept as they are)", theirs, None, len(seen))]
