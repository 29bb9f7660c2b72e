"""`safer-toolkit eval` usage errors (issue #13, cases 6 and 8): each bad flag is one line on
stderr naming it, exit 2, at once — before any call, download or file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safer_toolkit.cli import main
from tests.support.eval_data import write_eval_dataset

ENDPOINT = "http://127.0.0.1:9/v1"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_eval_dataset(tmp_path_factory.mktemp("eval") / "dataset")


def _argv(dataset: Path | str, out: Path, *extra: str) -> list[str]:
    return ["eval", "--dataset", str(dataset), "--out", str(out), "--model-base-url", ENDPOINT,
            "--model", "m", "--judge-base-url", ENDPOINT, "--judge-model", "j", *extra]


@pytest.mark.parametrize(("extra", "message"), [
    (["--timeout", "inf"], "timeout_s > 0 (finite)"),
    (["--timeout", "nan"], "timeout_s > 0 (finite)"),
    (["--split", "bogus"], "config 'eval' has no split 'bogus' (it has test); check --split"),
    (["--judge-base-url", "file:///etc/passwd"], "--judge-base-url must be an http:// or"),
    (["--model-base-url", "localhost:8000/v1"], "--model-base-url must be an http:// or"),
    (["--model-base-url", "http://"], "--model-base-url must be an http:// or"),
])
def test_bad_flags_exit_2_with_one_line(dataset, tmp_path, capsys, extra, message) -> None:
    start = time.monotonic()
    assert main(_argv(dataset, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert time.monotonic() - start < 30
    assert not (tmp_path / "out").exists()


def test_a_dataset_that_is_neither_a_folder_nor_a_hub_dataset_fails_at_once(tmp_path) -> None:
    # online, with a Hub that cannot be reached: no half a minute of download retries
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    env["HF_HOME"] = str(tmp_path / "hf")
    for name, why in (("out/demo", "the Hub cannot be reached"),
                      ("./out/demo", "not a Hub dataset id")):
        start = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "safer_toolkit", *_argv(name, tmp_path / "o")],
                             capture_output=True, text=True, env=env, timeout=120, check=False)
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith(f"safer-toolkit eval: {name}: no such dataset folder")
        assert why in run.stderr and run.stderr.count("\n") == 1, run.stderr
        assert time.monotonic() - start < 20


def test_help_lists_compare_once_and_its_usage_is_its_own(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    assert text.count("compare OUT_A OUT_B") == 2  # in the usage and in the command list
    assert "\n  compare  " not in text and "{compare}" not in text
    with pytest.raises(SystemExit):
        main(["eval", "compare", "--help"])
    usage = capsys.readouterr().out.splitlines()[0]
    assert usage == "usage: safer-toolkit eval compare [-h] OUT_A OUT_B"
