"""`safer-toolkit`: one command line for every part of the toolkit.

Thin on purpose. Each subcommand lives beside its library (`<package>/cli.py` with
`add_arguments(parser)` and `run(args) -> int`) and is imported only when it is the one asked
for, so `safer-toolkit validate` never pays for `datasets` or `torch` at start-up. A
`SaferToolkitError` a subcommand does not handle itself becomes one line on stderr and the exit
status of its area (`safer_toolkit.errors.exit_code`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import SaferToolkitError, exit_code

#: subcommand → (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("safer_toolkit.validation.cli",
                 "check traces against protocols (docs/protocol.md §4)"),
    "grammar": ("safer_toolkit.validation.grammar.cli",
                "a protocol's trace grammar (EBNF/GBNF), or check records against it"),
    "build": ("safer_toolkit.builder.cli", "build the SFT/DPO/GRPO/eval dataset"),
    "serve": ("safer_toolkit.builder.backends.serve_cli",
              "serve the offline backend as an OpenAI-compatible endpoint"),
    "audit": ("safer_toolkit.builder.release.audit.cli",
              "measure a built dataset's shortcuts against the build's bounds"),
    "push": ("safer_toolkit.builder.release.cli", "upload a built dataset folder to the Hub"),
    "check-export": ("safer_toolkit.builder.release.check_cli",
                     "check an export (easyr1) and a trainer command line against it"),
    "train": ("safer_toolkit.training_reference.cli", "reference SFT → DPO → GRPO trainer"),
    "eval": ("safer_toolkit.evaluation.cli", "evaluate a model on the eval config"),
}


def _top_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="safer-toolkit",
        description="Build, validate, release and train on checkable safety-reasoning data.",
    )
    parser.add_argument("--version", action="version", version=f"safer-toolkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        if not argv:
            parser.print_help()
            return 2
        parser.parse_args(argv)  # prints usage and exits 2 for an unknown command
        return 2
    module_name, help_text = COMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"safer-toolkit {argv[0]}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args))
    except SaferToolkitError as exc:  # one a subcommand left to this table (`exit_code`)
        print(f"safer-toolkit {argv[0]}: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
