"""`safer-toolkit push` with what should not be pushed (issue #13, case 6): an unreachable Hub,
a FIFO or an odd file name in the folder, a revision that is not a branch — each one line
naming the problem, never a traceback, and the dry run shows the same refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from safer_toolkit.builder.release.audit import AuditThresholds
from safer_toolkit.builder.release.export import write_dataset
from safer_toolkit.cli import main
from tests.support import release_rows as R


@pytest.fixture
def release(tmp_path) -> Path:
    out = tmp_path / "release"
    write_dataset(out, R.rows({"sft": 4, "dpo": 3, "grpo": 3, "eval": 2}), manifest=R.manifest(),
                  build_config="seed = 0\n", audit=AuditThresholds())  # audited: push's gate passes
    return out


def _push(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
    return subprocess.run([sys.executable, "-m", "safer_toolkit", "push", *args],
                          env={**base, "HF_HUB_OFFLINE": "1", **env}, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_fifo_or_a_control_character_in_a_name_is_refused_even_in_a_dry_run(
        release, capsys) -> None:
    os.mkfifo(release / "assets" / "pipe")
    (release / "assets" / "two\nlines.txt").write_text("x")
    assert main(["push", str(release), "--repo-id", "org/name", "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "'assets/pipe' is not a regular file" in err
    assert "'assets/two\\nlines.txt' has a control character" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("revision", ["refs/../../x", "../main", "a//b", ".hidden", "x.lock",
                                      "refs/heads/main", "with space"])
def test_a_revision_that_is_not_a_branch_name_is_refused(release, capsys, revision) -> None:
    code = main(["push", str(release), "--repo-id", "org/name", "--dry-run", "--revision",
                 revision])
    assert code == 2 and "push: --revision must be a branch name" in capsys.readouterr().err


def test_branch_names_and_pull_requests_are_accepted(release, capsys) -> None:
    for revision in ("dev", "release/v1.0", "refs/pr/12"):
        assert main(["push", str(release), "--repo-id", "org/name", "--dry-run", "--revision",
                     revision]) == 0
        assert f"org/name@{revision}:" in capsys.readouterr().out


def test_an_unreachable_hub_is_one_line(release) -> None:
    run = _push(str(release), "--repo-id", "org/name", HF_HUB_OFFLINE="0", HF_TOKEN="hf_x",
                HF_ENDPOINT="http://127.0.0.1:9")
    assert run.returncode == 1, run.stderr
    assert run.stderr.startswith("push: ConnectError: ") and "is the Hub reachable?" in run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
