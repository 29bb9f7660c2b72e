"""`safer-toolkit grammar`: print a protocol's trace grammar, or check records against theirs.

    safer-toolkit grammar PROTOCOL.json --dialect gbnf > trace.gbnf
    safer-toolkit grammar --library default --topology mesh --dialect ebnf
    safer-toolkit grammar [PROTOCOL.json] --check RECORDS.jsonl... [--report REPORT.jsonl]

Exit status: 0 printed / every record accepted, 1 some record refused, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..vocabulary import TOPOLOGIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", nargs="?", metavar="PROTOCOL.json",
                        help="the protocol (with --check: for records that embed none)")
    parser.add_argument("--library", choices=("default",),
                        help="build the protocol from every tool of this library")
    parser.add_argument("--topology", choices=TOPOLOGIES, help="topology for --library")
    parser.add_argument("--dialect", choices=("ebnf", "gbnf", "lark"), default="gbnf",
                        help="ebnf: xgrammar (vLLM structured_outputs, SGLang); gbnf: llama.cpp "
                             "(default); lark: llguidance (vLLM's guidance backend)")
    parser.add_argument("--out", metavar="FILE", help="write the grammar here, not to stdout")
    parser.add_argument("--check", nargs="+", metavar="RECORDS",
                        help="check records (JSONL, JSON array or parquet, as `validate` reads "
                             "them) against their protocol's grammar")
    parser.add_argument("--report", metavar="REPORT.jsonl",
                        help="with --check: one JSON line per record here")
    parser.add_argument("--json", action="store_true", help="with --check: a JSON summary")
    narrow = parser.add_argument_group("generation narrowing (default: the exact grammar)")
    narrow.add_argument("--generation", action="store_true",
                        help="the caps suited to small models (strings 160, arrays 6, answer "
                             "600, walk states 600)")
    for flag, what in (("--max-string", "characters per JSON string"),
                       ("--max-items", "items per JSON array"),
                       ("--max-answer", "characters of the answer"),
                       ("--max-walk-states", "walk automaton states (fewer calls past it)")):
        narrow.add_argument(flag, type=int, metavar="N", help=f"at most N {what}")


def _fail(message: str) -> int:
    print(f"safer-toolkit grammar: {message}", file=sys.stderr)
    return 2


def _limits(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from . import GrammarLimits

    base = GrammarLimits.generation() if args.generation else GrammarLimits()
    given = {name: getattr(args, name) for name in ("max_string", "max_items", "max_answer",
                                                    "max_walk_states")
             if getattr(args, name) is not None}
    return replace(base, **given)


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    from ..report import AtomicWriter

    with AtomicWriter(out) as f:
        f.file.write(text.encode())


def run(args: argparse.Namespace) -> int:
    from ..cli import _protocol_doc
    from ..protocol import ProtocolInvalid
    from . import GrammarError, compile_grammar

    try:
        limits = _limits(args)
    except ValueError as exc:
        return _fail(str(exc))
    doc, error = _protocol_doc(args)
    if error:
        return _fail(error)
    if args.check:
        return _check(args, doc, limits)
    if args.report or args.json:
        return _fail("--report and --json go with --check")
    if doc is None:
        return _fail("give a PROTOCOL.json, --library/--topology, or --check RECORDS")
    try:
        grammar = compile_grammar(doc, limits)
    except ProtocolInvalid as exc:
        details = "; ".join(f"{i.path or '/'}: {i.message}" for i in exc.issues)
        return _fail(f"the protocol is invalid ({details})")
    except GrammarError as exc:
        return _fail(str(exc))
    try:
        _write(grammar.text(args.dialect), args.out)
    except OSError as exc:
        return _fail(f"{args.out}: {exc.strerror or exc}")
    if args.out:
        print(f"{args.out}: {grammar.walk_states} walk states"
              + (f" ({grammar.narrowed})" if grammar.narrowed else ""), file=sys.stderr)
    return 0


def _check(args: argparse.Namespace, default_doc: Any, limits: Any) -> int:
    import orjson

    from ..records import RecordSourceError
    from ..report import AtomicWriter
    from .checks import GrammarChecker
    from .matcher import MatcherUnavailable

    try:
        checker = GrammarChecker(default_doc, limits)
    except MatcherUnavailable as exc:
        return _fail(str(exc))
    try:
        if args.report:
            with AtomicWriter(args.report) as report:
                for line in checker.check_files(args.check):
                    report.file.write(orjson.dumps(line) + b"\n")
        else:
            for _ in checker.check_files(args.check):
                pass
    except RecordSourceError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{getattr(exc, 'filename', '') or ''} {exc.strerror or exc}".strip())
    summary = checker.summary()
    if args.json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        print(f"{summary['records']} records: {summary['accepted']} accepted, "
              f"{summary['refused']} refused ({summary['no_grammar']} without a grammar)")
    return 0 if summary["refused"] == 0 else 1
