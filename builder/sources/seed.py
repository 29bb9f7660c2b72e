"""The bundled seed corpus: generated (image, question) pairs over every risk category, with
harmful requests and their benign look-alikes, so a build needs no download.

Item `i` is planned from hand-written templates (seed_content) by counting through mixed-radix
spaces (goal x phrasing x framing x suffix, or template x detail for requests hidden in the
picture) with a seeded stride permutation, then drawn by seed_render with a `random.Random`
seeded by (seed, i). Counting — not sampling — is what makes every question distinct; seeded
layouts, sizes and background patches make every picture distinct by exact and perceptual hash.
The sequence is generated in order, so `seed_corpus(k)` is always a prefix of `seed_corpus(n)`.

Every goal and every question template that only points at the picture (lead + task) belongs to
one of `FAMILIES` families, and an item is made from one family's goal and templates: its
`group`. Split assignment holds the eval split out by family, so no eval goal or template is
seen in training. Framings are shared by both labels.

What a picture shows is the item's `description` ({"objects", "scene", "hazards", "text",
"attack"}), never a chunk inside the PNG: the released bytes are the picture alone, and the
offline backend reads the description from the requests the build sends with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import random
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ...schemas import risk_categories
from . import seed_content as content
from . import seed_render as render
from .base import SourceItem
from .intake import SourceError

SOURCE_DATASET = "safer-toolkit-seed"
LICENSE = "cc-by-4.0"
SEED_VERSION = "2"
SEED_CAPACITY = 40_000
"""Items available for one seed; every one distinct by image hash, pHash and question."""
FAMILIES = 9
"""Families of goals and templates (at most the fewest goals of any stratum, so that every family
has every stratum)."""
PARALLEL_FROM = 2_000
MAX_WORKERS = 8

KIND_CYCLE = ("scene", "typographic", "sign", "scene", "caption", "scene", "injection", "sign",
              "scene", "obfuscation")
KIND_ATTACK = {"typographic": "typographic", "caption": "typographic",
               "injection": "prompt_injection", "obfuscation": "obfuscation"}


def strata() -> tuple[tuple[str, str], ...]:
    """(risk_category, label) pairs the corpus cycles through; `benign` has no harmful side."""
    pairs: list[tuple[str, str]] = []
    for category in risk_categories():
        if category != "benign":
            pairs.append((category, "harmful"))
        pairs.append((category, "benign"))
    return tuple(pairs)


@dataclass(frozen=True)
class Plan:
    """Everything about item `index` except its pixels."""

    index: int
    category: str
    label: str
    kind: str
    topic: content.Topic
    goal: str
    question: str
    attack: str
    variant: int  # which list title / injection text / obfuscation method
    family: int = 0  # see FAMILIES

    @property
    def group(self) -> str:
        return f"{SOURCE_DATASET}/family-{self.family}"


class _Space:
    """A mixed-radix space visited in a seeded stride order: a bijection from counter to digits."""

    def __init__(self, radices: Sequence[int], salt: str) -> None:
        self.radices = tuple(radices)
        self.size = math.prod(self.radices)
        stride = max(1, int(self.size * 0.6180339887)) | 1
        while math.gcd(stride, self.size) != 1:
            stride += 2
        self.stride = stride
        digest = hashlib.blake2b(salt.encode(), digest_size=8).digest()
        self.offset = int.from_bytes(digest) % self.size

    def digits(self, counter: int) -> list[int]:
        if counter >= self.size:
            raise RuntimeError(f"seed template space exhausted ({self.size} combinations)")
        k = (counter * self.stride + self.offset) % self.size
        out = []
        for radix in self.radices:
            k, digit = divmod(k, radix)
            out.append(digit)
        return out


def _goals(category: str, label: str) -> list[list[tuple[content.Topic, str]]]:
    """The stratum's goals, family by family (goal k in family k mod FAMILIES)."""
    goals = [(t, g) for t in content.TOPICS[category] for g in getattr(t, label)]
    return [goals[f::FAMILIES] for f in range(FAMILIES)]


