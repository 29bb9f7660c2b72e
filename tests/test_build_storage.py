"""A build or an evaluation whose own state cannot be written (issue #13, case 6): a full disk or
a read-only `--out` is one message naming the file and the cause, no traceback, no
"Task exception was never retrieved", and finished work is kept."""

from __future__ import annotations

import subprocess
import sys

import pytest

from safer_toolkit.builder.cache import CallCache
from safer_toolkit.builder.storage import StorageError
from safer_toolkit.cli import main
from tests.support.build_config import write_config
from tests.support.filesystems import file_size_cap, freezable_folder


def _build(config, out, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "safer_toolkit", "build", "--config",
                           str(config), "--out", str(out), "--quiet"], capture_output=True,
                          text=True, timeout=300, check=False, **popen)


def test_a_full_disk_stops_the_build_with_one_message_and_keeps_finished_calls(tmp_path):
    config = write_config(tmp_path / "small.toml", sft=3, dpo=3, grpo=2, eval_=2)
    out = tmp_path / "out"
    full = _build(config, out, preexec_fn=file_size_cap(100_000))
    assert full.returncode == 1
    assert full.stderr.startswith("safer-toolkit build: cannot write the call cache "
                                  f"{out}/.build/calls.sqlite: "), full.stderr
    assert len(full.stderr.strip().splitlines()) == 1, full.stderr  # no traceback, no task noise
    assert "Traceback" not in full.stderr and "never retrieved" not in full.stderr
    cached = len(CallCache(out / ".build" / "calls.sqlite"))
    assert cached > 0  # what finished before the disk filled up is kept for the rerun
    again = _build(config, out)  # room again: the same command finishes, reusing those calls
    assert again.returncode == 0, again.stderr
    assert "taking over" not in again.stderr  # the failed build released its lock


def test_a_read_only_existing_out_is_a_message_naming_it(tmp_path, capsys):
    config = write_config(tmp_path / "small.toml", sft=3, dpo=3, grpo=2, eval_=2)
    with freezable_folder(tmp_path / "out") as freeze:
        out = tmp_path / "out"
        assert main(["build", "--config", str(config), "--out", str(out), "--quiet"]) == 0
        capsys.readouterr()
        freeze()
        code = main(["build", "--config", str(config), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err, err
        assert f"{out}/.build/" in err and ("read-only" in err or "permission denied" in err)
        with pytest.raises(StorageError, match=r"cannot write the call cache .*calls\.sqlite"):
            CallCache(out / ".build" / "calls.sqlite")  # what `eval --out` opens too
