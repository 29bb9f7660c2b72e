"""Loaders for local files: a JSONL file, a parquet file, or an image folder with a metadata file.

A column mapping (`Columns`) says which field is the question, the image, the id, the category
and the label; the caller names the source (`source_dataset`) and its licence. Images are kept
as their original encoded bytes. Every record passes the guards of `intake`: a bad one is
reported to `on_bad` with its file and line (JSONL, 1-based) or row (parquet, 0-based) and
skipped; only a source that cannot be read at all raises `SourceError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .base import SourceItem
from .intake import (
    DEFAULT_LIMITS,
    BadRecord,
    Columns,
    Limits,
    OnBad,
    RecordError,
    SourceError,
    bad_reason,
    image_from_value,
    log_bad,
    make_item,
    question_text,
    taxonomy_category,
    taxonomy_label,
)

__all__ = ["Columns", "Limits", "load_image_folder", "load_jsonl", "load_local", "load_parquet"]

METADATA_FILES = ("metadata.jsonl", "questions.jsonl", "metadata.parquet")
DEFAULT_COLUMNS = Columns()
FOLDER_COLUMNS = Columns(image="file_name")
PathLike = str | os.PathLike[str]
#: A slice of one file that loads on its own (`sources.parts`): (start, stop, records before)
#: — byte offsets of line starts for JSONL, row-group numbers for parquet.
Part = tuple[int, int, int]


class _Reader:
    """Turns one record (a mapping) into a SourceItem under a column mapping."""

    def __init__(self, file: Path, columns: Columns, image_root: Path | None, source_dataset: str,
                 source_license: str, category_map: Mapping[str, str | None] | None,
                 label_map: Mapping[Any, str | None] | None, limits: Limits) -> None:
        if not source_dataset or not source_license:
            raise SourceError("source_dataset and source_license are required")
        self.file, self.columns, self.root = file, columns, image_root
        self.source_dataset, self.source_license = source_dataset, source_license
        self.category_map, self.label_map, self.limits = category_map, label_map, limits

    def item(self, record: Any, position: int, unit: str) -> SourceItem:
        if not isinstance(record, Mapping):
            raise RecordError("record is not an object")
        c = self.columns
        source_id = f"{self.file.stem}-{position}"
        if c.id is not None:
            value = record.get(c.id)
            if value is None or value == "" or isinstance(value, dict | list):
                raise RecordError(f"missing id in column {c.id!r}")
            source_id = str(value)[:200]
        question = question_text(record.get(c.question), self.limits)
        image = image_from_value(record.get(c.image), self.root, self.limits, source_id)
        category = (taxonomy_category(record.get(c.risk_category), self.category_map)
                    if c.risk_category else None)
        label = taxonomy_label(record.get(c.label), self.label_map) if c.label else None
        return make_item(source_dataset=self.source_dataset, source_license=self.source_license,
                         source_id=source_id, question=question, image=image,
                         risk_category=category, label=label,
                         meta={"file": self.file.name, unit: position})


def _lines(f: BinaryIO, limit: int, number: int = 0,
           stop: int | None = None) -> Iterator[tuple[int, bytes | None]]:
    """(number, line) pairs holding at most `limit` bytes at a time; None for an overlong line.
    Numbering goes on from `number`; reading ends at byte offset `stop` (a line start)."""
    while (stop is None or f.tell() < stop) and (line := f.readline(limit + 1)):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while (more := f.readline(limit + 1)) and not more.endswith(b"\n"):
                pass
            yield number, None
        else:
            yield number, line


def load_jsonl(path: PathLike, *, source_dataset: str, source_license: str,
               columns: Columns = DEFAULT_COLUMNS, image_root: PathLike | None = None,
               category_map: Mapping[str, str | None] | None = None,
               label_map: Mapping[Any, str | None] | None = None, limits: Limits = DEFAULT_LIMITS,
               on_bad: OnBad = log_bad, part: Part | None = None) -> Iterator[SourceItem]:
    """Items from a JSONL file; image paths resolve inside `image_root` (default: its folder).
    `part` (start, stop, lines before start) reads only the lines in bytes [start, stop)."""
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    reader = _Reader(path, columns, root, source_dataset, source_license, category_map,
                     label_map, limits)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None
    with f:
        start, stop, before = part or (0, None, 0)
        f.seek(start)
        for number, line in _lines(f, limits.max_line_bytes, before, stop):
            where = f"line {number}"
            if line is None:
                on_bad(BadRecord(str(path), where, f"line over {limits.max_line_bytes} bytes"))
                continue
            if not line.strip():
                continue
            try:
                item = reader.item(json.loads(line), number, "line")
            except Exception as exc:  # JSON, UTF-8, nesting, record errors: this record only
                on_bad(BadRecord(str(path), where, bad_reason(exc)))
                continue
            yield item


def load_parquet(path: PathLike, *, source_dataset: str, source_license: str,
                 columns: Columns = DEFAULT_COLUMNS, image_root: PathLike | None = None,
                 category_map: Mapping[str, str | None] | None = None,
                 label_map: Mapping[Any, str | None] | None = None, limits: Limits = DEFAULT_LIMITS,
                 on_bad: OnBad = log_bad, batch_rows: int = 64,
                 part: Part | None = None) -> Iterator[SourceItem]:
    """Items from a parquet file, one row group at a time and only the mapped columns.

    The image column may hold paths (resolved inside `image_root`, default: the file's folder),
    binary, or `datasets` Image structs. An unreadable row group is reported and skipped.
    `part` (start, stop, rows before start) reads only row groups [start, stop).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    reader = _Reader(path, columns, root, source_dataset, source_license, category_map,
                     label_map, limits)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: not a readable parquet file ({exc})") from None
    wanted = [c for c in (columns.question, columns.image, columns.id, columns.risk_category,
                          columns.label) if c is not None]
    missing = [c for c in wanted if c not in parquet.schema_arrow.names]
    if missing:
        raise SourceError(f"{path}: missing column(s) {', '.join(missing)}")
    first, last, row = part or (0, parquet.num_row_groups, 0)
    for group in range(first, last):
        rows = parquet.metadata.row_group(group).num_rows
        try:
            table = parquet.read_row_group(group, columns=list(dict.fromkeys(wanted)))
        except (OSError, pa.ArrowException) as exc:
            on_bad(BadRecord(str(path), f"rows {row}-{row + rows - 1}", f"unreadable: {exc}"))
            row += rows
            continue
        for batch in table.to_batches(max_chunksize=batch_rows):
            for record in batch.to_pylist():
                try:
                    item = reader.item(record, row, "row")
                except Exception as exc:  # whatever one row raises skips that row only
                    on_bad(BadRecord(str(path), f"row {row}", bad_reason(exc)))
                    continue
                finally:
                    row += 1
                yield item


def load_image_folder(folder: PathLike, *, source_dataset: str, source_license: str,
                      metadata: str | None = None, columns: Columns = FOLDER_COLUMNS,
                      category_map: Mapping[str, str | None] | None = None,
                      label_map: Mapping[Any, str | None] | None = None,
                      limits: Limits = DEFAULT_LIMITS, on_bad: OnBad = log_bad,
                      part: Part | None = None) -> Iterator[SourceItem]:
    """Items from a folder of images described by a metadata file inside it.

    The metadata file (default: the first of METADATA_FILES present; the `datasets` imagefolder
    convention) names each image by its path relative to the folder, in `columns.image`
    (`file_name` by default). Paths that leave the folder are rejected record by record.
    """
    folder = Path(folder)
    meta_path = metadata_file(folder, metadata)
    loader = load_parquet if meta_path.suffix == ".parquet" else load_jsonl
    yield from loader(meta_path, source_dataset=source_dataset, source_license=source_license,
                      columns=columns, image_root=folder, category_map=category_map,
                      label_map=label_map, limits=limits, on_bad=on_bad, part=part)


def metadata_file(folder: Path, metadata: str | None = None) -> Path:
    """The file describing an image folder's images (`metadata`, else the first of
    METADATA_FILES there); raises `SourceError` when there is none or it is elsewhere."""
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder")
    if metadata is None:
        metadata = next((m for m in METADATA_FILES if (folder / m).is_file()), None)
        if metadata is None:
            raise SourceError(f"{folder}: no {' / '.join(METADATA_FILES)} describing the images")
    meta_path = folder / metadata
    if meta_path.resolve().parent != folder.resolve():
        raise SourceError(f"{folder}: the metadata file must be directly inside the folder")
    return meta_path


def load_local(path: PathLike, **options: Any) -> Iterator[SourceItem]:
    """Dispatch on what `path` is: a folder, a .jsonl file or a .parquet file."""
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path, **options)
    if path.suffix == ".parquet":
        return load_parquet(path, **options)
    if path.suffix in (".jsonl", ".json"):
        return load_jsonl(path, **options)
    raise SourceError(f"{path}: expected a folder, a .jsonl file or a .parquet file")