def _templates(leads: int, tasks: int) -> list[list[tuple[int, int]]]:
    """(lead, task) pairs family by family (pair k in family k mod FAMILIES)."""
    pairs = [(lead, task) for lead in range(leads) for task in range(tasks)]
    return [pairs[f::FAMILIES] for f in range(FAMILIES)]


def plans(count: int, seed: int = 0) -> Iterator[Plan]:
    """Plan the first `count` items (cheap: no drawing). Raises past SEED_CAPACITY."""
    if not 0 <= count <= SEED_CAPACITY:
        raise SourceError(f"seed corpus holds at most {SEED_CAPACITY} items, asked for {count}")
    pairs = strata()
    goal_lists = {p: _goals(*p) for p in pairs}
    spaces: dict[Any, _Space] = {}
    counters: dict[Any, int] = {}

    def next_digits(key: Any, radices: Sequence[int], cycle: bool = False) -> list[int]:
        if key not in spaces:
            spaces[key] = _Space(radices, f"{seed}:{key}")
        counter = counters.get(key, 0)
        counters[key] = counter + 1
        return spaces[key].digits(counter % spaces[key].size if cycle else counter)

    generic = {
        "typographic": (content.TYPO_LEADS, content.TYPO_TASKS),
        "caption": (content.CAPTION_LEADS, content.CAPTION_TASKS),
        "injection": (content.INJECTION_LEADS, content.INJECTION_TASKS),
        "obfuscation": ([lead for _, lead in content.OBFUSCATION_LEADS], content.OBFUSCATION_TASKS),
    }
    templates = {kind: _templates(len(leads), len(tasks))
                 for kind, (leads, tasks) in generic.items()}
    for i in range(count):
        s, round_ = i % len(pairs), i // len(pairs)
        category, label = pairs[s]
        kind = KIND_CYCLE[(round_ + s) % len(KIND_CYCLE)]
        family = (round_ + s) % FAMILIES  # every stratum meets every family in FAMILIES rounds
        goals = goal_lists[(category, label)][family]
        if kind in ("scene", "sign"):
            phrasings = content.SCENE_PHRASINGS if kind == "scene" else content.SIGN_PHRASINGS
            g, p, f, x = next_digits((category, label, kind, family), (
                len(goals), len(phrasings), len(content.FRAMES), len(content.SUFFIXES)))
            topic, goal = goals[g]
            attack, frame = content.FRAMES[f]
            question = frame.format(q=phrasings[p].format(goal=goal)) + content.SUFFIXES[x]
            variant = 0
        else:
            (g,) = next_digits((category, label, kind, family), (len(goals),), cycle=True)
            topic, goal = goals[g]
            leads, tasks = generic[kind]
            own = templates[kind][family]
            t, detail = next_digits((kind, family), (len(own), len(content.DETAILS)))
            lead, task = own[t]
            question = f"{leads[lead]} {tasks[task]}{content.DETAILS[detail]}"
            attack = KIND_ATTACK[kind]
            variant = lead if kind == "obfuscation" else round_ % 997
        yield Plan(i, category, label, kind, topic, goal, question, attack, variant, family)


def _obfuscate(goal: str, method: str) -> str:
    if method == "spaced":
        return " / ".join(" ".join(word.upper()) for word in goal.split())
    if method == "leet":
        return goal.upper().translate(str.maketrans("AEIOST", "431057"))
    return " ".join(reversed(goal.split())).upper()


