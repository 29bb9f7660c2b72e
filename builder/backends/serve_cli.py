"""`safer-toolkit serve [--host 127.0.0.1] [--port N]`: the offline backend over HTTP."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; the server has no auth)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port to listen on (default 8000; 0 picks a free one)")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from .serve import start

    if not 0 <= args.port < 65536:
        print(f"safer-toolkit serve: --port must be 0..65535, not {args.port}", file=sys.stderr)
        return 2

    async def serve() -> None:
        runner, port = await start(args.host, args.port)
        print(f"serving the offline backend on http://{args.host}:{port}/v1", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except OSError as exc:
        print(f"safer-toolkit serve: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return 0
