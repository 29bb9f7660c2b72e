"""Streaming rows into `SPLIT-0000x-of-0000N.parquet` shards, one bounded row group at a time.

Memory holds at most one row group of rows (bounded by bytes and by rows), whatever the split's
length. Writer options follow `datasets`' own parquet writer (per-column compression and
encodings, content-defined chunking so re-uploads deduplicate on the Hub's storage, a page
index), and nothing time- or host-dependent enters a file, so equal rows give equal bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, config
from datasets.arrow_writer import get_parquet_column_options
from datasets.utils.py_utils import convert_file_size_to_int

from ...errors import ReleaseError

#: `datasets`' own caps: row groups of at most 100 MB, shards of at most 500 MB (uncompressed).
MAX_ROW_GROUP_BYTES = convert_file_size_to_int(config.MAX_ROW_GROUP_SIZE)
MAX_SHARD_BYTES = convert_file_size_to_int(config.MAX_SHARD_SIZE)
#: Small row groups keep random access (the Hub viewer, `datasets` indexing) cheap for images.
MAX_ROW_GROUP_ROWS = 100


@dataclass(frozen=True)
class Shard:
    """One written shard: its file, rows and sizes (Arrow bytes and bytes on disk)."""

    path: Path
    num_rows: int
    num_bytes: int
    file_bytes: int


def estimated_bytes(value: Any) -> int:
    """A cheap upper-bound-ish size of a row's payload (bytes, text, small scalars)."""
    if isinstance(value, bytes | str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(estimated_bytes(v) for v in value.values()) + 8 * len(value)
    if isinstance(value, list | tuple):
        return sum(estimated_bytes(v) for v in value) + 8
    return 8


class RowTooLarge(ReleaseError, ValueError):
    """A row whose estimated size alone exceeds the row-group limit (it could never be written
    within bounds)."""


class ShardWriter:
    """Write rows of one split into `directory`; `close()` names the shards `-of-N`.

    Shards are written under temporary names and renamed once their count is known, so a
    reader never sees a half-written file under a final name.
    """

    def __init__(self, directory: Path, split: str, features: Features, *,
                 row_group_bytes: int = MAX_ROW_GROUP_BYTES,
                 row_group_rows: int = MAX_ROW_GROUP_ROWS,
                 shard_bytes: int = MAX_SHARD_BYTES) -> None:
        if row_group_bytes > MAX_ROW_GROUP_BYTES or row_group_bytes <= 0:
            raise ValueError(f"row_group_bytes must be in 1..{MAX_ROW_GROUP_BYTES}")
        self.directory = directory
        self.split = split
        self.schema = features.arrow_schema
        self._options = get_parquet_column_options(features, self.schema)
        self._row_group_bytes = row_group_bytes
        self._row_group_rows = max(1, row_group_rows)
        self._shard_bytes = shard_bytes
        self._buffer: list[Mapping[str, Any]] = []
        self._buffer_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._parts: list[list[int]] = []  # per part: rows, arrow bytes, estimated bytes

    def _part_path(self, index: int) -> Path:
        return self.directory / f".{self.split}-part-{index:05d}.parquet.tmp"

    def write(self, row: Mapping[str, Any]) -> None:
        """Buffer `row`, flushing a row group when full; raises `RowTooLarge` (and writes
        nothing) for a row that cannot fit in any row group."""
        size = estimated_bytes(row)
        if size > self._row_group_bytes:
            raise RowTooLarge(f"the row is {size} bytes; a row group holds at most "
                              f"{self._row_group_bytes}")
        if self._buffer and self._buffer_bytes + size > self._row_group_bytes:
            self._flush()
        self._buffer.append(row)
        self._buffer_bytes += size
        if len(self._buffer) >= self._row_group_rows or self._buffer_bytes >= self._row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        if self._writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self._part_path(len(self._parts)), self.schema,
                use_content_defined_chunking=config.DEFAULT_CDC_OPTIONS,
                write_page_index=True, **self._options)
            self._writer.add_key_value_metadata(
                {"content_defined_chunking": json.dumps(config.DEFAULT_CDC_OPTIONS)})
            self._parts.append([0, 0, 0])
        self._writer.write_table(table, row_group_size=len(self._buffer))
        part = self._parts[-1]
        part[0] += table.num_rows
        part[1] += table.nbytes
        part[2] += self._buffer_bytes
        self._buffer = []
        self._buffer_bytes = 0
        if part[2] >= self._shard_bytes:
            self._writer.close()
            self._writer = None

    def close(self) -> list[Shard]:
        """Flush, close and rename every part to its final `SPLIT-0000x-of-0000N` name."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self._parts:  # an empty split is still a (zero-row) shard
            self.directory.mkdir(parents=True, exist_ok=True)
            pq.write_table(self.schema.empty_table(), self._part_path(0), **self._options)
            self._parts.append([0, 0, 0])
        total = len(self._parts)
        shards = []
        for index, (rows, nbytes, _) in enumerate(self._parts):
            final = self.directory / f"{self.split}-{index:05d}-of-{total:05d}.parquet"
            os.replace(self._part_path(index), final)
            shards.append(Shard(final, rows, nbytes, final.stat().st_size))
        return shards

    def abort(self) -> None:
        """Drop what was written (the caller discards the staging folder anyway)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for index in range(len(self._parts)):
            self._part_path(index).unlink(missing_ok=True)
