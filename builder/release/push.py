"""Upload a built dataset folder to the Hugging Face Hub, in commits of at most 50 files.

The plan (which local file goes where, in which commit) is computed offline and is what
`--dry-run` prints. The builder's state (`.build/`), a leftover export staging folder and any
other hidden entry stay local; symbolic links are never followed out of the folder. The card
goes in the last commit, so the Hub never shows a card whose configs point at files that are
not there yet; files of a previous push that this release no longer has (e.g. shards of another
count) are deleted in that same commit.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ReleaseError
from .card import REPO_PLACEHOLDER, human_size

MAX_FILES_PER_COMMIT = 50
CARD = "README.md"
#: remote folders whose content the release owns entirely (stale files there get deleted)
OWNED_FOLDERS = ("sft/", "dpo/", "grpo/", "eval/", "easyr1/", "schemas/", "assets/")


class PushError(ReleaseError, RuntimeError):
    """A push that cannot start: no folder, no card, no token."""


@dataclass(frozen=True)
class Upload:
    local: Path
    path_in_repo: str
    size: int


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):  # os.walk does not follow symlinked folders
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if not name.startswith(".") and not path.is_symlink():
                yield path


def _unuploadable(path: Path, in_repo: str) -> str | None:
    """Why a file cannot go to the Hub as it is (a FIFO would block the upload forever; a name
    with a control character or undecodable bytes is refused there), else None."""
    if not stat.S_ISREG(path.lstat().st_mode):
        return f"{in_repo!r} is not a regular file"
    try:
        in_repo.encode("utf-8")
    except UnicodeEncodeError:
        return f"{in_repo!r} is not valid UTF-8"
    if any(ord(c) < 32 or ord(c) == 127 for c in in_repo):
        return f"{in_repo!r} has a control character in its name"
    return None


def plan_uploads(folder: Path) -> list[Upload]:
    """Every file to upload, card last; hidden entries (`.build/`, ...) and links left out.
    Raises `PushError` naming entries that cannot be uploaded as they are."""
    folder = Path(folder)
    if not (folder / CARD).is_file():
        raise PushError(f"{folder}: no {CARD}; is this a folder written by `safer-toolkit build`?")
    uploads, refused = [], []
    for p in _walk(folder):
        in_repo = p.relative_to(folder).as_posix()
        if problem := _unuploadable(p, in_repo):
            refused.append(problem)
        else:
            uploads.append(Upload(p, in_repo, p.stat().st_size))
    if refused:
        raise PushError(f"{folder}: {len(refused)} entr{'y' if len(refused) == 1 else 'ies'} "
                        f"cannot be uploaded ({'; '.join(refused[:10])}); remove or rename them")
    return sorted(uploads, key=lambda u: (u.path_in_repo == CARD, u.path_in_repo))


def batches(items: Sequence[Any], size: int = MAX_FILES_PER_COMMIT) -> list[list[Any]]:
    """Consecutive groups of at most `size` (the order is kept, so the card stays last)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def stale_files(remote: Sequence[str], uploads: Sequence[Upload]) -> list[str]:
    """Remote files in folders the release owns that this release no longer has."""
    local = {u.path_in_repo for u in uploads}
    return sorted(p for p in remote if p.startswith(OWNED_FOLDERS) and p not in local)


def card_bytes(upload: Upload, repo_id: str) -> bytes:
    """The card with the loading snippets' placeholder replaced by the real repository id."""
    return upload.local.read_bytes().replace(REPO_PLACEHOLDER.encode(), repo_id.encode())


def describe(uploads: Sequence[Upload], repo_id: str, revision: str | None,
             private: bool) -> str:
    """The dry-run report: every file, its destination and size, grouped by commit."""
    target = f"{repo_id}@{revision or 'main'}"
    groups = batches(uploads)
    total = sum(u.size for u in uploads)
    lines = [f"would create dataset repo {repo_id} ({'private' if private else 'public'}, "
             "exist_ok)"]
    if revision and revision != "main":
        lines.append(f"would create branch {revision} (exist_ok)")
    for i, group in enumerate(groups, 1):
        size = sum(u.size for u in group)
        lines.append(f"commit {i}/{len(groups)}: {len(group)} files, {human_size(size)}")
        lines += [f"  {u.local} -> {target}:{u.path_in_repo} ({human_size(u.size)})" for u in group]
    lines.append(f"total: {len(uploads)} files, {human_size(total)} in {len(groups)} commits; "
                 f"{CARD} last, with {REPO_PLACEHOLDER!r} replaced by {repo_id!r}; remote files "
                 f"under {', '.join(OWNED_FOLDERS)} that this release lacks are deleted in the "
                 "last commit")
    return "\n".join(lines)


def _groups(adds: Sequence[Any], deletions: Sequence[Any], card: Any) -> list[list[Any]]:
    """Commits in order: the adds, then a last commit holding the card with the deletions
    beside it (topped up with the last adds, so there are no more commits than files need)."""
    room = MAX_FILES_PER_COMMIT - 1
    late = list(deletions[-room:]) if deletions else []
    early = list(deletions[:len(deletions) - len(late)])
    fill = min(room - len(late), len(adds)) if not early else 0
    head, tail = list(adds[:len(adds) - fill]), list(adds[len(adds) - fill:])
    return [*batches([*head, *early]), [*tail, *late, card]]


def push(folder: Path, repo_id: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None, log: Any = print) -> list[str]:
    """Create the repo (and branch), upload the plan, return the commit URLs."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token

    uploads = plan_uploads(folder)
    token = token or get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    remote = api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
    operations: list[Any] = [
        CommitOperationAdd(u.path_in_repo,
                           card_bytes(u, repo_id) if u.path_in_repo == CARD else str(u.local))
        for u in uploads]
    stale = [CommitOperationDelete(p) for p in stale_files(remote, uploads)]
    groups = _groups(operations[:-1], stale, operations[-1])
    urls = []
    for i, group in enumerate(groups, 1):
        info = api.create_commit(
            repo_id, operations=group, repo_type="dataset", revision=revision,
            commit_message=f"Upload SaFeR-ToolKit release ({i}/{len(groups)})")
        log(f"commit {i}/{len(groups)}: {len(group)} operations -> {info.commit_url}")
        urls.append(info.commit_url)
    return urls
