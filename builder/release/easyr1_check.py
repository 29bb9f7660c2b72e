"""Will the authors' EasyR1 fork run on this export, with this command line?

Checks the folder (every record, every image) and, given the trainer's arguments (`config=FILE`
and `KEY=VALUE` overrides, as on the fork's command line), the settings that break on it — each
found by running the authors' script on a release:

- `data.image_dir` unset (`IMAGE_DIR=null` in their script): image paths are opened relative to
  the launch directory → `FileNotFoundError`; one that does not exist is silently dropped by
  the fork (`get_abs_path`), with the same result;
- `data.train_files` (or `val_files`) a folder: the fork takes the file type from the folder's
  first listing entry (`images/`) → `IndexError`;
- no `data.val_files`: the fork's loader builds a validation set unconditionally;
- `data.format_prompt` set (their script's `toolkit.jinja`): a second, conflicting instruction
  and persona stacked on the toolkit instruction every `problem` already carries.
Relative paths are resolved as the fork resolves them: against the launch directory (`cwd`).
The fork's defaults for what the arguments leave unset are `FORK_DEFAULTS` (its `DataConfig`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ReleaseError
from ...validation import ProtocolInvalid
from ...validation.protocol import ProtocolCache
from .easyr1 import IMAGE_TOKEN, TRAIN_FILE, VAL_FILE
from .easyr1_recipe import CHAT_TEMPLATE_FILE

#: the fork's `DataConfig` defaults for the keys checked here (verl/trainer/config.py)
FORK_DEFAULTS: dict[str, Any] = {
    "train_files": "", "val_files": "", "prompt_key": "prompt", "answer_key": "answer",
    "image_key": "images", "image_dir": None, "format_prompt": None,
    "override_chat_template": None, "max_prompt_length": 512, "rollout_batch_size": 512,
    "mini_rollout_batch_size": None, "min_pixels": 262144, "max_pixels": 4194304,
    "filter_overlong_prompts": True,
}
EXPECTED_KEYS = {"prompt_key": "problem", "answer_key": "answer", "image_key": "images"}
MAX_LINE_BYTES = 8 * 1024 * 1024
#: a rough upper bound of tokens per character of instruction text (no tokenizer here)
TOKENS_PER_CHAR = 0.35
PIXELS_PER_TOKEN = 28 * 28
MAX_LISTED = 5


class CheckError(ReleaseError, ValueError):
    """The arguments themselves cannot be read (a missing config file, a bad override)."""


@dataclass
class Report:
    """Findings (`error` breaks the run, `warning` changes it) and what the folder holds."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # file name → usable records
    images: int = 0
    #: per record: characters of text and its images (for the prompt length the fork's
    #: `filter_overlong_prompts` measures; the images are opened only when that is checked)
    prompts: list[tuple[int, list[Path]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _records(path: Path, report: Report) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            where = f"{path}:{number}"
            if len(raw) > MAX_LINE_BYTES:
                report.errors.append(f"{where}: line longer than {MAX_LINE_BYTES} bytes")
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                report.errors.append(f"{where}: not JSON ({exc.msg})")
                continue
            if not isinstance(record, dict):
                report.errors.append(f"{where}: not a JSON object")
                continue
            yield where, record


def _check_record(where: str, record: Mapping[str, Any], root: Path,
                  seen: set[str], protocols: ProtocolCache) -> list[str]:
    problem, images = record.get("problem"), record.get("images")
    if not isinstance(problem, str) or not isinstance(images, list):
        return [f"{where}: needs a string `problem` and a list `images`"]
    found = []
    if problem.count(IMAGE_TOKEN) != len(images):
        found.append(f"{where}: {problem.count(IMAGE_TOKEN)} {IMAGE_TOKEN} markers for "
                     f"{len(images)} images (the fork puts one image at each marker)")
    for name in images:
        if not isinstance(name, str) or not name:
            found.append(f"{where}: an image entry is not a relative path")
            continue
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            found.append(f"{where}: image {name!r} leaves {root}")
        elif not path.is_file():
            found.append(f"{where}: image {name!r} is not under {root}")
        else:
            seen.add(name)
    try:
        answer = json.loads(record.get("answer") or "")
        protocols.get(answer["protocol"])
    except (TypeError, KeyError, json.JSONDecodeError):
        found.append(f"{where}: `answer` is not this release's JSON with a `protocol` (the "
                     "reward gets no protocol term)")
    except ProtocolInvalid as exc:
        found.append(f"{where}: the protocol in `answer` is unusable ({exc})")
    return found


def _pixels(path: Path) -> int:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # reads the header only
            return image.width * image.height
    except (OSError, UnidentifiedImageError):
        return 0


def longest_prompt(report: Report, min_pixels: int | None, max_pixels: int | None) -> int:
    """Estimated tokens of the longest prompt: text at `TOKENS_PER_CHAR`, each image resized
    into [min_pixels, max_pixels] as the fork's `process_image` does, a token per 28×28."""
    def tokens(pixels: int) -> int:
        if max_pixels is not None and pixels > max_pixels:
            pixels = max_pixels
        if min_pixels is not None and pixels < min_pixels:
            pixels = min_pixels
        return pixels // PIXELS_PER_TOKEN

    return max((int(chars * TOKENS_PER_CHAR) + sum(tokens(_pixels(i)) for i in images)
                for chars, images in report.prompts), default=0)


def check_folder(easyr1_dir: Path, report: Report) -> None:
    """Every record of `train.jsonl` and `val.jsonl`, and every image they name."""
    root = easyr1_dir.resolve()
    seen: set[str] = set()
    protocols = ProtocolCache()
    for name in (TRAIN_FILE, VAL_FILE):
        path = root / name
        if not path.is_file():
            report.errors.append(f"{path}: missing (the fork needs a train and a validation file)")
            continue
        count, bad = 0, []
        for where, record in _records(path, report):
            problems = _check_record(where, record, root, seen, protocols)
            bad += problems
            count += not problems
            if not problems:
                report.prompts.append((len(record["problem"]),
                                       [root / n for n in record["images"]]))
        report.rows[name] = count
        report.errors += bad[:MAX_LISTED]
        if len(bad) > MAX_LISTED:
            report.errors.append(f"{path}: … and {len(bad) - MAX_LISTED} more problems")
        if not count:
            report.errors.append(f"{path}: no usable record")
    report.images = len(seen)
    if not (root / CHAT_TEMPLATE_FILE).is_file():
        report.warnings.append(f"{root / CHAT_TEMPLATE_FILE}: missing (an older export?)")


def _value(text: str) -> Any:
    """An override's value as the fork's OmegaConf reads it (YAML scalars: null, numbers…)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def resolve_data(arguments: Sequence[str], cwd: Path) -> dict[str, Any]:
    """The `data` settings the fork would run with: its defaults, then `config=FILE`, then
    the `data.KEY=VALUE` overrides. Raises `CheckError`."""
    import yaml

    data = dict(FORK_DEFAULTS)
    extra: dict[str, Any] = {}
    overrides = []
    for argument in arguments:
        key, sep, text = argument.partition("=")
        if not sep or not key:
            raise CheckError(f"{argument!r} is not KEY=VALUE")
        if key == "config":
            path = (cwd / text) if not Path(text).is_absolute() else Path(text)
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise CheckError(f"config={text}: {exc}") from None
            if not isinstance(loaded, dict):
                raise CheckError(f"config={text}: not a YAML mapping")
            data.update(loaded.get("data") or {})
            reward = (loaded.get("worker") or {}).get("reward") or {}
            if "reward_function" in reward:
                extra["reward_function"] = reward["reward_function"]
        else:
            overrides.append((key, _value(text)))
    for key, value in overrides:
        if key.startswith("data."):
            data[key.removeprefix("data.")] = value
        elif key == "worker.reward.reward_function":
            extra["reward_function"] = value
    return {**data, **{f"_{k}": v for k, v in extra.items()}}


def _path(value: Any, cwd: Path) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(str(value).split("@")[0])  # `FILE@split` names a split of FILE
    return path if path.is_absolute() else cwd / path


def check_settings(data: Mapping[str, Any], easyr1_dir: Path, cwd: Path,
                   report: Report) -> None:
    """The four breakages (module docstring) and the quieter ones, against this folder."""
    root = easyr1_dir.resolve()
    for key, file in (("train_files", TRAIN_FILE), ("val_files", VAL_FILE)):
        path = _path(data.get(key), cwd)
        if path is None:
            report.errors.append(f"data.{key} is not set: the fork builds a "
                                 f"{'training' if key == 'train_files' else 'validation'} set "
                                 f"from it unconditionally; use data.{key}={root / file}")
        elif path.is_dir():
            report.errors.append(f"data.{key}={data[key]} is a folder: the fork takes the file "
                                 "type from its first listing entry (here images/ or another "
                                 f"file) and fails (IndexError); name the file: {root / file}")
        elif not path.is_file():
            report.errors.append(f"data.{key}={data[key]}: no such file (from {cwd}); "
                                 f"use {root / file}")
    image_dir = _path(data.get("image_dir"), cwd)
    if image_dir is None:
        report.errors.append("data.image_dir is not set (null): the fork then opens "
                             "images/xx/….png relative to the launch directory "
                             f"(FileNotFoundError); use data.image_dir={root}")
    elif not image_dir.is_dir():
        report.errors.append(f"data.image_dir={data['image_dir']}: not found from {cwd}; the "
                             "fork silently drops an image_dir it cannot find, then fails "
                             f"(FileNotFoundError); use data.image_dir={root}")
    elif image_dir.resolve() != root:
        report.errors.append(f"data.image_dir={data['image_dir']} is not this export's folder; "
                             f"its image paths are relative to {root}")
    if data.get("format_prompt") not in (None, ""):
        report.errors.append(f"data.format_prompt={data['format_prompt']}: every problem "
                             "already starts with the toolkit instruction; a format prompt "
                             "stacks a second, conflicting instruction and persona on it; set "
                             "data.format_prompt=null")
    for key, expected in EXPECTED_KEYS.items():
        if data.get(key) != expected:
            report.errors.append(f"data.{key}={data.get(key)}: the records' key is "
                                 f"{expected!r}; set data.{key}={expected}")
    batch = data.get("mini_rollout_batch_size") or data.get("rollout_batch_size")
    rows = report.rows.get(TRAIN_FILE, 0)
    if isinstance(batch, int) and rows and batch > rows:
        report.errors.append(f"data.rollout_batch_size={batch} exceeds the {rows} training "
                             "records: the fork drops the last partial batch and stops on "
                             "`assert len(train_dataloader) >= 1`")
    _check_quiet(data, root, cwd, report)


def _check_quiet(data: Mapping[str, Any], root: Path, cwd: Path, report: Report) -> None:
    """What runs, but not as the release intends."""
    if data.get("override_chat_template") in (None, ""):
        report.warnings.append("data.override_chat_template is unset: the toolkit instruction "
                               "then leads the user turn, behind the model's default system "
                               "prompt, where the SFT/DPO rows have it as the system turn; for "
                               "Qwen2.5-VL set data.override_chat_template="
                               f"{root / CHAT_TEMPLATE_FILE}")
    max_prompt = data.get("max_prompt_length")
    if isinstance(max_prompt, int) and data.get("filter_overlong_prompts", True):
        estimate = longest_prompt(report, data.get("min_pixels"), data.get("max_pixels"))
        if estimate > max_prompt:
            report.warnings.append(
                f"data.max_prompt_length={max_prompt}: the longest prompt (instruction, question "
                f"and image at data.max_pixels={data.get('max_pixels')}) may take about "
                f"{estimate} tokens, and the fork silently drops longer prompts; raise "
                "max_prompt_length or lower max_pixels")
    reward = data.get("_reward_function")
    if reward in (None, ""):
        report.errors.append("worker.reward.reward_function is not set; use "
                             "worker.reward.reward_function=PATH/easyr1_reward.py:compute_score")
        return
    file = _path(str(reward).rsplit(":", 1)[0] if ":" in str(reward) else reward, cwd)
    if file is None or not file.is_file():
        report.errors.append(f"worker.reward.reward_function={reward}: no such file from {cwd}")
    elif file.name != "easyr1_reward.py":
        report.warnings.append(f"worker.reward.reward_function={reward}: not the toolkit's "
                               "easyr1_reward.py, which adds the protocol term and caps depth "
                               "at the protocol's longest legal walk")


def check_export(easyr1_dir: Path, arguments: Sequence[str] | None = None,
                 cwd: Path | None = None) -> Report:
    """The folder, and with `arguments` (the trainer's command line) the settings too."""
    report = Report()
    check_folder(easyr1_dir, report)
    if arguments is not None:
        cwd = (cwd or Path.cwd()).resolve()
        check_settings(resolve_data(arguments, cwd), easyr1_dir, cwd, report)
    return report
