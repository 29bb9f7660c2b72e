"""The README's user path holds together (issue #13, case 8): the eval-against-`serve` command
reads the folder the quick start writes, its `--out` is ignored by git, and a machine without a
GPU is told how to install the CPU build of torch."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_offline_eval_reads_what_the_quick_start_builds() -> None:
    built = re.search(r"safer-toolkit build --preset demo --out (\S+)", README)
    evaluated = re.search(r"safer-toolkit eval --dataset (\S+) --out (\S+) --prompt toolkit",
                          README)
    assert built and evaluated
    assert evaluated[1] == built[1], (evaluated[1], built[1])


def test_eval_runs_and_the_demo_are_ignored_by_git() -> None:
    outs = [m[2] for m in re.finditer(r"safer-toolkit eval --dataset (\S+) --out (\S+)", README)]
    assert outs and all(o.startswith("runs/") for o in outs)
    for path in ("runs/offline/results.jsonl", "demo-dataset/README.md"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT,
                                 check=False)
        assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"


def test_a_cpu_only_torch_install_is_documented() -> None:
    assert re.search(r"pip install torch==[\d.]+ --index-url https://download\.pytorch\.org/whl/cpu",
                     README)
    pinned = re.search(r'"torch==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned and f"pip install torch=={pinned[1]} --index-url" in README
