"""`safer-toolkit check-export [--cwd LAUNCH_DIR] easyr1 DIR [-- config=FILE KEY=VALUE ...]`.

Checks an export folder (a release's `easyr1/`, or the release folder holding it) and, given
the arguments of the authors' trainer (`python3 -m verl.trainer.main ARGS`), whether that
command runs on it (`easyr1_check`). Without arguments it prints the command that does, with
this folder's absolute paths. Exit status: 0 runs (warnings may be printed), 1 it would break,
2 usage.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

PROG = "safer-toolkit check-export"
FORMATS = ("easyr1",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS, help="the export to check")
    parser.add_argument("folder", type=Path, metavar="DIR",
                        help="the export folder (DATASET/easyr1) or the dataset folder")
    parser.add_argument("arguments", nargs="*", metavar="KEY=VALUE",
                        help="the trainer's arguments to check, as on its command line "
                             "(config=examples/config.yaml data.image_dir=… …), after `--`; "
                             "options go before `easyr1`")
    parser.add_argument("--cwd", type=Path, default=None, metavar="LAUNCH_DIR",
                        help="the directory the trainer is launched from (the fork's "
                             "checkout), against which it resolves relative paths "
                             "(default: the current directory)")


def _command(folder: Path, train_rows: int) -> str:
    """The recipe for `folder`; a rollout batch larger than the training records (the demo)
    is cut to the largest power of two that fits, as the fork needs one full batch."""
    from .easyr1_recipe import overrides, reward_file

    args = ["config=examples/config.yaml",
            *overrides(str(folder), "/ABSOLUTE/PATH/TO/POLICY", reward_file())]
    for i, arg in enumerate(args):
        key, _, value = arg.partition("=")
        if key in ("data.rollout_batch_size", "worker.actor.global_batch_size") \
                and 0 < train_rows < int(value):
            args[i] = f"{key}={1 << (train_rows.bit_length() - 1)}"
    return "python3 -m verl.trainer.main \\\n" + " \\\n".join(
        f"    {shlex.quote(a)}" for a in args)


def run(args: argparse.Namespace) -> int:
    from .easyr1_check import CheckError, check_export

    folder: Path = args.folder
    if (folder / "easyr1").is_dir() and not (folder / "train.jsonl").exists():
        folder = folder / "easyr1"
    if not folder.is_dir():
        print(f"{PROG}: {args.folder} is not a folder", file=sys.stderr)
        return 2
    try:
        report = check_export(folder, args.arguments or None, args.cwd)
    except CheckError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    for message in report.errors:
        print(f"error: {message}")
    for message in report.warnings:
        print(f"warning: {message}")
    rows = ", ".join(f"{n} {name}" for name, n in report.rows.items())
    if not report.ok:
        print(f"{len(report.errors)} problem(s) would break the authors' EasyR1 trainer on "
              f"{folder} ({rows} records, {report.images} images)")
        return 1
    print(f"ok: {folder.resolve()} ({rows} records, {report.images} images)"
          + ("; the arguments run on it" if args.arguments else ""))
    if not args.arguments:
        print("From the fork's checkout (github.com/Duebassx/SaFeR_ToolKit), with your policy "
              f"path filled in (or run {folder.resolve() / 'run_grpo.sh'}):")
        print(_command(folder.resolve(), report.rows.get("train.jsonl", 0)))
    return 0
