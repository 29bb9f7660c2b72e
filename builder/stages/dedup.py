"""Identity keys of an (image, question) item and the indexes that find its duplicates.

Three keys decide whether two items are "the same prompt": the exact image (sha256 of the
original bytes), the picture as a person sees it (a 64-bit perceptual hash, so a re-encoded or
resized copy still matches) and the question as text (case, Unicode form, spacing and punctuation
folded away). The same keys screen the pool against an exclusion list of benchmark items.
"""

from __future__ import annotations

import itertools
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from PIL import Image

from ...validation.report import AtomicWriter
from ..sources.base import SourceItem
from ..sources.intake import open_image

MAX_PIXELS = 64_000_000
"""Images above this are not decoded for hashing (they are rejected as unreadable)."""

_NON_WORD = re.compile(r"[\W_]+")


def normalise_question(text: str) -> str:
    """NFKC, casefold, and every run of punctuation/white space as one space."""
    return " ".join(_NON_WORD.split(unicodedata.normalize("NFKC", text).casefold())).strip()


def perceptual_hash(image: bytes) -> int:
    """imagehash's pHash as a 64-bit int, decoding one image at a bounded cost.

    JPEGs are decoded at a reduced scale (`draft`) and large images box-reduced to at least 128
    px before pHash's own 32x32 resize: the hash is the same to within a bit or two, at a
    fraction of the decode time. Raises ValueError for anything that is not a decodable image.
    """
    with open_image(image) as im:  # UnreadableImage (a ValueError) for what is not an image
        width, height = im.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"image of {width}x{height} pixels exceeds {MAX_PIXELS}")
        try:
            im.draft("L", (128, 128))
            frame = im.convert("L")
        except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # broken pixel data
            raise ValueError(f"undecodable image: {exc}") from exc
    import imagehash  # here, not at import: modules that only normalise questions stay light

    factor = min(frame.size) // 128
    if factor >= 2:
        frame = frame.reduce(factor)
    return int(str(imagehash.phash(frame)), 16)


@dataclass(frozen=True)
class ItemKeys:
    sha256: str
    phash: int
    question: str

    @classmethod
    def of(cls, item: SourceItem) -> ItemKeys:
        """The item's keys; raises ValueError when its image cannot be decoded."""
        return cls(item.image_sha256, perceptual_hash(item.image),
                   normalise_question(item.question))


class PHashIndex:
    """Finds a stored hash within `max_distance` bits without comparing all pairs.

    Pigeonhole banding: split the 64 bits into max_distance + 1 bands; two hashes that differ in
    at most max_distance bits agree exactly on at least one band, so only hashes sharing a band
    value are compared.
    """

    def __init__(self, max_distance: int = 0) -> None:
        if not 0 <= max_distance < 32:
            raise ValueError("max_distance must be in 0..31")
        self.max_distance = max_distance
        bands = max_distance + 1
        edges = [round(i * 64 / bands) for i in range(bands + 1)]
        self._bands = [(lo, (1 << (hi - lo)) - 1) for lo, hi in itertools.pairwise(edges)]
        self._buckets: dict[tuple[int, int], list[int]] = {}

    def add(self, value: int) -> None:
        for band, (shift, mask) in enumerate(self._bands):
            self._buckets.setdefault((band, (value >> shift) & mask), []).append(value)

    def near(self, value: int) -> bool:
        for band, (shift, mask) in enumerate(self._bands):
            for other in self._buckets.get((band, (value >> shift) & mask), ()):
                if (value ^ other).bit_count() <= self.max_distance:
                    return True
        return False


@dataclass
class ExclusionList:
    """Keys of benchmark items that must never enter a training pool.

    File format (UTF-8, one entry a line, `#` starts a comment line):

        sha256:<64 hex digits>      exact image bytes
        phash:<16 hex digits>       perceptual hash as computed by `perceptual_hash`
        question:<text>             question, normalised with `normalise_question` on load

    Building one for MM-SafetyBench, FigStep, MSSBench, SIUO, VLSBench, JailBreakV-28K,
    MMSafeAware and the SPA-VL / BeaverTails-V evaluation splits: load each benchmark with the
    loaders of `builder.sources` (an image folder with a metadata.jsonl, a parquet file, or
    `hub.load_spa_vl(split=...)` / `hub.load_beavertails_v(split="evaluation")`), then

        ExclusionList.from_items(chain(bench_a, bench_b)).save("exclusions.txt")

    and pass `ExclusionList.load("exclusions.txt")` to `assign_splits`. Generic questions that
    many benchmarks share ("What is in this image?") are better left out of the question entries
    (`from_items(..., questions=False)`) unless they should really disappear from the pool.
    """

    sha256: set[str] = field(default_factory=set)
    phash: set[int] = field(default_factory=set)
    questions: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.sha256) + len(self.phash) + len(self.questions)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExclusionList:
        path = Path(path)
        out = cls()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kind, _, value = line.partition(":")
            value = value.strip()
            if kind == "sha256" and re.fullmatch(r"[0-9a-f]{64}", value):
                out.sha256.add(value)
            elif kind == "phash" and re.fullmatch(r"[0-9a-f]{16}", value):
                out.phash.add(int(value, 16))
            elif kind == "question" and (question := normalise_question(value)):
                out.questions.add(question)
            else:
                raise ValueError(f"{path}:{number}: not a 'sha256:', 'phash:' or 'question:' entry")
        return out

    @classmethod
    def default(cls) -> ExclusionList:
        """The list shipped with the package (documented, empty until a maintainer fills it)."""
        with resources.as_file(resources.files(__package__) / "benchmark_exclusions.txt") as path:
            return cls.load(path)

    @classmethod
    def from_items(cls, items: Iterable[SourceItem], *, questions: bool = True) -> ExclusionList:
        """The keys of `items` (`ItemKeys`); an image that cannot be decoded for its perceptual
        hash still contributes its exact hash and question."""
        out = cls()
        for item in items:
            out.sha256.add(item.image_sha256)
            try:
                keys = ItemKeys.of(item)
            except ValueError:  # an undecodable image: no perceptual hash
                question = normalise_question(item.question)
            else:
                out.phash.add(keys.phash)
                question = keys.question
            if questions and question:
                out.questions.add(question)
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write sorted entries atomically (temp file + rename), so equal lists are equal files."""
        path = Path(path)
        lines = ["# safer-toolkit benchmark exclusion list (see ExclusionList)"]
        lines += [f"sha256:{v}" for v in sorted(self.sha256)]
        lines += [f"phash:{v:016x}" for v in sorted(self.phash)]
        lines += [f"question:{v}" for v in sorted(self.questions)]
        with AtomicWriter(path) as out:
            out.file.write(("\n".join(lines) + "\n").encode("utf-8"))