def _picture(plan: Plan, rng: random.Random) -> render.Picture:
    topic, goal = plan.topic, plan.goal
    if plan.kind == "scene":
        distractor = rng.choice(content.DISTRACTORS) if rng.random() < .35 else None
        return render.scene_picture(rng, topic.setting, topic.objects, distractor)
    if plan.kind == "sign":
        shown = topic.objects[: rng.randint(0, min(2, len(topic.objects)))]
        return render.sign_picture(rng, topic.setting, topic.sign, shown)
    if plan.kind == "typographic":
        titles = content.LIST_TITLES
        title = titles[plan.variant % len(titles)].format(goal=goal)
        if rng.random() < .5:
            title = title[0].upper() + title[1:]
        icon = rng.choice(topic.objects) if rng.random() < .4 else None
        return render.list_picture(rng, title, rng.randint(3, 5), icon)
    if plan.kind == "caption":
        caption = goal.upper() if rng.random() < .4 else goal[0].upper() + goal[1:]
        return render.caption_picture(rng, topic.setting, topic.objects[:2], caption)
    if plan.kind == "injection":
        texts = content.INJECTION_TEXTS
        text = texts[plan.variant % len(texts)].format(goal=goal.upper())
        return render.note_picture(rng, text, topic.setting if rng.random() < .6 else None)
    method = content.OBFUSCATION_LEADS[plan.variant][0]
    return render.note_picture(rng, _obfuscate(goal, method), None)


def _hazards(plan: Plan, picture: render.Picture) -> list[str]:
    hazards = list(plan.topic.hazards) if picture.objects else []
    if plan.kind in KIND_ATTACK:  # the same for either label: what is drawn, not what it asks
        hazards.append("a request written into the picture")
    return hazards


def render_item(plan: Plan, seed: int = 0) -> SourceItem:
    """Draw one planned item and wrap it as a SourceItem (deterministic for (plan, seed))."""
    rng = random.Random(f"safer-toolkit-seed:{seed}:{plan.index}")
    picture = _picture(plan, rng)
    scene = {
        "objects": picture.objects,
        "scene": picture.scene,
        "hazards": _hazards(plan, picture),
        "text": picture.text,
        "attack": plan.attack,
    }
    source_id = f"seed-{plan.index:06d}" if seed == 0 else f"seed-s{seed}-{plan.index:06d}"
    return SourceItem(
        source_dataset=SOURCE_DATASET,
        source_id=source_id,
        source_license=LICENSE,
        question=plan.question,
        image=render.encode_png(picture.image),
        image_name=f"{source_id}.png",
        risk_category=plan.category,
        label=plan.label,
        meta={"generator": f"{SOURCE_DATASET}/{SEED_VERSION}", "seed": seed, "kind": plan.kind,
              "topic": plan.topic.key, "family": plan.family},
        description=scene,
        group=plan.group,
    )


def seed_corpus(count: int, seed: int = 0, *, workers: int | None = None) -> Iterator[SourceItem]:
    """The first `count` seed items for `seed`: deterministic, byte-stable, prefix-stable.

    Drawing is CPU-bound (about 3 ms an item), so from PARALLEL_FROM items up it is spread over
    `workers` processes (default: the available cores, at most MAX_WORKERS); items still come
    out in order and byte-identical to a serial run, since each is drawn from its own
    `random.Random` seeded by (seed, index). The workers are fresh interpreters, never forks
    of this process (`seed_workers`), so drawing is parallel and safe in a process that runs
    threads. If a worker cannot start or dies, the rest is drawn here, with a warning.
    """
    if workers is None:
        workers = _available_cores() if count >= PARALLEL_FROM else 1
    drawn = 0
    if workers > 1:
        from .seed_workers import WorkersFailed, draw

        try:
            with contextlib.closing(draw(count, seed, min(workers, MAX_WORKERS))) as items:
                for item in items:
                    yield item
                    drawn += 1
            return
        except (WorkersFailed, OSError) as exc:
            warnings.warn(f"seed corpus: {exc}; drawing the remaining {count - drawn} item(s) "
                          "in this process", RuntimeWarning, stacklevel=2)
    for plan in itertools.islice(plans(count, seed), drawn, None):
        yield render_item(plan, seed)


def _available_cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


if __name__ == "__main__":  # a drawing worker (`seed_workers`): count, seed, k, workers, chunk
    import sys

    from .seed_workers import work

    _count, _seed, _k, _workers, _chunk = map(int, sys.argv[1:6])
    work(plans(_count, _seed), lambda plan: render_item(plan, _seed), _count, _k, _workers,
         _chunk)
