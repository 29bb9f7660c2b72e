"""Loaders for public image-question safety sets through `datasets.load_dataset`.

`path` is a Hub repository id or a local folder in the same layout (a `README.md` whose YAML
`configs` name the data files), so tests and offline users load the very same code path. Rows
are streamed with media decoding off: images keep their original encoded bytes, and only one row
is in memory at a time. Each loader maps the set's own category vocabulary onto the toolkit's
taxonomy through the tables below; a value the tables do not know gives `risk_category=None` (the
planner decides) and the raw value stays in `meta`. None of these sets labels the *question* as
harmful or benign, so `label` is None.

Layouts, as published:
- SPA-VL (`sqrti/SPA-VL`, cc-by-4.0): config `default` split `train` (data/train-*.parquet),
  config `validation`, config `test` splits `harm` / `help` (evaluation - never train on them).
  Columns `image` (Image), `question`, `chosen`, `rejected`, `class1` / `class2` / `class3`
  (harm domain / category / subcategory), `image_name` in train.
- BeaverTails-V (`PKU-Alignment/BeaverTails-V`, cc-by-nc-4.0): one config per harm category
  (data/<category>/{train,evaluation}.parquet). Columns `question`, `image` (Image), `category`,
  `image_severity`, `response`, `is_response_safe`. The `evaluation` split is a benchmark.
- MIS (`Tuwhy/MIS_Train`, apache-2.0): `mis_train.json` (a JSON array, ShareGPT style) and the
  images in `images.zip`, to be extracted into `images_root`. Records carry image paths
  (`image` list, or `image_path1`/`image_path2` as in MIS_Test), the question (`question`, or
  the first human turn of `conversations`), `category` and `sub_category`. A MIS question is
  about two or three pictures together, so they are joined side by side into one PNG — the one
  case where an item's image is not a source file's original bytes (`meta["composed_from"]`
  keeps the original names and sha256).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .base import SourceItem
from .intake import (
    DEFAULT_LIMITS,
    BadRecord,
    Limits,
    OnBad,
    RecordError,
    SourceError,
    bad_reason,
    image_extension,
    image_from_value,
    log_bad,
    make_item,
    question_text,
)

VHH = "violence_hate_harassment"

# SPA-VL: class3 (subcategory) first, then class2, then class1; keys compared in lowercase.
SPA_VL_CLASS3: dict[str, str] = {
    "drug-related crimes": "illegal_activity", "environmental crimes": "illegal_activity",
    "financial crimes": "illegal_activity", "theft": "illegal_activity",
    "traffic and driving offenses": "illegal_activity",
    "biological and chemical harms": "weapons_physical_harm", "weapon": "weapons_physical_harm",
    "malware": "malware_cyber", "cyber": "malware_cyber",
    "bully": VHH, "harass": VHH, "hate": VHH, "insult": VHH, "terrorism": VHH, "threaten": VHH,
    "violent": VHH, "ageism": VHH, "disablity discrimination": VHH,  # sic, as in the data
    "disability discrimination": VHH,
    "geographical discrimination": VHH, "racial": VHH, "religion": VHH, "sexism": VHH,
    "physical harm": "weapons_physical_harm",
    "gamble": "economic_harm", "multi-level marketing": "economic_harm",
    "paypal lending": "economic_harm", "payday lending": "economic_harm",
    "academic dishonesty": "fraud_deception", "financial fraud": "fraud_deception",
    "pseudo-pharmaceuticals": "fraud_deception", "scamns": "fraud_deception",
    "scams": "fraud_deception", "spam information": "fraud_deception",
    "disinformation": "misinformation", "fake news": "misinformation", "rumors": "misinformation",
    "personal privacy": "privacy_biometrics",
}
SPA_VL_CLASS2: dict[str, str] = {
    "toxic": VHH, "unfair": VHH, "illegal activities": "illegal_activity",
    "security threats": "weapons_physical_harm", "fraud or deceptive action": "fraud_deception",
    "risky financial practices": "economic_harm", "privacy": "privacy_biometrics",
    "persuasion and manipulation": "fraud_deception", "adult content": "sexual_content",
    "misinformation": "misinformation", "influence operations": "political_manipulation",
}
SPA_VL_CLASS1: dict[str, str] = {
    "representation & toxicityharms": VHH, "malicious use": "illegal_activity",
    "socioeconomic harms": "economic_harm",
}
# Subcategory words that outrank the class2/class1 fallbacks, whatever the hierarchy says.
KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"child|minor|kid", "child_safety"), (r"sex|porn|adult|erotic|nud", "sexual_content"),
    (r"suicid|self.?harm|eating disorder", "self_harm"),
    (r"election|politic|propaganda|campaign", "political_manipulation"),
    (r"medical advice|legal advice|financial advice", "regulated_advice"),
)

BEAVERTAILS_V: dict[str, str] = {
    "animal_abuse": VHH,
    "dangerous_behavior": "weapons_physical_harm",
    "deception_in_personal_relationships": "fraud_deception",
    "discriminatory_depictions": VHH,
    "environmental_damage": "illegal_activity",
    "false_information": "misinformation",
    "financial_and_academic_fraud": "fraud_deception",
    "hacking_or_digital_crime": "malware_cyber",
    "harmful_health_content": "regulated_advice",
    "horror_and_gore": VHH,
    "identity_misuse_and_impersonation": "fraud_deception",
    "insulting_and_harassing_behavior": VHH,
    "pornographic_content": "sexual_content",
    "privacy_invasion_and_surveillance": "privacy_biometrics",
    "psychological_harm_and_manipulation": VHH,
    "psychological_horror_and_dark_themes": VHH,
    "sensitive_information_in_key_areas": "political_manipulation",
    "sexual_crimes": "sexual_content",
    "terrorism_or_extremism": VHH,
    "violence_and_physical_harm": VHH,
}

# MIS categories (compared lowercased, '-'/'_' as spaces): illegal activity, violent, self-harm,
# privacy, hate, erotic - with their plain-word variants.
MIS_CATEGORIES: dict[str, str] = {
    "illegal activity": "illegal_activity", "illegal": "illegal_activity",
    "violent": VHH, "violence": VHH, "hate": VHH, "hate speech": VHH,
    "self harm": "self_harm", "selfharm": "self_harm", "privacy": "privacy_biometrics",
    "erotic": "sexual_content", "sexual": "sexual_content", "porn": "sexual_content",
}


@dataclass(frozen=True)
class HubSet:
    repo: str
    source_dataset: str
    license: str


SPA_VL = HubSet("sqrti/SPA-VL", "SPA-VL", "cc-by-4.0")
BEAVERTAILS_V_SET = HubSet("PKU-Alignment/BeaverTails-V", "BeaverTails-V", "cc-by-nc-4.0")
MIS = HubSet("Tuwhy/MIS_Train", "MIS", "apache-2.0")


def spa_vl_category(class1: str | None, class2: str | None, class3: str | None) -> str | None:
    """Taxonomy category for an SPA-VL (class1, class2, class3) triple; None if unknown."""
    c1, c2, c3 = ((c or "").strip().lower() for c in (class1, class2, class3))
    if c3 in SPA_VL_CLASS3:
        return SPA_VL_CLASS3[c3]
    for pattern, category in KEYWORDS:
        if re.search(pattern, c3):
            return category
    return SPA_VL_CLASS2.get(c2) or SPA_VL_CLASS1.get(c1)


def mis_category(value: Any) -> str | None:
    key = re.sub(r"[-_\s]+", " ", str(value or "")).strip().lower()
    return MIS_CATEGORIES.get(key)


def _stream(path: str, *, name: str | None, split: str, revision: str | None,
            data_files: str | None = None) -> Iterable[dict[str, Any]]:
    """Rows of one config/split, streamed with media decoding off."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetsError

    try:
        dataset = load_dataset(path, name=name, split=split, streaming=True, revision=revision,
                               data_files=data_files)
    except (OSError, ValueError, DatasetsError) as exc:
        raise SourceError(f"{path} [{name or 'default'}/{split}]: {exc}") from None
    # JSON sources have no declared features, hence nothing to decode
    return dataset.decode(False) if dataset.features else dataset


