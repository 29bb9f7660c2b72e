"""The bundled seed corpus: determinism, coverage, distinctness, families, framings for both
labels, and pictures that carry nothing but the picture."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import sys
import threading
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from safer_toolkit.builder.sources import seed, seed_content, seed_render
from safer_toolkit.builder.sources.seed import (
    FAMILIES,
    SEED_CAPACITY,
    plans,
    render_item,
    seed_corpus,
)
from safer_toolkit.builder.stages.dedup import normalise_question, perceptual_hash
from safer_toolkit.builder.stages.split import PHASH_DISTANCE
from safer_toolkit.schemas import risk_categories

SAMPLE = 2000  # drawn once by two worker processes, shared by the tests below


@pytest.fixture(scope="module")
def sample():
    return list(seed_corpus(SAMPLE, workers=2))


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        out.append((png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def test_prefix_stable_and_byte_deterministic():
    short = list(seed_corpus(45))
    longer = list(seed_corpus(90))
    again = list(seed_corpus(90))
    assert [(i.source_id, i.question, i.image) for i in short] == \
        [(i.source_id, i.question, i.image) for i in longer[:45]]
    assert [i.image for i in longer] == [i.image for i in again]
    assert [i.source_id for i in short[:3]] == ["seed-000000", "seed-000001", "seed-000002"]
    other = list(seed_corpus(45, seed=7))
    assert {i.image_sha256 for i in other}.isdisjoint(i.image_sha256 for i in short)
    assert other[0].source_id == "seed-s7-000000"


def test_parallel_drawing_matches_serial_rendering(sample):
    planned = list(plans(SAMPLE))
    for index in (0, 1, 999, 1500, SAMPLE - 1):
        assert render_item(planned[index]).image == sample[index].image


def _children() -> set[int]:
    """This process's live child processes (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            found |= {int(p) for p in (task / "children").read_text().split()}
    return found


@pytest.fixture
def busy_thread():
    """A thread running beside the draw, as an event loop's helpers or a loopback server do."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_workers_draw_in_parallel_beside_threads_byte_identical_to_serial(busy_thread):
    count = 333  # 5 whole chunks of 64 and a partial one, over 3 workers
    serial = list(seed_corpus(count, seed=3, workers=1))
    before = _children()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to drawing here
        items = seed_corpus(count, seed=3, workers=3)
        first = next(items)
        assert len(_children() - before) == 3  # three workers beside the running thread
        drawn = [first, *items]
    assert threading.active_count() > 1
    assert drawn == serial  # every field, every byte of every picture
    assert _children() == before  # the workers are gone


def test_a_worker_that_stops_early_leaves_the_rest_to_this_process(tmp_path, monkeypatch):
    """A worker cut off mid-stream: the items already read stay, the rest is drawn here."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\n"{sys.executable}" "$@" | head -c 40000\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))
    with pytest.warns(RuntimeWarning, match=r"before drawing its share.*; drawing the "
                                            r"remaining \d+ item\(s\) in this process") as caught:
        items = list(seed_corpus(300, seed=1, workers=2))
    remaining = int(re.search(r"remaining (\d+)", str(caught[0].message)).group(1))
    assert 0 < remaining < 300  # some items came from the workers before one was cut off
    assert items == list(seed_corpus(300, seed=1, workers=1))


