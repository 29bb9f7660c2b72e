"""The release gate: what keeps a folder from being pushed (unless the user forces it).

A push replaces the remote dataset, deleting shards the folder does not have, so a folder from a
failed or short build would erase a good release. The gate reads the folder's `manifest.json`
and refuses a folder with no rows, a build that fell short of its sizes, or a release that
failed (or never had) its quality audit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def _manifest(folder: Path) -> dict[str, Any] | str:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {MANIFEST}: not a folder written by `safer-toolkit build`"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{MANIFEST} cannot be read: {exc}"
    return data if isinstance(data, dict) else f"{MANIFEST} is not a JSON object"


def release_problems(folder: Path) -> list[str]:
    """Why `folder` must not be pushed (empty when it may)."""
    manifest = _manifest(Path(folder))
    if isinstance(manifest, str):
        return [manifest]
    problems: list[str] = []
    configs = (manifest.get("release") or {}).get("configs") or {}
    rows = sum(c.get("num_rows", 0) for c in configs.values() if isinstance(c, dict))
    if not rows:
        problems.append("the release has 0 rows (a failed build?); pushing it would delete the "
                        "remote shards")
    splits = (manifest.get("counts") or {}).get("splits") or {}
    short = {s: c.get("shortfall", 0) for s, c in splits.items()
             if isinstance(c, dict) and c.get("shortfall")}
    if short:
        problems.append("the build fell short of its sizes (rows missing: "
                        + ", ".join(f"{s} {n}" for s, n in short.items()) + ")")
    audit = manifest.get("audit")
    if not isinstance(audit, dict):
        problems.append("the release was not audited (rebuild it with this toolkit, or check "
                        "it with `safer-toolkit audit DIR` and push with --force)")
    elif not audit.get("passed"):
        problems.append("the release failed its quality audit (" + ", ".join(
            audit.get("failed") or ["?"]) + "); see its card's Quality section")
    return problems
