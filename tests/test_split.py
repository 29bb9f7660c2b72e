"""Dedup and split assignment: duplicates by every key, exclusion lists, stratification."""

from __future__ import annotations

import dataclasses
import io
import random
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from safer_toolkit.builder.sources.base import SourceItem
from safer_toolkit.builder.sources.seed import seed_corpus
from safer_toolkit.builder.stages.dedup import (
    ExclusionList,
    PHashIndex,
    normalise_question,
    perceptual_hash,
)
from safer_toolkit.builder.stages.split import PoolTooSmall, assign_splits, dedup_pool, draw_splits

SIZES = {"sft": 120, "dpo": 124, "grpo": 120, "eval": 40}


@pytest.fixture(scope="module")
def pool() -> list[SourceItem]:
    return list(seed_corpus(580))


def keys(item: SourceItem) -> tuple[str, int, str]:
    return item.image_sha256, perceptual_hash(item.image), normalise_question(item.question)


def test_normalise_question():
    assert normalise_question("  How do I   SHARPEN a knife?! ") == "how do i sharpen a knife"
    assert normalise_question("Ｈｏｗ＿do I—sharpen a knife…") == "how do i sharpen a knife"
    assert normalise_question("Straße") == normalise_question("STRASSE")
    assert normalise_question("?!") == ""


def test_sizes_disjoint_and_deterministic(pool):
    first = assign_splits(pool, SIZES, seed=5)
    again = assign_splits(pool, SIZES, seed=5)
    shuffled = random.Random(1).sample(pool, len(pool))
    reordered = assign_splits(shuffled, SIZES, seed=5)
    ids = {name: [i.source_id for i in items] for name, items in first.splits.items()}
    assert {n: len(v) for n, v in ids.items()} == SIZES
    assert ids == {n: [i.source_id for i in v] for n, v in again.splits.items()}
    assert ids == {n: [i.source_id for i in v] for n, v in reordered.splits.items()}
    other = assign_splits(pool, SIZES, seed=6)
    assert ids != {n: [i.source_id for i in v] for n, v in other.splits.items()}
    assert first.pool == len(pool) and first.unused == len(pool) - sum(SIZES.values())
    assert first.dropped == {}
    seen: dict[object, str] = {}
    for name, items in first.splits.items():
        for item in items:
            for key in keys(item):
                assert seen.setdefault(key, name) == name, f"{key} in {seen[key]} and {name}"


def test_one_deduplicated_pool_serves_several_draws(pool):
    deduped = dedup_pool(pool, seed=5)
    with pytest.raises(PoolTooSmall):
        draw_splits(deduped, {"sft": len(pool) + 1})
    small = {"sft": 10, "eval": 5}
    for sizes in (SIZES, small):  # the same pool, drawn twice, as assign_splits draws once
        drawn, direct = draw_splits(deduped, sizes), assign_splits(pool, sizes, seed=5)
        assert drawn.splits == direct.splits and drawn.strata == direct.strata
        assert (drawn.pool, drawn.unused, drawn.dropped) == (direct.pool, direct.unused, {})


def test_each_split_mirrors_the_pool_strata(pool):
    result = assign_splits(pool, SIZES, seed=0)
    strata = Counter((i.risk_category, i.label) for i in pool)
    for name, size in SIZES.items():
        got = Counter((i.risk_category, i.label) for i in result.splits[name])
        for stratum, count in strata.items():
            assert abs(got[stratum] - size * count / len(pool)) <= 1.5, (name, stratum)
        assert result.strata[name] == {f"{c}/{lab}": n for (c, lab), n in got.items()}
    assert len(Counter((i.risk_category, i.label) for i in result.splits["sft"])) == 29


def test_duplicates_by_every_key(pool):
    base = pool[:60]
    rgb = Image.open(io.BytesIO(base[0].image)).convert("RGB")
    recoded = io.BytesIO()
    rgb.resize((rgb.width - 10, rgb.height - 10)).save(recoded, "JPEG", quality=85)
    dupes = [
        dataclasses.replace(base[1], source_id="same-bytes", question="A different question"),
        dataclasses.replace(base[0], source_id="recoded", image=recoded.getvalue(),
                            image_name="x.jpg", question="Another question entirely"),
        dataclasses.replace(base[3], source_id="same-text", image=pool[-1].image,
                            question="  " + base[2].question.upper().replace(" ", "  ") + "!!"),
        dataclasses.replace(base[4], source_id="broken", image=b"not an image"),
    ]
    result = assign_splits([*base[:59], *dupes], {"sft": 20, "eval": 9}, seed=0)
    assert result.dropped == {"exact_duplicate": 1, "perceptual_duplicate": 1,
                              "question_duplicate": 1, "unreadable_image": 1}
    kept = {i.source_id for items in result.splits.values() for i in items}
    assert kept.isdisjoint({"same-bytes", "recoded", "same-text", "broken"})
    assert result.pool == 59


