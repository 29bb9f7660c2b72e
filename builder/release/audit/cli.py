"""`safer-toolkit audit DIR [--config BUILD.toml] [--json]`: measure a release's shortcuts.

The bounds come from `--config`, else from the release's own `build.toml` (its `[audit]`
table), else the defaults. Exit status: 0 every judged figure within its bound, 1 some figure
over it, 2 usage or input error (a message, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ....errors import ConfigError
from ....settings import Reader, read_toml
from .report import plain_table
from .thresholds import AuditThresholds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="dataset folder written by `safer-toolkit build`")
    parser.add_argument("--config", type=Path, metavar="BUILD.toml",
                        help="take the bounds from this build file's [audit] table (default: "
                             "the folder's build.toml, else the built-in defaults)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def thresholds(path: Path) -> AuditThresholds:
    """The `[audit]` bounds of a build file (`ConfigError` naming the file and key)."""
    return Reader(str(path)).dataclass(AuditThresholds, read_toml(path).get("audit"), "audit")


def run(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    if not folder.is_dir():
        print(f"audit: {folder} is not a folder", file=sys.stderr)
        return 2
    if not any((folder / c).is_dir() for c in ("sft", "dpo", "grpo", "eval")):
        print(f"audit: {folder} has no sft/, dpo/, grpo/ or eval/ parquet files; is it a "
              "folder written by `safer-toolkit build`?", file=sys.stderr)
        return 2
    config = args.config or (folder / "build.toml")
    try:
        limits = thresholds(config) if args.config or config.is_file() else AuditThresholds()
    except ConfigError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2
    from .run import audit_folder

    try:
        result = audit_folder(folder, limits).to_json()
    except (OSError, ValueError) as exc:  # unreadable or malformed parquet
        print(f"audit: {folder}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else plain_table(result))
    return 0 if result["passed"] else 1