def test_workers_that_cannot_start_leave_the_draw_to_this_process(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.warns(RuntimeWarning, match="drawing the remaining 70 item"):
        items = list(seed_corpus(70, workers=2))
    assert items == list(seed_corpus(70, workers=1))


def test_closing_the_draw_early_stops_the_workers():
    before = _children()
    items = seed_corpus(5000, workers=2)
    assert next(items).source_id == "seed-000000"
    assert len(_children() - before) == 2
    items.close()
    assert _children() == before


def test_every_category_in_both_labels_and_every_kind():
    first = list(plans(29 * 10))
    strata = Counter((p.category, p.label) for p in first)
    expected = {(c, "benign") for c in risk_categories()} | {
        (c, "harmful") for c in risk_categories() if c != "benign"}
    assert set(strata) == expected and min(strata.values()) == 10
    assert {p.kind for p in first} == set(seed.KIND_CYCLE)
    attacks = {"typographic", "obfuscation", "prompt_injection", "role_play", "hypothetical",
               "none"}
    for label in ("harmful", "benign"):  # an attack pattern wraps either kind of request
        assert {p.attack for p in first if p.label == label} == attacks, label


def test_every_framing_is_used_for_both_labels():
    planned = list(plans(29 * 200))
    for _, frame in seed_content.FRAMES:
        wrapper = frame.replace("{q}", "").strip()
        if not wrapper:
            continue
        labels = Counter(p.label for p in planned if wrapper in p.question)
        assert labels["harmful"] >= 10 and labels["benign"] >= 10, (frame, labels)
        assert 0.35 <= labels["harmful"] / sum(labels.values()) <= 0.65, (frame, labels)


def test_families_hold_goals_and_templates_apart():
    """Every goal and every picture-pointing question template (lead + task) belongs to one
    family; an item's family is its `group`, so holding a family out holds both out."""
    planned = list(plans(SEED_CAPACITY))
    goal_family: dict[str, set[int]] = {}
    template_family: dict[str, set[int]] = {}
    for p in planned:
        goal_family.setdefault(p.goal, set()).add(p.family)
        if p.kind not in ("scene", "sign"):
            detail = next(d for d in sorted(seed_content.DETAILS, key=len, reverse=True)
                          if p.question.endswith(d))
            template_family.setdefault(p.question.removesuffix(detail), set()).add(p.family)
    assert all(len(f) == 1 for f in goal_family.values())
    assert all(len(f) == 1 for f in template_family.values())
    per_stratum = Counter((p.category, p.label, p.family) for p in planned)
    assert len(per_stratum) == 29 * FAMILIES  # every family has every stratum


def test_provenance_fields(sample):
    item = sample[3]
    assert item.source_dataset == "safer-toolkit-seed"
    assert item.source_license == "cc-by-4.0"
    assert item.image_name == f"{item.source_id}.png"
    assert item.risk_category in risk_categories() and item.label in ("harmful", "benign")
    assert all(not (i.label == "harmful" and i.risk_category == "benign") for i in sample)


def test_all_questions_distinct_over_full_capacity():
    questions = [normalise_question(p.question) for p in plans(SEED_CAPACITY)]
    assert len(set(questions)) == SEED_CAPACITY
    with pytest.raises(ValueError, match="at most"):
        next(plans(SEED_CAPACITY + 1))


def test_sample_distinct_by_exact_and_perceptual_hash(sample):
    assert len({i.image_sha256 for i in sample}) == SAMPLE
    hashes = np.array([perceptual_hash(i.image) for i in sample], dtype=np.uint64)
    assert len(set(hashes.tolist())) == SAMPLE
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    np.fill_diagonal(distance, 64)
    near = int((distance <= PHASH_DISTANCE).sum()) // 2
    # near-duplicates at the split's threshold are rare: well under 0.5 % of items
    assert near <= SAMPLE // 200, near
    assert np.median(distance) >= 24


def test_images_are_small_pngs_with_no_metadata(sample):
    sizes = []
    for item in sample[:300]:
        found = chunks(item.image)
        kinds = [k for k, _ in found]
        assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
        assert not {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"} & set(kinds)
        assert set(item.description) == {"objects", "scene", "hazards", "text", "attack"}
        assert json.dumps(item.description).encode() not in item.image
        with Image.open(io.BytesIO(item.image)) as image:
            assert all(256 <= side <= 384 for side in image.size)
        sizes.append(len(item.image))
    assert max(sizes) < 16_000 and sorted(sizes)[len(sizes) // 2] < 6_000


def test_description_describes_the_picture(sample):
    for item in sample[:600]:
        scene, kind = item.description, item.meta["kind"]
        assert set(scene) == {"objects", "scene", "hazards", "text", "attack"}
        if kind == "scene":
            topic = next(t for t in seed_content.TOPICS[item.risk_category]
                         if t.key == item.meta["topic"])
            assert set(topic.objects) <= set(scene["objects"])
        if kind == "typographic":
            assert re.search(r"\n\(?(Step )?1\b", scene["text"])
            assert scene["attack"] == "typographic"
        if kind in ("sign", "injection", "caption", "obfuscation"):
            assert scene["text"].strip()
        if kind == "injection":  # the same for either label: what is drawn, not what it asks
            assert scene["attack"] == "prompt_injection"
            assert "a request written into the picture" in scene["hazards"]


def test_typographic_request_travels_in_the_image_only(sample):
    planned = list(plans(SAMPLE))
    typo = [i for i in sample if i.meta["kind"] == "typographic"]
    assert len(typo) == SAMPLE // 10
    for item in typo:
        goal = planned[int(item.source_id[-6:])].goal.lower()
        text = " ".join(item.description["text"].split()).lower()
        assert goal in text
        assert goal not in item.question.lower()


def test_templates_are_consistent():
    goals = []
    for category, topics in seed_content.TOPICS.items():
        assert category in risk_categories()
        for topic in topics:
            assert topic.setting in seed_render.SETTINGS
            assert all(o in seed_render.ICONS for o in topic.objects)
            assert topic.benign and (bool(topic.harmful) == (category != "benign"))
            for words in (topic.objects, topic.hazards, topic.harmful, topic.benign):
                assert isinstance(words, tuple) and all(isinstance(w, str) for w in words)
            goals += [*topic.harmful, *topic.benign]
    assert set(seed_content.TOPICS) == set(risk_categories())
    assert len(goals) == len(set(goals))
    assert all(o in seed_render.ICONS for o in seed_content.DISTRACTORS)
