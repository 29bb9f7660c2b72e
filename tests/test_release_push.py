"""`safer-toolkit push`: the plan offline, the dry run, and a real push to a loopback Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from safer_toolkit.builder.release.audit import AuditThresholds
from safer_toolkit.builder.release.card import REPO_PLACEHOLDER
from safer_toolkit.builder.release.export import write_dataset
from safer_toolkit.builder.release.push import (
    MAX_FILES_PER_COMMIT,
    PushError,
    batches,
    plan_uploads,
    stale_files,
)
from tests.support import release_rows as R
from tests.support.fake_hub import FakeHubServer

TOKEN = "hf_test_token_never_printed"
SIZES = {"sft": 30, "dpo": 30, "grpo": 60, "eval": 10}  # 60 EasyR1 images: more than 50 files


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("push")
    write_dataset(out, R.rows(SIZES), manifest=R.manifest(), build_config="seed = 0\n",
                  audit=AuditThresholds())
    (out / ".build").mkdir()
    (out / ".build" / "cache.sqlite").write_bytes(b"state")
    (out / ".release-tmp").mkdir()
    (out / ".release-tmp" / "leftover").write_text("x")
    (out / "outside-link").symlink_to("/etc/hostname")
    return out


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "safer_toolkit", "push", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def test_plan_skips_build_state_hidden_entries_and_links_and_puts_the_card_last(release):
    plan = plan_uploads(release)
    paths = [u.path_in_repo for u in plan]
    assert paths[-1] == "README.md"
    assert not any(p.startswith(".") or "/." in p for p in paths)
    assert "outside-link" not in paths
    on_disk = {p.relative_to(release).as_posix() for p in release.rglob("*")
               if p.is_file() and not p.is_symlink()
               and not p.relative_to(release).parts[0].startswith(".")}
    assert set(paths) == on_disk
    assert "easyr1/train.jsonl" in paths and "sft/train-00000-of-00001.parquet" in paths
    assert all(u.size == (release / u.path_in_repo).stat().st_size for u in plan)


def test_commits_hold_at_most_fifty_files_in_order():
    groups = batches(list(range(123)))
    assert [len(g) for g in groups] == [50, 50, 23]
    assert [x for g in groups for x in g] == list(range(123))
    assert batches([]) == []


def test_stale_files_are_only_those_of_owned_folders():
    plan = [type("U", (), {"path_in_repo": p})() for p in ("sft/train-00000-of-00001.parquet",
                                                           "README.md")]
    remote = ["sft/train-00000-of-00002.parquet", "sft/train-00000-of-00001.parquet",
              "notes/keep.md", ".gitattributes", "README.md", "easyr1/images/old.png"]
    assert stale_files(remote, plan) == ["easyr1/images/old.png",
                                         "sft/train-00000-of-00002.parquet"]


def test_dry_run_lists_every_file_with_sizes_and_needs_no_token(release, tmp_path):
    result = _cli(str(release), "--repo-id", "org/safety", "--revision", "v1", "--dry-run",
                  env=_env(HF_HOME=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    plan = plan_uploads(release)
    commits = [ln for ln in lines if ln.startswith("commit ")]
    assert len(commits) == -(-len(plan) // MAX_FILES_PER_COMMIT) >= 2
    assert "would create branch v1 (exist_ok)" in lines
    for upload in plan:
        assert any(f"-> org/safety@v1:{upload.path_in_repo} (" in ln for ln in lines)
    assert lines[-2].endswith("org/safety@v1:README.md (" + lines[-2].rsplit("(", 1)[1])
    assert ".build" not in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--repo-id", "no-slash"], "ORG/NAME"),
    (["--repo-id", "org/x", "--dry-run"], "is not a folder"),
])
def test_bad_usage_is_one_line_and_exit_2(tmp_path, args, message):
    result = _cli(str(tmp_path / "missing"), *args, env=_env())
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("case", "reason"), [
    ("empty", "0 rows"), ("short", "fell short of its sizes (rows missing: sft 4)"),
    ("failed", "failed its quality audit (images_with_metadata)"), ("unaudited", "not audited"),
])
def test_a_release_that_must_not_replace_the_remote_one_is_refused_unless_forced(
        tmp_path, case, reason):
    """A 0-row folder from a failed build, a shortfall or a failed audit would replace (and
    delete the shards of) a good remote release: refused, the dry run included."""
    limits = None if case == "unaudited" else AuditThresholds()
    manifest = R.manifest()
    if case == "short":
        manifest["counts"] = {"splits": {"sft": {"rows": 6, "shortfall": 4}}}
    rows = list(R.rows({"sft": 6})["sft"]) if case != "empty" else []
    if case == "failed":  # a picture that carries the answer key in a text chunk, planted
        rows[0]["images"] = [{"bytes": R.png_with_text("safer-toolkit:scene", "harmful"),
                              "path": "planted.png"}]
    write_dataset(tmp_path / "out", {"sft": iter(rows)} if rows else {}, manifest=manifest,
                  audit=limits)
    for extra in ([], ["--dry-run"]):
        result = _cli(str(tmp_path / "out"), "--repo-id", "org/x", *extra,
                      env=_env(HF_HOME=str(tmp_path)))
        assert result.returncode == 1 and reason in result.stderr, result.stderr
        assert "refused; --force" in result.stderr and not result.stdout
    forced = _cli(str(tmp_path / "out"), "--repo-id", "org/x", "--dry-run", "--force",
                  env=_env(HF_HOME=str(tmp_path)))
    assert forced.returncode == 0 and reason in forced.stderr
    assert "org/x@main:README.md" in forced.stdout


def test_a_folder_without_a_card_is_refused(tmp_path):
    with pytest.raises(PushError, match=r"no README\.md"):
        plan_uploads(tmp_path)


def test_push_without_a_token_says_so(release, tmp_path):
    result = _cli(str(release), "--repo-id", "org/safety",
                  env=_env(HF_HOME=str(tmp_path), HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9"))
    assert result.returncode == 2
    assert "no Hugging Face token" in result.stderr


def test_push_to_a_loopback_hub(release, tmp_path):
    with FakeHubServer() as server:
        env = _env(HF_ENDPOINT=server.url, HF_TOKEN=TOKEN, HF_HUB_OFFLINE="0",
                   HF_HOME=str(tmp_path))
        result = _cli(str(release), "--repo-id", "org/safety", "--private", "--revision", "dev",
                      env=env)
        assert result.returncode == 0, result.stderr
        hub = server.hub
        assert TOKEN not in result.stdout + result.stderr
        assert hub.authorizations == {f"Bearer {TOKEN}"}
        assert hub.private["org/safety"] is True
        plan = plan_uploads(release)
        files = hub.files("org/safety", "dev")
        assert set(files) == {u.path_in_repo for u in plan}
        assert hub.files("org/safety", "main") == {}
        for upload in plan:
            if upload.path_in_repo != "README.md":
                assert files[upload.path_in_repo] == upload.local.read_bytes()
        card = files["README.md"].decode()
        assert 'REPO = "org/safety"' in card and REPO_PLACEHOLDER not in card
        assert len(hub.commits) == -(-len(plan) // MAX_FILES_PER_COMMIT)
        assert all(len(c.added) + len(c.deleted) <= MAX_FILES_PER_COMMIT for c in hub.commits)
        assert "README.md" in hub.commits[-1].added
        assert all("README.md" not in c.added for c in hub.commits[:-1])
        assert [line for line in result.stdout.splitlines() if line.startswith("commit ")]

        # a re-export with more shards, pushed again: the old shard goes, unchanged files stay
        write_dataset(release, R.rows(SIZES), manifest=R.manifest(), row_group_bytes=10_000,
                      shard_bytes=20_000, audit=AuditThresholds())
        pushed = len(hub.commits)
        result = _cli(str(release), "--repo-id", "org/safety", "--revision", "dev", env=env)
        assert result.returncode == 0, result.stderr
        files = hub.files("org/safety", "dev")
        sft = sorted(p for p in files if p.startswith("sft/"))
        assert sft == sorted(f"sft/{p.name}" for p in (release / "sft").glob("*.parquet"))
        assert len(sft) > 1 and "sft/train-00000-of-00001.parquet" not in sft
        assert "sft/train-00000-of-00001.parquet" in hub.commits[-1].deleted
        new_commits = hub.commits[pushed:]
        uploaded = {p for c in new_commits for p in c.added}
        assert "easyr1/train.jsonl" not in uploaded  # unchanged: the Hub skips it
        assert "README.md" in new_commits[-1].added
