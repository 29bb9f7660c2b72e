"""`safer-toolkit build`: build the SFT/DPO/GRPO/eval dataset into a folder.

    safer-toolkit build (--preset demo|paper | --config BUILD.toml) --out DIR
                        [--backend offline|openai] [--model [ROLE=]NAME] [--base-url [ROLE=]URL]
                        [--api-key-env [ROLE=]VAR] [--constrain [ROLE=]MODE]
                        [--server [ROLE=]KIND] [--max-calls N] [--max-cost USD]
                        [--concurrency N] [--seed N] [--ray ADDRESS [--ray-shards N]]

Exit status: 0 every split full; 1 a shortfall, no row at all (nothing released), an endpoint
the preflight refused, state that cannot be written, an export refused, DIR held by another
build, or an internal error; 2 bad usage or configuration (an unset key variable included:
nothing is sent).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from pathlib import Path

from ..errors import SaferToolkitError, exit_code
from .config import PRESETS, ConfigError, help_of, load_config, load_preset
from .lock import BuildLock, holder_text
from .pipeline import BACKENDS, STATE_DIR, build, missing_key
from .progress import loss_hint

ROLES_HELP = "ROLE is planner, responder (every responder), responder[N] or judge; no ROLE= " \
             "means every role"


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
    parser.add_argument("--model", action="append", default=[], metavar="[ROLE=]NAME",
                        help=f"the model a role asks for (repeatable); {ROLES_HELP}")
    parser.add_argument("--base-url", action="append", default=[], metavar="[ROLE=]URL",
                        help="with --backend openai: the API root a role calls, e.g. "
                             f"http://127.0.0.1:8000/v1 (repeatable); {ROLES_HELP}")
    parser.add_argument("--api-key-env", action="append", default=[], metavar="[ROLE=]VAR",
                        help="the environment variable holding a role's API key (repeatable); "
                             f"{ROLES_HELP}")
    parser.add_argument("--constrain", action="append", default=[], metavar="[ROLE=]MODE",
                        help=f"with --backend openai: {help_of('constrain')} (repeatable; "
                             f"default json); {ROLES_HELP}")
    parser.add_argument("--server", action="append", default=[], metavar="[ROLE=]KIND",
                        help=f"with --backend openai: {help_of('server')} (repeatable); "
                             f"{ROLES_HELP}")
    parser.add_argument("--max-calls", type=int, metavar="N",
                        help="send at most N requests in all (retries and preflight included)")
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="stop sending once this many dollars are billed (per-role prices)")
    parser.add_argument("--concurrency", type=int, metavar="N",
                        help="requests in flight per model endpoint (overrides the config)")
    parser.add_argument("--seed", type=int, metavar="N", help="override the config's seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run on a Ray cluster: auto, HOST:PORT, ray://HOST:PORT, or local "
                             "(start one here); needs the ray extra and DIR on storage every "
                             "node sees")
    parser.add_argument("--ray-shards", type=int, metavar="N",
                        help="with --ray: item shards (actors) to run (default: half the "
                             "cluster's CPUs, at most 4 a node)")


def _fail(message: str) -> int:
    print(f"safer-toolkit build: {message}", file=sys.stderr)
    return 2


def _per_role(values: list[str], flag: str, *, url: bool = False) -> dict[str, str]:
    """`[ROLE=]VALUE` flags as {role: value} ("" = every role, applied first)."""
    found: dict[str, str] = {}
    for value in values:
        role, sep, rest = value.partition("=")
        if not sep or (url and role.startswith(("http://", "https://"))):
            role, rest = "", value
        if not rest:
            raise ConfigError(f"command line: {flag}: {value!r} has no value")
        found[role] = rest
    return dict(sorted(found.items(), key=lambda kv: kv[0] != ""))


def run(args: argparse.Namespace) -> int:
    if args.base_url and args.backend != "openai":
        return _fail("--base-url needs --backend openai")
    if args.ray_shards is not None and not args.ray:
        return _fail("--ray-shards needs --ray")
    if args.ray and importlib.util.find_spec("ray") is None:
        return _fail("--ray needs Ray: pip install 'safer-toolkit[ray]'")
    if args.out.exists() and not args.out.is_dir():
        return _fail(f"--out {args.out} exists and is not a folder")
    try:
        config = load_preset(args.preset) if args.preset else load_config(args.config)
        config = config.with_overrides(
            seed=args.seed, concurrency=args.concurrency,
            models=_per_role(args.model, "--model"),
            base_urls=_per_role(args.base_url, "--base-url", url=True),
            api_key_envs=_per_role(args.api_key_env, "--api-key-env"),
            constrains=_per_role(args.constrain, "--constrain"),
            servers=_per_role(args.server, "--server"),
            max_calls=args.max_calls, max_cost=args.max_cost, origin="command line")
    except ConfigError as exc:
        return _fail(str(exc))
    if args.backend == "openai" and (missing := missing_key(config)):
        return _fail(str(missing))  # exit 2 before the lock: no folder is made
    cluster = None
    try:
        with BuildLock(args.out, args.out / STATE_DIR) as lock:
            if lock.stale:
                print(f"safer-toolkit build: taking over {args.out} from a build that no longer "
                      f"runs ({holder_text(lock.stale)}); resuming", file=sys.stderr)
            if args.ray:
                from .cluster import connect

                cluster = connect(args.ray, args.ray_shards)
            result = asyncio.run(build(config, args.out, backend=args.backend,
                                       preset=args.preset, progress=not args.quiet,
                                       cluster=cluster))
    except (SaferToolkitError, OSError) as exc:  # BuildError, ExportError, OutDirLocked, …
        print(f"safer-toolkit build: {exc}", file=sys.stderr)
        return exit_code(exc) if isinstance(exc, SaferToolkitError) else 1
    finally:
        if cluster is not None:
            cluster.close()
    print(result.summary)
    state = args.out / STATE_DIR
    if result.release is None:
        print(f"safer-toolkit build: NO ROWS — no item survived, so nothing was released; the "
              f"report is {state / 'manifest.json'} and the build state stays in {state}/ for "
              f"a rerun. Top losses: {loss_hint(result.manifest) or 'none'}", file=sys.stderr)
        return 1
    if result.audit is not None:
        from .release.audit import plain_table

        print("\n" + plain_table(result.audit))
    print(f"\ndataset written to {args.out}")
    status = 0
    if result.audit is not None and not result.audit["passed"]:
        print(f"safer-toolkit build: the release FAILED its audit "
              f"({', '.join(result.audit['failed'])}); its card says so and `safer-toolkit push` "
              "refuses it without --force", file=sys.stderr)
        status = 1
    if result.shortfall:
        short = ", ".join(f"{split} {n}" for split, n in result.shortfall.items())
        print(f"safer-toolkit build: SHORTFALL — too few items survived to fill every split "
              f"(rows missing: {short}); top losses: {loss_hint(result.manifest)}; see "
              f"{state}/ and the summary above", file=sys.stderr)
        status = 1
    if result.internal_errors:
        print(f"safer-toolkit build: {result.internal_errors} item(s) hit an internal error; "
              f"tracebacks are in {state / 'failures.jsonl'}", file=sys.stderr)
        status = 1
    return status