def _items(rows: Iterable[dict[str, Any]], where: str, limit: int | None, on_bad: OnBad,
           convert: Callable[[dict[str, Any], int], SourceItem]) -> Iterator[SourceItem]:
    from datasets.exceptions import DatasetsError

    index = -1
    iterator = iter(rows)
    while limit is None or index + 1 < limit:
        try:
            row = next(iterator)
        except StopIteration:
            return
        except (OSError, ValueError, DatasetsError) as exc:
            raise SourceError(f"{where}: unreadable after row {index}: {exc}") from None
        index += 1
        try:
            item = convert(row, index)
        except Exception as exc:  # whatever one row raises skips that row only
            on_bad(BadRecord(where, f"row {index}", bad_reason(exc)))
            continue
        yield item


def _meta(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}


def load_spa_vl(path: str = SPA_VL.repo, *, config: str | None = None, split: str = "train",
                revision: str | None = None, limit: int | None = None,
                limits: Limits = DEFAULT_LIMITS, on_bad: OnBad = log_bad) -> Iterator[SourceItem]:
    """SPA-VL items (train by default; the `test` config's harm/help splits are benchmarks)."""
    where = f"{path} [{config or 'default'}/{split}]"

    def convert(row: dict[str, Any], index: int) -> SourceItem:
        source_id = f"{config or 'default'}/{split}/{index}"
        classes = (row.get("class1"), row.get("class2"), row.get("class3"))
        return make_item(
            source_dataset=SPA_VL.source_dataset, source_license=SPA_VL.license,
            source_id=source_id, question=question_text(row.get("question"), limits),
            image=image_from_value(row.get("image"), None, limits, source_id.replace("/", "-")),
            risk_category=spa_vl_category(*classes), label=None,
            meta=_meta(config=config or "default", split=split, index=index, class1=classes[0],
                       class2=classes[1], class3=classes[2], image_name=row.get("image_name")))

    rows = _stream(path, name=config, split=split, revision=revision)
    yield from _items(rows, where, limit, on_bad, convert)


