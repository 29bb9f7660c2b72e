"""Seed corpus and split assignment at paper scale.

Draws N seed items (default 25,000) serially for a prefix and then with every core, and assigns
the paper's splits (sft 6,000 / dpo 6,200 prompts / grpo 6,000 / eval 1,000) to the full pool.
Ratios are against baselines measured in the same run: parallel drawing against serial drawing,
and `assign_splits` against the bare hashing it cannot avoid (sha256 + imagehash pHash of every
image, decoded at full size, no dedup logic).

    python benchmarks/bench_sources.py [--items 25000] [--serial 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import time

import imagehash
from PIL import Image

from safer_toolkit.builder.sources.seed import seed_corpus
from safer_toolkit.builder.stages.split import assign_splits

PAPER = {"sft": 6000, "dpo": 6200, "grpo": 6000, "eval": 1000}


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=25_000)
    parser.add_argument("--serial", type=int, default=2_000, help="items drawn serially")
    args = parser.parse_args()

    _, serial_s, serial_cpu = timed(lambda: list(seed_corpus(args.serial, workers=1)))
    items, parallel_s, _ = timed(lambda: list(seed_corpus(args.items)))
    serial_rate = args.serial / serial_s
    parallel_rate = args.items / parallel_s
    size_kb = sum(len(i.image) for i in items) / len(items) / 1024
    print(f"seed corpus, serial:   {serial_rate:7.0f} items/s "
          f"({serial_cpu / args.serial * 1e3:.2f} ms CPU an item, {args.serial} items)")
    print(f"seed corpus, parallel: {parallel_rate:7.0f} items/s "
          f"({args.items} items in {parallel_s:.1f} s, {parallel_rate / serial_rate:.2f}x serial); "
          f"mean PNG {size_kb:.1f} KB")

    def bare_hashing() -> None:
        for item in items:
            hashlib.sha256(item.image).hexdigest()
            imagehash.phash(Image.open(io.BytesIO(item.image)))

    _, bare_s, _ = timed(bare_hashing)
    sizes = PAPER if sum(PAPER.values()) <= args.items else {
        k: v * args.items // 40_000 for k, v in PAPER.items()}
    result, split_s, _ = timed(lambda: assign_splits(items, sizes, seed=0))
    print(f"assign_splits on {args.items} items: {split_s:.1f} s "
          f"({split_s / bare_s:.2f}x the bare sha256 + pHash loop, {bare_s:.1f} s); "
          f"pool {result.pool}, dropped {result.dropped or 'none'}, unused {result.unused}")


if __name__ == "__main__":
    main()
