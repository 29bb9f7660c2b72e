"""`safer-toolkit push DIR --repo-id ORG/NAME [--private] [--revision BRANCH] [--dry-run]
[--force]`.

A folder with no rows, a build shortfall or a failed (or missing) quality audit is refused
(`gate.release_problems`), dry run included, unless `--force`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_BRANCH = re.compile(r"[A-Za-z0-9][\w./-]{0,199}")
_PR_REF = re.compile(r"refs/pr/[1-9][0-9]{0,8}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="dataset folder written by `safer-toolkit build`")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repository")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", help="branch to push to (created if missing)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be uploaded where, with sizes; no network, no token")
    parser.add_argument("--force", action="store_true",
                        help="push even a release with no rows, a shortfall or a failed audit")


def revision_problem(revision: str) -> str | None:
    """Why `revision` is not a branch name the Hub accepts (git's ref rules), else None."""
    if _PR_REF.fullmatch(revision):
        return None  # pushing to an open pull request
    parts = revision.split("/")
    if not _BRANCH.fullmatch(revision) or revision.startswith("refs/") or ".." in revision \
            or any(not p or p.startswith(".") or p.endswith((".lock", ".")) for p in parts):
        return ("must be a branch name (letters, digits, `.`, `_`, `-`, `/` between parts; no "
                f"`..`, no part starting with `.`) or refs/pr/N, not {revision!r:.80}")
    return None


def run(args: argparse.Namespace) -> int:
    if not _REPO_ID.fullmatch(args.repo_id):
        print(f"push: --repo-id must look like ORG/NAME, not {args.repo_id!r}", file=sys.stderr)
        return 2
    if args.revision is not None and (problem := revision_problem(args.revision)):
        print(f"push: --revision {problem}", file=sys.stderr)
        return 2
    if not args.folder.is_dir():
        print(f"push: {args.folder} is not a folder", file=sys.stderr)
        return 2
    from .gate import release_problems
    from .push import PushError, describe, plan_uploads, push

    problems = release_problems(args.folder)
    for problem in problems:
        print(f"push: {args.folder}: {problem}", file=sys.stderr)
    if problems and not args.force:
        print("push: refused; --force pushes it anyway", file=sys.stderr)
        return 1
    try:
        if args.dry_run:
            print(describe(plan_uploads(args.folder), args.repo_id, args.revision, args.private))
            return 0
        push(args.folder, args.repo_id, private=args.private, revision=args.revision)
    except PushError as exc:
        print(f"push: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # Hub HTTP errors are OSErrors, a refused card a ValueError, an
        # unreachable Hub the HTTP library's own error: one line for each
        first = str(exc).splitlines()[0] if str(exc) else ""
        hint = "" if isinstance(exc, OSError | ValueError) else \
            " (is the Hub reachable? check the network, a proxy or HF_ENDPOINT)"
        print(f"push: {type(exc).__name__}: {first}{hint}", file=sys.stderr)
        return 1
    return 0