def test_eval_is_held_out_by_family(pool):
    result = assign_splits(pool, SIZES, seed=0)
    eval_groups = {i.group for i in result.splits["eval"]}
    assert None not in eval_groups and len(eval_groups) < len(result.splits["eval"])
    for name in ("sft", "dpo", "grpo"):
        assert eval_groups.isdisjoint(i.group for i in result.splits[name]), name
    # the eval families' items that eval did not need are left out, not given to training
    family_size = sum(i.group in eval_groups for i in pool)
    assert result.held_out == family_size - SIZES["eval"] > 0
    assert result.unused == len(pool) - sum(SIZES.values()) >= result.held_out
    # items without a family are families of their own: nothing is held back with them
    single = [dataclasses.replace(i, group=None) for i in pool]
    plain = assign_splits(single, SIZES, seed=0)
    assert plain.held_out == 0 and len(plain.splits["eval"]) == SIZES["eval"]


def test_exclusion_list_keeps_an_undecodable_images_exact_hash_and_question(pool, tmp_path):
    broken = dataclasses.replace(pool[0], image=b"not an image", question="  A Question?! ")
    exclusion = ExclusionList.from_items([broken, pool[1]])
    assert exclusion.sha256 == {broken.image_sha256, pool[1].image_sha256}
    assert exclusion.phash == {perceptual_hash(pool[1].image)}
    assert exclusion.questions == {"a question", normalise_question(pool[1].question)}
    path = tmp_path / "exclusions.txt"
    exclusion.save(path)
    assert ExclusionList.load(path) == exclusion
    assert [p.name for p in tmp_path.iterdir()] == ["exclusions.txt"]  # no temporary left


def test_exclusion_list_round_trip_and_matching(pool, tmp_path: Path):
    bench = pool[:30]
    exclusion = ExclusionList.from_items(bench)
    assert (len(exclusion.sha256), len(exclusion.phash), len(exclusion.questions)) == (30, 30, 30)
    path = tmp_path / "exclusions.txt"
    exclusion.save(path)
    loaded = ExclusionList.load(path)
    assert loaded == exclusion
    exclusion.save(tmp_path / "again.txt")
    assert (tmp_path / "again.txt").read_bytes() == path.read_bytes()

    only_questions = ExclusionList(questions={normalise_question(i.question) for i in pool[30:40]})
    mixed = ExclusionList(sha256=exclusion.sha256, phash=set(), questions=only_questions.questions)
    result = assign_splits(pool, {"sft": 200, "eval": 50}, seed=0, exclude=mixed)
    assert result.dropped == {"excluded_benchmark": 40}
    by_phash = ExclusionList(phash=exclusion.phash)
    assert assign_splits(pool, {"sft": 10}, seed=0, exclude=by_phash).dropped == {
        "excluded_benchmark": 30}
    used = {i.image_sha256 for items in result.splits.values() for i in items}
    assert used.isdisjoint(i.image_sha256 for i in pool[:40])


def test_exclusion_file_format_errors_and_default(tmp_path: Path):
    path = tmp_path / "bad.txt"
    path.write_text("# comment\n\nsha256:" + "a" * 64 + "\nphash:xyz\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt:4:"):
        ExclusionList.load(path)
    path.write_text("question:  What IS this?? \nphash:00ff00ff00ff00ff\n", encoding="utf-8")
    loaded = ExclusionList.load(path)
    assert loaded.questions == {"what is this"} and loaded.phash == {0x00FF00FF00FF00FF}
    default = ExclusionList.default()
    assert len(default) == 0


def test_pool_too_small_names_the_numbers(pool):
    with pytest.raises(PoolTooSmall, match=r"580 unique items .* cannot fill splits of 600"):
        assign_splits(pool, {"sft": 500, "eval": 100}, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        assign_splits(pool, {"sft": -1}, seed=0)


def test_banded_phash_index_equals_all_pairs():
    rng = random.Random(3)
    stored = [rng.getrandbits(64) for _ in range(3000)]
    probes = [rng.getrandbits(64) for _ in range(300)]
    for value in rng.sample(stored, 300):  # plant neighbours at 0..6 flipped bits
        flips = rng.sample(range(64), rng.randint(0, 6))
        probes.append(value ^ sum(1 << b for b in flips))
    for distance in (0, 2, 4):
        index = PHashIndex(distance)
        for value in stored:
            index.add(value)
        for probe in probes:
            brute = any((probe ^ s).bit_count() <= distance for s in stored)
            assert index.near(probe) == brute
