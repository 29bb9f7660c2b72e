"""Guards every loader applies to untrusted records.

Images are bounded (bytes and pixel count, checked from the header without decoding pixels),
image paths never leave the folder they are given, categories and labels must be taxonomy
values, and a bad record — whatever it raises — becomes a `BadRecord` (file, line/row, reason)
for the caller's `on_bad` instead of an exception that would sink the records after it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from PIL import Image

from ...errors import InputError
from ...schemas import risk_categories, taxonomy
from .base import SourceItem

log = logging.getLogger(__name__)

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
LABELS = tuple(taxonomy()["labels"])


@dataclass(frozen=True)
class Limits:
    """Bounds on untrusted input (defaults fit real VLM datasets with a wide margin)."""

    max_image_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_question_chars: int = 8_000
    max_line_bytes: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Columns:
    """Which field of a record holds what.

    `image` may hold a path relative to the image folder, raw bytes, or a `datasets` Image value
    (`{"bytes": ..., "path": ...}`). `id`, `risk_category` and `label` are optional; without an
    id the record's file and position make a stable one.
    """

    question: str = "question"
    image: str = "image"
    id: str | None = None
    risk_category: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class BadRecord:
    file: str
    where: str  # "line 12", "row 40", "train row 7"
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.where}: {self.reason}"


OnBad = Callable[[BadRecord], None]


def log_bad(bad: BadRecord) -> None:
    """Default `on_bad`: a warning per skipped record."""
    log.warning("skipped %s", bad)


class SourceError(InputError, ValueError):
    """A whole source is unusable (missing file, missing column, unreadable container)."""


def limits_from(table: Mapping[str, Any]) -> Limits:
    """`Limits` from a config table; raises `SourceError` naming the bad key or value."""
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SourceError(f"limits: unknown key(s) {', '.join(unknown)}; expected "
                          f"{', '.join(sorted(known))}")
    for name, value in table.items():
        if type(value) is not int or value < 1:
            raise SourceError(f"limits.{name} must be a positive integer, not {value!r:.40}")
    return Limits(**table)


class RecordError(InputError, ValueError):
    """One record is unusable; loaders turn it into a BadRecord and go on."""


def bad_reason(exc: BaseException) -> str:
    """Why a record was skipped: a `RecordError`'s message, else the exception named (any
    exception one record raises skips that record only)."""
    if isinstance(exc, RecordError):
        return str(exc)
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class UnreadableImage(InputError, ValueError):
    """Bytes Pillow cannot open as an image (or refuses as a decompression bomb)."""


@contextlib.contextmanager
def open_image(data: bytes) -> Iterator[Image.Image]:
    """Encoded image bytes opened lazily: only the header is parsed until pixels are asked for.

    Pillow's decompression-bomb warning is silenced (callers bound the pixel count themselves);
    bytes it cannot open, or refuses past its own pixel limit, raise `UnreadableImage`.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"image too large: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage("not a readable image") from exc
    with image:
        yield image


def image_extension(data: bytes, limits: Limits) -> str:
    """Check encoded image bytes against `limits` from the header only; return the extension."""
    if not data:
        raise RecordError("empty image")
    if len(data) > limits.max_image_bytes:
        raise RecordError(f"image of {len(data)} bytes exceeds {limits.max_image_bytes}")
    try:
        with open_image(data) as image:
            fmt, (width, height) = image.format, image.size
    except UnreadableImage as exc:
        raise RecordError(str(exc)) from None
    if fmt not in IMAGE_FORMATS:
        raise RecordError(f"unsupported image format {fmt}")
    if width * height > limits.max_pixels:
        raise RecordError(f"image of {width}x{height} pixels exceeds {limits.max_pixels}")
    return IMAGE_FORMATS[fmt]


def resolve_inside(root: Path, relative: str) -> Path:
    """`root/relative`, refusing absolute paths, `..`, and symlinks that lead out of `root`."""
    if not relative or "\0" in relative:
        raise RecordError("empty image path")
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or relative.startswith("\\"):
        raise RecordError(f"absolute image path {relative!r}")
    if ".." in posix.parts or ".." in windows.parts:
        raise RecordError(f"image path {relative!r} leaves the image folder")
    base = root.resolve()
    try:
        target = (base / posix).resolve(strict=True)
    except (OSError, RuntimeError):
        raise RecordError(f"image file {relative!r} not found") from None
    if not target.is_relative_to(base):
        raise RecordError(f"image path {relative!r} leads out of the image folder")
    if not target.is_file():
        raise RecordError(f"image path {relative!r} is not a file")
    return target


