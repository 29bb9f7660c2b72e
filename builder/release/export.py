"""Rows → a complete Hugging Face dataset folder: parquet configs, card, schemas, manifest.

Everything is written into a staging folder inside `out_dir` and moved into place entry by
entry only once all of it succeeded, so a failed export leaves the previous release untouched.
`out_dir/.build/` (the builder's cache, logs and state) is never read, written or moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import datasets
import pyarrow

from ... import schemas
from ...errors import ReleaseError
from ..stages.dedup import normalise_question  # the split stage's own
from . import card, stats
from .audit import AuditThresholds
from .checks import trace_problems
from .easyr1 import EasyR1Writer
from .features import SPLITS, checked_turn, features, row_problems
from .shards import (
    MAX_ROW_GROUP_BYTES,
    MAX_ROW_GROUP_ROWS,
    MAX_SHARD_BYTES,
    RowTooLarge,
    ShardWriter,
)

STAGING = ".release-tmp"
#: top-level entries the export owns; anything else in `out_dir` is left alone
MANAGED = (*SPLITS, "easyr1", "schemas", "assets", "build.toml", "manifest.json", "LICENSE",
           "README.md")
RELEASE_FORMAT = 1


class ExportError(ReleaseError, ValueError):
    """Rows that cannot be released; the message names the config, row number and id."""


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:16]


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _Seen:
    """Image and question fingerprints per config, to prove configs share neither."""

    def __init__(self) -> None:
        self.owner: dict[bytes, str] = {}
        self.shared = {"images": 0, "questions": 0}

    def add(self, config: str, row: Mapping[str, Any]) -> list[str]:
        prompt = row["messages"] if config == "sft" else row["prompt"]
        keys = [("images", b"i" + _digest(img["bytes"])) for img in row["images"]]
        question = normalise_question(checked_turn(prompt, "user"))
        keys.append(("questions", b"q" + _digest(question.encode())))
        problems = []
        for kind, key in keys:
            other = self.owner.setdefault(key, config)
            if other != config:
                self.shared[kind] += 1
                problems.append(f"its {kind[:-1]} is already in config `{other}`")
        return problems


def _write_config(staging: Path, config: str, rows: Iterable[Mapping[str, Any]], seen: _Seen,
                  limits: Mapping[str, int],
                  also: Callable[[Mapping[str, Any]], None] | None = None) -> dict[str, Any]:
    """Check and write one config's rows (each written row also goes to `also`)."""
    split = SPLITS[config]
    writer = ShardWriter(staging / config, split, features(config), **limits)
    try:
        for index, row in enumerate(rows):
            problems = row_problems(config, row)
            if not problems:
                problems = trace_problems(config, row) + seen.add(config, row)
            if not problems:
                try:
                    writer.write(row)
                except RowTooLarge as exc:
                    problems = [str(exc)]
            if problems:
                rid = row.get("id") if isinstance(row, Mapping) else None
                raise ExportError(f"{config} row {index} (id {rid!r}): " + "; ".join(problems))
            if also is not None:
                also(row)
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    return {
        "split": split,
        "num_rows": sum(s.num_rows for s in shards),
        "num_bytes": sum(s.num_bytes for s in shards),
        "download_size": sum(s.file_bytes for s in shards),
        "files": [f"{config}/{s.path.name}" for s in shards],
    }


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _install(staging: Path, out_dir: Path) -> None:
    """Move every staged entry over its published counterpart; drop stale managed entries."""
    trash = staging / ".replaced"
    trash.mkdir()
    for name in MANAGED:
        new, old = staging / name, out_dir / name
        if old.is_dir() and not old.is_symlink():
            os.replace(old, trash / name)  # a folder cannot be replaced in one step
        elif (old.exists() or old.is_symlink()) and not new.exists():
            old.unlink()
        if new.exists():
            os.replace(new, old)  # a file is swapped atomically


def write_dataset(out_dir: Path, rows: Mapping[str, Iterable[Mapping[str, Any]]], *,
                  manifest: Mapping[str, Any], build_config: str | None = None,
                  row_group_bytes: int = MAX_ROW_GROUP_BYTES,
                  row_group_rows: int = MAX_ROW_GROUP_ROWS,
                  shard_bytes: int = MAX_SHARD_BYTES,
                  audit: AuditThresholds | None = None) -> dict[str, Any]:
    """Write the release into `out_dir`; returns the summary (also in `manifest.json`, with the
    audit's result under `audit` when there is one).

    `rows` maps config names (`sft`, `dpo`, `grpo`, `eval`) to iterables of row dicts in the
    contract's format; they are consumed once, streamed. Raises `ExportError` on a row that
    breaks the format, a trace that breaks the release's promises, or an image or question
    shared between configs — a release is exactly the rows given, or nothing. With `audit`,
    the written files are audited against those bounds before the card is rendered: the figures
    go to `manifest.json` (`audit`) and the card's "Quality" section.
    """
    out_dir = Path(out_dir)
    unknown = sorted(set(rows) - set(SPLITS))
    if unknown:
        raise ExportError(f"unknown config(s) {', '.join(unknown)}; the release has "
                          f"{', '.join(SPLITS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    limits = {"row_group_bytes": row_group_bytes, "row_group_rows": row_group_rows,
              "shard_bytes": shard_bytes}
    try:
        seen = _Seen()
        configs: dict[str, dict[str, Any]] = {}
        # the GRPO (train) and eval (val) rows, also in the authors' EasyR1 format
        with EasyR1Writer(staging / "easyr1") as twin:
            for name in SPLITS:
                if name in rows:
                    configs[name] = _write_config(staging, name, rows[name], seen, limits,
                                                  twin.writer_for(name))
        summary: dict[str, Any] = {"configs": configs, "overlap": dict(seen.shared)}
        if "grpo" in configs:
            summary["easyr1"] = twin.counts
        else:
            shutil.rmtree(staging / "easyr1")
        for name in (*schemas.SCHEMA_FILES, *schemas.DATA_FILES):
            _write_bytes(staging / "schemas" / name, schemas.read_bytes(name))
        if build_config is not None:
            _write_bytes(staging / "build.toml", build_config.encode())
        release = {
            "format": RELEASE_FORMAT,
            "writer": {"pyarrow": pyarrow.__version__, "datasets": datasets.__version__},
            **summary,
            "sha256": {f: sha256_file(staging / f) for c in configs.values() for f in c["files"]},
        }
        audited = None
        if audit is not None:
            from .audit import audit_folder

            audited = audit_folder(staging, audit).to_json()
            manifest = {**manifest, "audit": audited}
        _write_bytes(staging / "manifest.json", _json_bytes({**manifest, "release": release}))
        statistics = stats.compute({name: [staging / f for f in c["files"]]
                                    for name, c in configs.items()})
        for name, data in card.render(staging, summary, statistics, manifest).items():
            _write_bytes(staging / name, data)
        _install(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return release if audited is None else {**release, "audit": audited}
