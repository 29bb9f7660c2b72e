"""The release audit on the paper preset: its time as a ratio to reading the same parquet files.

In one run, on one release folder (every config's shards):
- `read`: `pyarrow.parquet.read_table` of every shard, all columns (images included) — the
  floor any tool that looks at the whole release pays;
- `audit`: `audit_folder` with the folder's own bounds, every figure (text, probes, near-
  duplicates, image chunks), plus each part of it timed on its own.
Both after one warm-up read (the files in the page cache), each the median of `--repeat` runs.
The headline is audit / read.

    python benchmarks/bench_audit.py [DIR] [--repeat 3]

DIR defaults to a fresh `safer-toolkit build --preset paper` (offline; minutes) in a temporary
folder; pass a folder built from the paper preset to skip that.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from safer_toolkit.builder.release.audit import (
    AuditThresholds,
    answers,
    audit_folder,
    images,
    overlap,
    pairs,
    prompts,
)
from safer_toolkit.builder.release.audit.cli import thresholds
from safer_toolkit.builder.release.audit.read import CONFIGS, read_release, shards


def _median_seconds(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_all(folder: Path) -> int:
    return sum(pq.read_table(path).num_rows for c in CONFIGS for path in shards(folder, c))


def parts(folder: Path, limits: AuditThresholds) -> dict[str, float]:
    """Seconds of each part of one audit (the text read once, shared as the audit does)."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    release = read_release(folder)
    out["read text columns"] = time.perf_counter() - start
    frames = release.frames
    steps = {
        "answers": lambda: answers.answer_figures(frames["sft"]["answer"].to_list(), limits),
        "pairs (4 probes + length)": lambda: pairs.pair_figures(frames.get("dpo"), limits),
        "label from prompt (probe)": lambda: prompts.prompt_figures(frames, limits),
        "near-duplicates + goal overlap": lambda: overlap.overlap_figures(
            frames, release.has_groups, limits),
        "image metadata": lambda: images.image_figures(folder, limits),
    }
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        out[name] = time.perf_counter() - start
    return out


def build_paper(out: Path) -> None:
    command = [str(Path(sys.executable).with_name("safer-toolkit")), "build", "--preset",
               "paper", "--out", str(out), "--quiet"]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1: a failed audit is still a release to time
        raise SystemExit(f"paper build failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", help="a release built from the paper "
                                                              "preset (default: build one)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    temporary = None
    folder = args.folder
    if folder is None:
        temporary = Path(tempfile.mkdtemp(prefix="bench-audit-"))
        folder = temporary / "paper"
        print(f"building the paper preset into {folder} ...", flush=True)
        build_paper(folder)
    try:
        config = folder / "build.toml"
        limits = thresholds(config) if config.is_file() else AuditThresholds()
        rows = read_all(folder)  # warm-up: the files in the page cache
        read_s = _median_seconds(lambda: read_all(folder), args.repeat)
        audit_s = _median_seconds(lambda: audit_folder(folder, limits), args.repeat)
        result = audit_folder(folder, limits).to_json()
        print(f"release: {folder} ({rows:,} rows, "
              f"{sum(p.stat().st_size for c in CONFIGS for p in shards(folder, c)) / 1e6:.0f} MB"
              " of parquet)")
        print(f"read every shard (pyarrow, all columns): {read_s:.2f} s")
        print(f"audit (every figure):                    {audit_s:.2f} s")
        print(f"ratio audit / read: {audit_s / read_s:.1f}x   (audit "
              f"{'PASSED' if result['passed'] else 'FAILED: ' + ', '.join(result['failed'])})")
        for name, seconds in parts(folder, limits).items():
            print(f"  {name:<32} {seconds:6.2f} s")
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    main()