def read_image_file(root: Path, relative: str, limits: Limits) -> tuple[bytes, str]:
    """The original bytes and file name of an image inside `root`, size-capped before reading
    (a file without an extension is named with its format's)."""
    path = resolve_inside(root, relative)
    size = path.stat().st_size
    if size > limits.max_image_bytes:
        raise RecordError(f"image {relative!r} of {size} bytes exceeds {limits.max_image_bytes}")
    with path.open("rb") as f:
        data = f.read(limits.max_image_bytes + 1)
    return _named(data, path.name, limits, path.name)


def image_from_value(value: Any, root: Path | None, limits: Limits,
                     fallback_stem: str) -> tuple[bytes, str]:
    """Image bytes and a file name from a path, raw bytes, or a `{"bytes", "path"}` value."""
    if isinstance(value, Mapping):
        data, path = value.get("bytes"), value.get("path")
        if data is not None and not isinstance(data, bytes | bytearray | memoryview):
            raise RecordError(f"image bytes of type {type(data).__name__}")
        if data:
            return _named(bytes(data), path, limits, fallback_stem)
        value = path
    if isinstance(value, bytes | bytearray | memoryview):
        return _named(bytes(value), None, limits, fallback_stem)
    if isinstance(value, str) and value:
        if root is None:
            raise RecordError("image given as a path, but the source has no image folder")
        return read_image_file(root, value, limits)
    raise RecordError("no image")


def _named(data: bytes, path: Any, limits: Limits, fallback_stem: str) -> tuple[bytes, str]:
    extension = image_extension(data, limits)
    name = os.path.basename(str(path)) if isinstance(path, str) and path else ""
    if not PurePosixPath(name).suffix:  # also "name." and ".png"
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in fallback_stem)[:80]
        name = f"{safe or 'image'}.{extension}"
    return data, name


def question_text(value: Any, limits: Limits) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError("missing or empty question")
    if len(value) > limits.max_question_chars:
        raise RecordError(f"question of {len(value)} characters exceeds "
                          f"{limits.max_question_chars}")
    return value.strip()


def _taxonomy_value(field: str, value: Any, mapping: Mapping[Any, str | None] | None,
                    types: type | tuple[type, ...], allowed: tuple[str, ...],
                    hint: str = "") -> str | None:
    """A source value as a taxonomy value (directly, or through `mapping`); None if absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, types):
        raise RecordError(f"{field} of type {type(value).__name__}")
    if mapping is not None and value in mapping:
        value = mapping[value]
        if value is None:
            return None
    if value not in allowed:
        raise RecordError(f"unknown {field} {value!r}{hint}")
    return str(value)


def taxonomy_category(value: Any, mapping: Mapping[str, str | None] | None = None) -> str | None:
    """A taxonomy category from a source value (directly, or through `mapping`); None if absent."""
    return _taxonomy_value("risk_category", value, mapping, str, risk_categories())


def taxonomy_label(value: Any, mapping: Mapping[Any, str | None] | None = None) -> str | None:
    """A taxonomy label from a source value (a string, or an int/bool through `mapping`)."""
    return _taxonomy_value("label", value, mapping, (str, int, bool), LABELS,
                           f" (expected {' or '.join(LABELS)})")


def make_item(*, source_dataset: str, source_license: str, source_id: str, question: str,
              image: tuple[bytes, str], risk_category: str | None, label: str | None,
              meta: Mapping[str, Any]) -> SourceItem:
    if label == "harmful" and risk_category == "benign":
        raise RecordError("a harmful item cannot have risk_category 'benign'")
    data, name = image
    return SourceItem(source_dataset=source_dataset, source_id=source_id,
                      source_license=source_license, question=question, image=data,
                      image_name=name, risk_category=risk_category, label=label, meta=dict(meta))
