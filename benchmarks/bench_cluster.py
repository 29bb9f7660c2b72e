"""The build on Ray against the build in one process, in the same run.

1. Source intake: an image folder of N generated pictures (default 20,000 distinct PNGs with a
   metadata.jsonl) read, checked, hashed (sha256 + perceptual hash) and deduplicated — once by
   the one-process loader (`dedup_pool(load_local(...))`), once by the Ray intake on a local
   cluster with 2 CPUs (two task workers). Both pools must be the same; the ratio is one-process
   wall time over Ray wall time (the cluster's start is reported apart: it is paid once a build).
2. The builder's own overhead per call: the same build (`--backend openai`) against
   `safer-toolkit serve` (a separate process answering at once) in one process and on Ray with 2
   shards, fresh caches. Per call: wall time of the items phase, and the CPU the builder spent
   (one process: its own; Ray: the driver's, the shards' and the gate's).

    python benchmarks/bench_cluster.py [--items 20000] [--calls-sizes 150,90,90,40]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from safer_toolkit.builder.config import load_config
from safer_toolkit.builder.pipeline import build
from safer_toolkit.builder.sources.local import load_local
from safer_toolkit.builder.stages.dedup import ExclusionList
from safer_toolkit.builder.stages.split import dedup_pool
from tests.support.build_config import write_config


def make_folder(root: Path, count: int) -> Path:
    """`count` distinct 192x192 pictures of random blocks, and their metadata.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    with (root / "metadata.jsonl").open("w") as meta:
        for i in range(count):
            small = Image.new("RGB", (12, 12))
            small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(144)])
            out = io.BytesIO()
            small.resize((192, 192), Image.Resampling.NEAREST).save(out, "PNG")
            (root / f"{i:06d}.png").write_bytes(out.getvalue())
            meta.write(json.dumps({"file_name": f"{i:06d}.png",
                                   "question": f"What does picture number {i} show?"}) + "\n")
    return root


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def intake(folder: Path, count: int, work: Path) -> None:
    from safer_toolkit.builder.cluster import connect

    spec = {"kind": "local", "path": str(folder), "source_dataset": "bench",
            "source_license": "cc0-1.0"}
    config = load_config(write_config(work / "intake.toml", sources=[spec]))
    spec = dict(spec, on_bad=lambda bad: None)
    one, one_s, one_cpu = timed(lambda: dedup_pool(
        load_local(**{k: v for k, v in spec.items() if k != "kind"}), 0))
    cluster, start_s, _ = timed(lambda: connect("local"))
    try:
        pool, ray_s, driver_cpu = timed(lambda: cluster.pool(config, count, lambda bad: None,
                                                             ExclusionList()))
        tasks_cpu = sum(n["cpu_s"] for n in cluster.intake.figures().values())
    finally:
        cluster.close()
    same = {s: [i.source_id for _, i in m] for s, m in one.strata.items()} == \
        {s: [i.source_id for _, i in m] for s, m in pool.strata.items()}
    # what 2 idle cores would give: all the CPU Ray spent (tasks and driver) spread over both,
    # or the driver's alone if longer (cores shared with other work make the measured wall
    # time a lower bound)
    projected = one_cpu / max(driver_cpu, (tasks_cpu + driver_cpu) / 2)
    print(f"intake of {count} items: one process {one_s:.1f} s ({count / one_s:.0f} items/s, "
          f"{one_cpu:.1f} s CPU); Ray, 2 CPUs {ray_s:.1f} s ({count / ray_s:.0f} items/s; CPU: "
          f"driver {driver_cpu:.1f} s, tasks {tasks_cpu:.1f} s) -> {one_s / ray_s:.2f}x measured, "
          f"{projected:.2f}x on 2 idle cores; cluster start {start_s:.1f} s; pool {len(pool)} "
          f"items, same pool: {same}")


def calls(sizes: list[int], work: Path) -> None:
    from safer_toolkit.builder.cluster import connect

    serve = subprocess.Popen([sys.executable, "-m", "safer_toolkit", "serve", "--port", "0"],
                             stdout=subprocess.PIPE, text=True)
    try:
        url = serve.stdout.readline().split()[-1]
        sft, dpo, grpo, eval_ = sizes
        config = load_config(write_config(work / "calls.toml", base_url=url, sft=sft, dpo=dpo,
                                          grpo=grpo, eval_=eval_, concurrency=32))
        one = asyncio.run(build(config, work / "one", backend="openai", progress=False))
        cluster = connect("local", 2)
        try:
            ray = asyncio.run(build(config, work / "ray", backend="openai", progress=False,
                                    cluster=cluster))
        finally:
            cluster.close()
    finally:
        serve.terminate()
        serve.wait(10)
    figures = {}
    for name, result in (("one process", one), ("Ray, 2 shards", ray)):
        items = result.run["phases"]["items"]
        wall, cpu = items["wall_s"], items["cpu_s"]
        shared = result.run.get("cluster")
        if shared:  # the shards' start is paid once a build: reported apart
            wall -= shared["start_s"]
            shards = sum(n["cpu_s"] for n in shared["nodes"].values())
            print(f"Ray: {len(shared['shards'])} shards ready in {shared['start_s']:.1f} s; CPU "
                  f"per call: driver {cpu / result.run['sent'] * 1e3:.2f} ms, shards "
                  f"{shards / result.run['sent'] * 1e3:.2f} ms, gate "
                  f"{shared['gate']['cpu_s'] / result.run['sent'] * 1e3:.2f} ms "
                  f"({shared['gate']['grants']} slots granted); items "
                  f"{result.run['phases']['items']['wall_s'] - shared['start_s']:.1f} s")
            cpu += shards + shared["gate"]["cpu_s"]
        sent = result.run["sent"]
        figures[name] = (wall / sent * 1e3, cpu / sent * 1e3, sent)
    (w1, c1, n1), (w2, c2, n2) = figures.values()
    print(f"overhead per call, {n1} calls: one process {w1:.2f} ms wall, {c1:.2f} ms CPU; "
          f"Ray {w2:.2f} ms wall, {c2:.2f} ms CPU ({n2} calls) -> {w2 / w1:.2f}x wall, "
          f"{c2 / c1:.2f}x CPU; same rows: {one.manifest['counts'] == ray.manifest['counts']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--calls-sizes", default="150,90,90,40", help="sft,dpo,grpo,eval")
    parser.add_argument("--parts", default="intake,calls", help="which parts to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as temp:
        work = Path(temp)
        if "intake" in args.parts:
            _, made_s, _ = timed(lambda: make_folder(work / "images", args.items))
            print(f"generated {args.items} pictures in {made_s:.1f} s")
            intake(work / "images", args.items, work)
        if "calls" in args.parts:
            calls([int(n) for n in args.calls_sizes.split(",")], work)


if __name__ == "__main__":
    main()
