"""`safer-toolkit build`: build the SFT/DPO/GRPO/eval dataset into a folder.

    safer-toolkit build (--preset demo|paper | --config BUILD.toml) --out DIR
                        [--backend offline|openai] [--base-url URL] [--concurrency N] [--seed N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", choices=("demo", "paper"),
                        help="a shipped configuration: demo (small, fast) or paper "
                             "(6k/18.6k/6k/1k)")
    source.add_argument("--config", type=Path, metavar="BUILD.toml",
                        help="a build configuration file (see examples/build.toml)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the dataset folder to write (build state goes to DIR/.build/)")
    parser.add_argument("--backend", choices=("offline", "openai"), default="offline",
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
    import asyncio

    from safer_toolkit.builder.config import ConfigError, load_config, load_preset
    from safer_toolkit.builder.pipeline import BuildError, build
    from safer_toolkit.builder.release.export import ExportError

    if args.base_url and args.backend != "openai":
        return _fail("--base-url needs --backend openai")
    if args.base_url and not args.base_url.startswith(("http://", "https://")):
        return _fail(f"--base-url must be an http(s) URL, not {args.base_url!r}")
    if args.concurrency is not None and args.concurrency < 1:
        return _fail("--concurrency must be at least 1")
    if args.seed is not None and not 0 <= args.seed < 2**31:
        return _fail("--seed must be between 0 and 2147483647")
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out} exists and is not a folder")
    try:
        config = load_preset(args.preset) if args.preset else load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    config = config.with_overrides(seed=args.seed, base_url=args.base_url,
                                   concurrency=args.concurrency)
    try:
        result = asyncio.run(build(config, args.out, backend=args.backend, preset=args.preset,
                                   progress=not args.quiet))
    except (BuildError, ExportError, OSError) as exc:
        print(f"safer-toolkit build: {exc}", file=sys.stderr)
        return 1
    print(result.summary)
    print(f"\ndataset written to {args.out}")
    status = 0
    if result.shortfall:
        short = ", ".join(f"{split} {n}" for split, n in result.shortfall.items())
        print(f"safer-toolkit build: SHORTFALL — too few items survived to fill every split "
              f"(rows missing: {short}); see {args.out}/.build/ and the summary above",
              file=sys.stderr)
        status = 1
    if result.internal_errors:
        print(f"safer-toolkit build: {result.internal_errors} item(s) hit an internal error; "
              f"tracebacks are in {args.out}/.build/failures.jsonl", file=sys.stderr)
        status = 1
    return status
