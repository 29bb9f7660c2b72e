"""`safer-toolkit validate`: check trace files and report per record (issue #2 CLI contract).

Exit status: 0 all valid, 1 some invalid, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import sys

from .vocabulary import TOPOLOGIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="JSONL, JSON array or parquet files of records (docs/protocol.md §3)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--strict", dest="mode", action="store_const", const="strict",
                      help="every thinking line must be `[NAME]: {json}` (default)")
    mode.add_argument("--lenient", dest="mode", action="store_const", const="lenient",
                      help="accept the authors' `[TOOL]: free text` format")
    parser.set_defaults(mode="strict")
    parser.add_argument("--protocol", metavar="PROTOCOL.json",
                        help="protocol for records that embed none")
    parser.add_argument("--library", choices=("default",),
                        help="build the protocol from every tool of this library")
    parser.add_argument("--topology", choices=TOPOLOGIES, help="topology for --library")
    parser.add_argument("--report", metavar="REPORT.jsonl",
                        help="write one JSON line per record here")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _fail(message: str) -> int:
    print(f"safer-toolkit validate: {message}", file=sys.stderr)
    return 2


def _protocol_doc(args: argparse.Namespace) -> tuple[object, str | None]:
    """The default protocol document, or an error message."""
    if args.protocol and (args.library or args.topology):
        return None, "give --protocol or --library/--topology, not both"
    if args.protocol:
        import orjson

        try:
            with open(args.protocol, "rb") as f:
                return orjson.loads(f.read()), None
        except OSError as exc:
            return None, f"{args.protocol}: {exc.strerror or exc}"
        except orjson.JSONDecodeError as exc:
            return None, f"{args.protocol}: not JSON: {exc}"
    if args.library or args.topology:
        if not (args.library and args.topology):
            return None, "--library and --topology go together"
        from .protocol import library_protocol_document

        return library_protocol_document(args.topology, args.library), None
    return None, None


def _report_problem(report: str, inputs: list[str]) -> str | None:
    """Why `--report` cannot be written as given (checked before any work), else None."""
    import os

    if os.path.isdir(report):
        return f"--report {report} is a folder; give a file name, e.g. {report}/report.jsonl"
    if os.path.exists(report):
        for name in inputs:
            try:
                if os.path.samefile(report, name):
                    return f"--report {report} is also an input; it would be overwritten"
            except OSError:
                continue  # a missing input is reported when it is read
    return None


def run(args: argparse.Namespace) -> int:
    import sqlite3

    import orjson

    from .protocol import ProtocolInvalid
    from .records import RecordSourceError
    from .report import (
        AtomicWriter,
        DuplicateIds,
        Summary,
        duplicates_text,
        validate_files,
        write_report_line,
    )
    from .validator import Validator

    doc, error = _protocol_doc(args)
    if error:
        return _fail(error)
    try:
        validator = Validator(doc, mode=args.mode)  # type: ignore[arg-type]
    except ProtocolInvalid as exc:
        details = "; ".join(f"{i.path or '/'}: {i.message}" for i in exc.issues)
        return _fail(f"the given protocol is invalid ({details})")
    if args.report and (problem := _report_problem(args.report, args.files)):
        return _fail(problem)
    summary = Summary()
    ids = DuplicateIds()
    try:
        if args.report:
            with AtomicWriter(args.report) as report:
                for result in validate_files(args.files, validator):
                    summary.add(result)
                    ids.add(result)
                    write_report_line(report.file, result)
        else:
            for result in validate_files(args.files, validator):
                summary.add(result)
                ids.add(result)
        duplicates = ids.found()
    except RecordSourceError as exc:
        return _fail(str(exc))
    except (OSError, sqlite3.Error) as exc:
        return _fail(f"{getattr(exc, 'filename', '') or ''} {getattr(exc, 'strerror', '') or exc}"
                     .strip())
    finally:
        ids.close()
    if args.json:
        found = summary.to_dict()
        if duplicates:
            found["duplicate_ids"] = duplicates
        sys.stdout.write(orjson.dumps(found).decode() + "\n")
    else:
        print(summary.to_text())
    if duplicates:
        print(f"safer-toolkit validate: {duplicates_text(duplicates)}", file=sys.stderr)
    return 0 if summary.invalid == 0 else 1
