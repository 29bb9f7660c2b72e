"""Validator throughput: 100,000 typed traces from JSONL, as a ratio to `json.loads` of the same
lines in the same run (issue #2 asks for ≤ 4×), plus the CLI's cold start against a bare
interpreter. `--hostile` instead reports the CLI's peak memory and time on hostile files (deep
nesting, oversized records, millions of tiny records), against the same CLI on a one-record
file in the same run (issue #13).

    python benchmarks/bench_validate.py [--records 100000] [--hostile]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from safer_toolkit.validation import (
    Call,
    Trace,
    Validator,
    library_protocol_document,
    resolve_protocol,
    to_text,
)
from safer_toolkit.validation.report import Summary, validate_files
from safer_toolkit.validation.vocabulary import GATE, INTENT, LOOP, MESH, REFUSAL, SHIELD, TREE
from tests.support.bounded import GiB, run_bounded
from tests.support.protocols import OUT

TOPOLOGIES = (TREE, MESH, SHIELD, LOOP)


def _walk(rng: random.Random, topology: str) -> list[str]:
    """A random legal walk of 4–7 calls over the library graph of `topology`."""
    graph = resolve_protocol(library_protocol_document(topology)).graph
    while True:
        walk = [rng.choice(graph.start)]
        while len(walk) < 7:
            nxt = [b for a, b in graph.edges if a == walk[-1] and b not in walk]
            if not nxt or (walk[-1] in graph.terminal and len(walk) >= 4 and rng.random() < .5):
                break
            walk.append(rng.choice(nxt))
        if walk[-1] in graph.terminal and len(walk) >= 4:
            return walk


def write_traces(path: Path, n: int, embed: bool) -> None:
    rng = random.Random(0)
    protocols = {t: json.dumps(library_protocol_document(t)) for t in TOPOLOGIES}
    with path.open("w") as f:
        for i in range(n):
            topology = TOPOLOGIES[i % len(TOPOLOGIES)] if embed else MESH
            walk = _walk(rng, topology)
            calls = [Call(t, dict(OUT[t])) for t in walk]
            if REFUSAL in walk:  # keep the decision consistent with the analysis
                for call in calls:
                    if call.tool == INTENT:
                        call.output["intent"] = "harmful"
                    if call.tool == GATE:
                        call.output["verdict"] = "refuse"
            record = {"id": f"t{i}", "response": to_text(Trace(calls, "A helpful answer."))}
            if embed:
                record["protocol"] = protocols[topology]
            f.write(json.dumps(record) + "\n")


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_throughput(path: Path, protocol: dict | None) -> tuple[float, float, Summary]:
    def loads() -> None:
        with path.open("rb") as f:
            for line in f:
                json.loads(line)

    summary = Summary()

    def validate() -> None:
        summary.__init__()
        for result in validate_files([path], Validator(protocol)):
            summary.add(result)

    return best_of(3, loads), best_of(3, validate), summary


def bench_cli(path: Path, report: Path) -> float:
    """The whole `safer-toolkit validate --report` path, in-process (no start-up cost)."""
    from safer_toolkit.cli import main

    argv = ["validate", str(path), "--library", "default", "--topology", MESH,
            "--report", str(report), "--json"]
    with open("/dev/null", "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            return best_of(3, lambda: main(argv))
        finally:
            sys.stdout = stdout


def bench_cold_start(path: Path) -> tuple[float, float]:
    def bare() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    def cli() -> None:
        subprocess.run([sys.executable, "-m", "safer_toolkit", "validate", str(path),
                        "--library", "default", "--topology", MESH, "--json"],
                       check=True, stdout=subprocess.DEVNULL)

    return best_of(5, bare), best_of(5, cli)


MiB = 1 << 20


def _write_hostile(folder: Path) -> dict[str, tuple[Path, str]]:
    """name → (file, what it is): each built to blow up a reader that is not bounded."""
    good = json.dumps({"id": "ok", "response": "<thinking>\n</thinking>\n<answer>\nok\n</answer>"})
    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, what: str, write) -> None:
        path = folder / name
        with path.open("w") as f:
            write(f)
        files[name] = (path, what)

    add("deep-array.json", "array element nested 100,000 deep (200 KB)",
        lambda f: f.write("[" + "[" * 100_000 + "]" * 100_000 + ", " + good + "]"))
    add("deep-unclosed.json", "1,000,000 `[` never closed (1 MB)",
        lambda f: f.write("[" * 1_000_000))
    add("big-element.json", "one 100 MiB array element, then a record",
        lambda f: (f.write('[{"response": "'), [f.write("x" * MiB) for _ in range(100)],
                   f.write('"}, ' + good + "]")))
    add("big-line.jsonl", "one 100 MiB JSONL line, then a record",
        lambda f: (f.write('{"response": "'), [f.write("x" * MiB) for _ in range(100)],
                   f.write('"}\n' + good + "\n")))
    add("deep-lines.jsonl", "1,000 lines nested 10,000 deep (20 MB)",
        lambda f: [f.write("[" * 10_000 + "]" * 10_000 + "\n") for _ in range(1000)])
    add("wide-line.jsonl", "one 8 MiB line of 700,000 keys (under the cap)",
        lambda f: f.write("{" + ",".join(f'"k{i}":1' for i in range(700_000)) + "}\n"))
    add("many-tiny.json", "2,000,000 array elements `{}` (6 MB)",
        lambda f: f.write("[" + ",".join(["{}"] * 2_000_000) + "]"))
    return files


def bench_hostile(tmp: Path) -> None:
    files = _write_hostile(tmp)
    one = tmp / "one.jsonl"
    write_traces(one, 1, False)

    def run(path: Path) -> object:
        return run_bounded([sys.executable, "-m", "safer_toolkit", "validate", str(path),
                            "--library", "default", "--topology", MESH, "--json"],
                           memory=4 * GiB, cpu_s=300, timeout_s=600)

    base = run(one)
    print("validate CLI on hostile files: peak resident memory and time, against the same CLI "
          f"on a one-record file ({base.peak_mib:.0f} MiB, {base.seconds:.2f}s)")
    print(f"{'file':<20} {'what':<48} {'exit':>4} {'peak':>9} {'over base':>10} {'time':>7}")
    for name, (path, what) in files.items():
        found = run(path)
        print(f"{name:<20} {what:<48} {found.returncode:>4} {found.peak_mib:>7.0f}Mi "
              f"{found.peak_mib - base.peak_mib:>+8.0f}Mi {found.seconds:>6.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--hostile", action="store_true",
                        help="peak memory and time on hostile files instead of throughput")
    args = parser.parse_args()
    if args.hostile:
        with tempfile.TemporaryDirectory() as tmp:
            bench_hostile(Path(tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for embed in (False, True):
            path = Path(tmp) / f"traces-{embed}.jsonl"
            write_traces(path, args.records, embed)
            protocol = None if embed else library_protocol_document(MESH)
            base, ours, summary = bench_throughput(path, protocol)
            assert summary.records == args.records and summary.valid == args.records, summary
            label = "embedded protocols (4 topologies)" if embed else "one --protocol (mesh)"
            rows.append((label, base, ours))
            if not embed:
                rows.append(("CLI with --report (mesh)", base,
                             bench_cli(path, Path(tmp) / "report.jsonl")))
        one = Path(tmp) / "one.jsonl"
        write_traces(one, 1, False)
        bare, cli = bench_cold_start(one)
    print(f"validate {args.records:,} typed text-form traces from JSONL (best of 3)")
    print(f"{'case':<36} {'json.loads':>11} {'validate':>10} {'ratio':>7}")
    for label, base, ours in rows:
        print(f"{label:<36} {base:>10.3f}s {ours:>9.3f}s {ours / base:>6.2f}×")
    print(f"CLI cold start on one record: {cli:.3f}s vs bare interpreter {bare:.3f}s "
          f"({cli / bare:.1f}×, +{cli - bare:.3f}s)")


if __name__ == "__main__":
    main()