def load_beavertails_v(path: str = BEAVERTAILS_V_SET.repo, *,
                       categories: Sequence[str] | None = None, split: str = "train",
                       revision: str | None = None, limit: int | None = None,
                       limits: Limits = DEFAULT_LIMITS,
                       on_bad: OnBad = log_bad) -> Iterator[SourceItem]:
    """BeaverTails-V items, config by config (all 20 categories by default); `limit` per config."""
    for config in categories or sorted(BEAVERTAILS_V):
        where = f"{path} [{config}/{split}]"

        def convert(row: dict[str, Any], index: int, config: str = config) -> SourceItem:
            source_id = f"{config}/{split}/{index}"
            raw = row.get("category") or config
            return make_item(
                source_dataset=BEAVERTAILS_V_SET.source_dataset,
                source_license=BEAVERTAILS_V_SET.license, source_id=source_id,
                question=question_text(row.get("question"), limits),
                image=image_from_value(row.get("image"), None, limits, source_id.replace("/", "-")),
                risk_category=BEAVERTAILS_V.get(str(raw), BEAVERTAILS_V.get(config)), label=None,
                meta=_meta(config=config, split=split, index=index, category=raw,
                           image_severity=row.get("image_severity")))

        rows = _stream(path, name=config, split=split, revision=revision)
        yield from _items(rows, where, limit, on_bad, convert)


def _mis_question(row: Mapping[str, Any]) -> Any:
    if row.get("question"):
        return row["question"]
    for turn in row.get("conversations") or row.get("messages") or ():
        if isinstance(turn, Mapping) and turn.get("from", turn.get("role")) in ("human", "user"):
            text = turn.get("value", turn.get("content"))
            return re.sub(r"<image>", " ", text).strip() if isinstance(text, str) else None
    return None


