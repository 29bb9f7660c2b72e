"""`safer-toolkit build`: build the SFT/DPO/GRPO/eval dataset into a folder.

    safer-toolkit build (--preset demo|paper | --config BUILD.toml) --out DIR
                        [--backend offline|openai] [--base-url URL] [--concurrency N] [--seed N]

Exit status: 0 built; 1 the build failed (state that cannot be written, an export refused),
fell short, or DIR is held by another build; 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from safer_toolkit.builder.config import PRESETS, ConfigError, load_config, load_preset
from safer_toolkit.builder.lock import BuildLock, OutDirLocked, holder_text
from safer_toolkit.builder.pipeline import BACKENDS, STATE_DIR, BuildError, build
from safer_toolkit.builder.release.export import ExportError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", choices=PRESETS,
                        help="a shipped configuration: demo (small, fast) or paper "
                             "(6k/18.6k/6k/1k)")
    source.add_argument("--config", type=Path, metavar="BUILD.toml",
                        help="a build configuration file (see examples/build.toml)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help=f"the dataset folder to write (build state goes to "
                             f"DIR/{STATE_DIR}/)")
    parser.add_argument("--backend", choices=BACKENDS, default="offline",
                        help="offline: the built-in generator, no model needed (default); "
                             "openai: the configured OpenAI-compatible endpoints")
    parser.add_argument("--base-url", metavar="URL",
                        help="with --backend openai: send every model role to this endpoint "
                             "(e.g. http://127.0.0.1:8000/v1)")
    parser.add_argument("--concurrency", type=int, metavar="N",
                        help="requests in flight per model endpoint (overrides the config)")
    parser.add_argument("--seed", type=int, metavar="N", help="override the config's seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _fail(message: str) -> int:
    print(f"safer-toolkit build: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.base_url and args.backend != "openai":
        return _fail("--base-url needs --backend openai")
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out} exists and is not a folder")
    try:
        config = load_preset(args.preset) if args.preset else load_config(args.config)
        config = config.with_overrides(seed=args.seed, base_url=args.base_url,
                                       concurrency=args.concurrency, origin="command line")
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        with BuildLock(args.out, args.out / STATE_DIR) as lock:
            if lock.stale:
                print(f"safer-toolkit build: taking over {args.out} from a build that no longer "
                      f"runs ({holder_text(lock.stale)}); resuming", file=sys.stderr)
            result = asyncio.run(build(config, args.out, backend=args.backend,
                                       preset=args.preset, progress=not args.quiet))
    except (BuildError, ExportError, OutDirLocked, OSError) as exc:
        print(f"safer-toolkit build: {exc}", file=sys.stderr)
        return 1
    print(result.summary)
    print(f"\ndataset written to {args.out}")
    status = 0
    if result.shortfall:
        short = ", ".join(f"{split} {n}" for split, n in result.shortfall.items())
        print(f"safer-toolkit build: SHORTFALL — too few items survived to fill every split "
              f"(rows missing: {short}); see {args.out / STATE_DIR}/ and the summary above",
              file=sys.stderr)
        status = 1
    if result.internal_errors:
        print(f"safer-toolkit build: {result.internal_errors} item(s) hit an internal error; "
              f"tracebacks are in {args.out / STATE_DIR / 'failures.jsonl'}", file=sys.stderr)
        status = 1
    return status
