"""End to end on the real `safer-toolkit build --preset demo`: the folder is a whole release."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image

from safer_toolkit.builder.release.features import SPLITS
from safer_toolkit.builder.release.push import plan_uploads
from tests.support import release_rows as R


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != ".build"}


def test_demo_build_has_the_preset_rows_and_a_whole_release():
    out = R.demo_build()
    rows = {c: sum(pq.ParquetFile(p).metadata.num_rows for p in (out / c).glob("*.parquet"))
            for c in SPLITS}
    assert rows == {"sft": 60, "dpo": 186, "grpo": 60, "eval": 20}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == "offline" and manifest["preset"] == "demo"
    assert {c: v["num_rows"] for c, v in manifest["release"]["configs"].items()} == rows
    assert (out / "build.toml").read_text().strip()
    assert (out / "easyr1" / "train.jsonl").read_text().count("\n") == 60
    assert (out / ".build").is_dir()
    plan = {u.path_in_repo for u in plan_uploads(out)}
    assert not any(p.startswith(".build") for p in plan)
    assert {"README.md", "manifest.json", "build.toml", "schemas/tool_library_v1.json"} <= plan


def test_a_second_demo_build_gives_the_same_release_bytes(tmp_path):
    first = R.demo_build()
    second = tmp_path / "again"
    R.build(second)
    a, b = _files(first), _files(second)
    assert a.keys() == b.keys()
    assert [n for n in a if n != "manifest.json" and a[n] != b[n]] == []
    # the manifest differs only in its `run` part (when, how long)
    ma, mb = (json.loads(x["manifest.json"]) for x in (a, b))
    assert {k: v for k, v in ma.items() if k != "run"} == {k: v for k, v in mb.items()
                                                           if k != "run"}


def test_push_dry_run_on_the_demo_build(tmp_path):
    out = R.demo_build()
    result = subprocess.run([sys.executable, "-m", "safer_toolkit", "push", str(out),
                             "--repo-id", "org/safer-demo", "--dry-run"], capture_output=True,
                            text=True, timeout=120, env={"HF_HOME": str(tmp_path),
                                                         "HF_HUB_OFFLINE": "1",
                                                         "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "org/safer-demo@main:README.md" in result.stdout.splitlines()[-2]
    assert "dpo/train-00000-of-00001.parquet" in result.stdout
    assert ".build" not in result.stdout


def _row_digest(value: Any) -> Any:
    """A row with every image as the sha256 of its decoded pixels (not of its PNG bytes, which
    a zlib or Pillow upgrade may encode differently) — what the build decided, not the codec."""
    if isinstance(value, dict):
        if isinstance(value.get("bytes"), bytes):
            with Image.open(io.BytesIO(value["bytes"])) as image:
                pixels = f"{image.mode}{image.size}".encode() + image.tobytes()
            return {"pixels": hashlib.sha256(pixels).hexdigest()}
        return {k: _row_digest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_row_digest(v) for v in value]
    return value


#: The demo build's rows, pinned across the issue-12 refactor (vocabulary, stage interface,
#: config and error model, relative imports): the same config and seed must keep giving these
#: rows. A deliberate change to what the builder writes updates them in the same commit.
DEMO_ROWS = {
    "sft": "911d7ca7b80ca8bf96862a97e8b805dfb0cedb06626c8ec08365d0139cd8ba4c",
    "dpo": "326b0122f6c0b085cf5ba3c0f662b6e210aa63ed45df554ce26e3dd470f45482",
    "grpo": "0d6af26e0f822553f56b37e302cd085af65c82f56ae2d935cb4abd623460624e",
    "eval": "8a41f89fd6430d264083d76e70123ac7da0532b7cfa119a56e6965c717b91531",
}


def test_the_demo_rows_are_pinned():
    out = R.demo_build()
    found = {}
    for split in SPLITS:
        rows = [row for path in sorted((out / split).glob("*.parquet"))
                for row in pq.read_table(path).to_pylist()]
        canonical = json.dumps(_row_digest(rows), sort_keys=True, ensure_ascii=False)
        found[split] = hashlib.sha256(canonical.encode()).hexdigest()
    assert found == DEMO_ROWS
