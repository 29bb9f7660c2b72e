"""Release export: time and peak memory at 1× and 4× the demo size, and the paper build.

Each measurement runs in its own child process, which reports its wall time, its resident
memory after imports and its peak resident memory (`resource.getrusage`). In the same run:
- `generate`: only consuming the synthetic rows (the cost the export itself does not own);
- `export`: `write_dataset` on the same rows (parquet, EasyR1, schemas, manifest, card);
- `materialise`: the baseline that does not stream — `datasets.Dataset.from_list(rows)` then
  `to_parquet` — so the growth of a non-streaming writer shows beside ours.
The headline is the ratio of export peaks, 4× over 1× (close to 1 when the export streams), and
the export time net of row generation.

`--paper` also runs `safer-toolkit build --preset paper --backend offline` and reports its time,
peak memory and the exact rows per config (6,000 / 18,600 / 6,000 / 1,000 expected).

    python benchmarks/bench_release.py [--scales 1 4] [--paper]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.support

DEMO = {"sft": 60, "dpo": 186, "grpo": 60, "eval": 20}
PAPER = {"sft": 6_000, "dpo": 18_600, "grpo": 6_000, "eval": 1_000}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str, scale: int, out: Path) -> dict:
    import datasets

    from safer_toolkit.builder.release.export import write_dataset
    from safer_toolkit.builder.release.features import features
    from tests.support import release_rows as R

    sizes = {c: n * scale for c, n in DEMO.items()}
    rows = R.rows(sizes)
    base = _rss_mb()
    start = time.perf_counter()
    if mode == "generate":
        count = sum(1 for config_rows in rows.values() for _ in config_rows)
    elif mode == "export":
        summary = write_dataset(out, rows, manifest=R.manifest(), build_config="seed = 0\n")
        count = sum(c["num_rows"] for c in summary["configs"].values())
    else:  # materialise: the non-streaming baseline
        count = 0
        for config, config_rows in rows.items():
            table = datasets.Dataset.from_list(list(config_rows), features=features(config))
            table.to_parquet(str(out / f"{config}.parquet"))
            count += table.num_rows
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "scale": scale, "rows": count, "seconds": seconds,
            "rss_after_imports_mb": base, "peak_rss_mb": peak}


def _run_child(mode: str, scale: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench-release-{mode}-"))
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--scale", str(scale),
                               "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1",
                                   "HF_DATASETS_OFFLINE": "1",
                                   "HF_DATASETS_CACHE": str(out / "cache")})
        if proc.returncode:
            raise SystemExit(f"{mode} ×{scale} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def paper_build() -> dict:
    import pyarrow.parquet as pq

    out = Path(tempfile.mkdtemp(prefix="bench-release-paper-"))
    try:
        start = time.perf_counter()
        proc = subprocess.run([str(Path(sys.executable).with_name("safer-toolkit")), "build",
                               "--preset", "paper", "--backend", "offline", "--out", str(out)],
                              capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"paper build failed:\n{proc.stderr[-3000:]}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows = {c: sum(pq.ParquetFile(p).metadata.num_rows for p in (out / c).glob("*.parquet"))
                for c in PAPER}
        return {"seconds": seconds, "peak_rss_mb": peak, "rows": rows,
                "exact": rows == PAPER}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--paper", action="store_true", help="also time the paper build")
    parser.add_argument("--child", choices=["generate", "export", "materialise"])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.scale, args.out)))
        return

    results = {(m, s): _run_child(m, s) for s in args.scales
               for m in ("generate", "export", "materialise")}
    print(f"{'scale':>5} {'rows':>7} {'mode':>12} {'seconds':>8} {'rows/s':>8} "
          f"{'rss@import':>10} {'peak':>8} {'peak-import':>11}  (MB)")
    for (mode, scale), r in results.items():
        print(f"{scale:>4}× {r['rows']:>7} {mode:>12} {r['seconds']:>8.2f} "
              f"{r['rows'] / r['seconds']:>8.0f} {r['rss_after_imports_mb']:>10.1f} "
              f"{r['peak_rss_mb']:>8.1f} {r['peak_rss_mb'] - r['rss_after_imports_mb']:>11.1f}")
    low, high = min(args.scales), max(args.scales)
    for mode in ("export", "materialise"):
        a, b = results[mode, low], results[mode, high]
        print(f"{mode}: peak RSS {high}×/{low}× = {b['peak_rss_mb'] / a['peak_rss_mb']:.3f}; "
              f"growth above imports {a['peak_rss_mb'] - a['rss_after_imports_mb']:.1f} → "
              f"{b['peak_rss_mb'] - b['rss_after_imports_mb']:.1f} MB")
    for scale in args.scales:
        generation = results["generate", scale]["seconds"]
        net = results["export", scale]["seconds"] - generation
        baseline = results["materialise", scale]["seconds"] - generation
        rows = results["export", scale]["rows"]
        print(f"export ×{scale}: {net:.2f} s net of row generation ({1000 * net / rows:.2f} "
              f"ms/row); materialising baseline {baseline:.2f} s (no card, EasyR1 or checks)")
    if args.paper:
        paper = paper_build()
        print(f"paper build (offline): {paper['seconds']:.1f} s, peak RSS "
              f"{paper['peak_rss_mb']:.0f} MB, rows {paper['rows']} "
              f"({'exact' if paper['exact'] else 'NOT the paper sizes'})")


if __name__ == "__main__":
    main()