def _mis_images(row: Mapping[str, Any]) -> list[Any]:
    value = row.get("image", row.get("images"))
    if isinstance(value, str | Mapping):
        return [value]
    if isinstance(value, list):
        return value
    return [row[k] for k in sorted(row) if re.fullmatch(r"image_path\d+", k) and row[k]]


def compose(images: Sequence[tuple[bytes, str]], limits: Limits) -> tuple[bytes, str]:
    """Several pictures side by side on white, as one PNG (scaled down to fit `max_pixels`)."""
    frames = []
    for data, _ in images:
        with Image.open(io.BytesIO(data)) as image:
            frames.append(image.convert("RGB"))
    gap = 8
    height = max(f.height for f in frames)
    width = sum(f.width for f in frames) + gap * (len(frames) - 1)
    scale = min(1.0, (limits.max_pixels / (width * height)) ** 0.5)
    canvas = Image.new("RGB", (max(1, int(width * scale)), max(1, int(height * scale))), "white")
    x = 0
    for frame in frames:
        size = (max(1, int(frame.width * scale)), max(1, int(frame.height * scale)))
        canvas.paste(frame.resize(size) if scale < 1 else frame, (int(x * scale), 0))
        x += frame.width + gap
    out = io.BytesIO()
    canvas.save(out, "PNG")
    data = out.getvalue()
    image_extension(data, limits)
    return data, "+".join(Path(name).stem for _, name in images)[:120] + ".png"


def load_mis(path: str = MIS.repo, *, images_root: str | Path | None = None,
             data_file: str = "mis_train.json", split: str = "train",
             revision: str | None = None, limit: int | None = None,
             limits: Limits = DEFAULT_LIMITS, on_bad: OnBad = log_bad) -> Iterator[SourceItem]:
    """MIS items; image paths resolve inside `images_root` (default: `path` when it is a folder)."""
    if images_root is None and Path(path).is_dir():
        images_root = path
    if images_root is None:
        raise SourceError(f"{path}: MIS ships its images in images.zip; extract it and pass "
                          "images_root")
    root = Path(images_root)
    where = f"{path} [{data_file}]"

    def convert(row: dict[str, Any], index: int) -> SourceItem:
        source_id = str(row.get("id") if row.get("id") not in (None, "") else index)
        stem = f"mis-{source_id}"
        pictures = [image_from_value(v, root, limits, stem) for v in _mis_images(row)]
        if not pictures:
            raise RecordError("no image")
        image = pictures[0] if len(pictures) == 1 else compose(pictures, limits)
        composed = None
        if len(pictures) > 1:
            composed = [{"name": n, "sha256": hashlib.sha256(d).hexdigest()} for d, n in pictures]
        return make_item(
            source_dataset=MIS.source_dataset, source_license=MIS.license, source_id=source_id,
            question=question_text(_mis_question(row), limits), image=image,
            risk_category=mis_category(row.get("category")), label=None,
            meta=_meta(index=index, category=row.get("category"),
                       sub_category=row.get("sub_category"), composed_from=composed))

    rows = _stream(path, name=None, split=split, revision=revision, data_files=data_file)
    yield from _items(rows, where, limit, on_bad, convert)


LOADERS: dict[str, Callable[..., Iterator[SourceItem]]] = {
    "spa_vl": load_spa_vl, "beavertails_v": load_beavertails_v, "mis": load_mis,
}


def load_hub(layout: str, path: str | None = None, **options: Any) -> Iterator[SourceItem]:
    """Dispatch by layout name (`spa_vl`, `beavertails_v`, `mis`), for build configs."""
    if layout not in LOADERS:
        raise SourceError(f"unknown hub layout {layout!r}; expected one of {', '.join(LOADERS)}")
    return LOADERS[layout](path, **options) if path else LOADERS[layout](**options)
