"""Dedup and split assignment, before any model call.

The pool is deduplicated on three keys (exact image, perceptual hash, normalised question; the
first item in input order wins) and screened against a benchmark exclusion list. The surviving
items are grouped into strata by (risk_category, label) and ordered inside each stratum by a
seeded hash of their keys, so the result depends on the pool and the seed, not on input order.
The held-out split (`eval`) is drawn first and by *family*: a source may say which items were
made from the same goal or question template (`SourceItem.group`; an item without one is a
family of its own), and eval takes whole families, in seeded order, until each stratum has its
share; the rest of those families is left unused, so no eval goal or template reaches training.
The other splits are then filled one after another from the remaining families, each taking
from every stratum in proportion to what is left (largest-remainder rounding), so each split
mirrors the pool's strata and no item is used twice. Same (items, sizes, seed) -> same splits.

The two halves are separate (`dedup_pool`, then `draw_splits`), so a caller that must draw again
with other sizes does not hash every image again; `assign_splits` does both.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TypeVar

from ...errors import BuildError
from ..sources.base import SourceItem
from .dedup import ExclusionList, ItemKeys, PHashIndex

__all__ = [
    "PHASH_DISTANCE",
    "DedupPool",
    "PoolTooSmall",
    "SplitAssignment",
    "assign_splits",
    "dedup_keyed",
    "dedup_pool",
    "draw_splits",
    "item_keys",
]

HELD_OUT = "eval"
"""The split held out by family from every other split."""
PHASH_DISTANCE = 4
"""Perceptual hashes this many bits apart or closer count as the same picture."""

Stratum = tuple[str, str]
#: What `_largest_remainder` shares among: strata, or split names.
ShareKey = TypeVar("ShareKey", str, Stratum)


class PoolTooSmall(BuildError, ValueError):
    """Fewer unique items survive dedup than the splits ask for."""


@dataclass(frozen=True)
class SplitAssignment:
    splits: dict[str, list[SourceItem]]
    dropped: dict[str, int]  # reason -> count
    pool: int  # unique, non-excluded items available
    unused: int  # of those, left out because the splits were full
    held_out: int = 0  # of the unused, items of the eval families that eval did not need
    held_out_families: frozenset[str] = frozenset()  # the families eval took

    @property
    def strata(self) -> dict[str, dict[str, int]]:
        """split -> "category/label" -> count, for manifests."""
        return {name: {"/".join(s): n for s, n in sorted(Counter(map(_stratum, items)).items())}
                for name, items in self.splits.items()}


@dataclass(frozen=True)
class DedupPool:
    """The unique, non-excluded items, grouped by stratum and in seeded order inside each."""

    strata: dict[Stratum, list[tuple[bytes, SourceItem]]] = field(repr=False)
    dropped: dict[str, int]  # reason -> count

    def __len__(self) -> int:
        return sum(len(members) for members in self.strata.values())


def _stratum(item: SourceItem) -> Stratum:
    return (item.risk_category or "", item.label or "")


Member = tuple[bytes, SourceItem]


def _hold_out(strata: Mapping[Stratum, list[Member]], share: Mapping[Stratum, int],
              first: AbstractSet[str] = frozenset()) -> tuple[dict[Stratum, list[Member]],
                                                               set[str]]:
    """The held-out split's members per stratum and the families it took (see the module
    docstring): whole families — those in `first` before any other —, in the order of their
    first member, while a stratum needs more."""
    families: dict[str, list[Member]] = defaultdict(list)
    for members in strata.values():
        for member in members:
            families[member[1].family].append(member)
    need = dict(share)
    taken: set[str] = set()
    chosen: dict[Stratum, list[Member]] = defaultdict(list)
    for family in sorted(families, key=lambda f: (f not in first,
                                                  min(m[0] for m in families[f]))):
        if not any(need.values()):
            break
        members = families[family]
        if not any(need.get(_stratum(item), 0) for _, item in members):
            continue
        taken.add(family)
        for member in sorted(members, key=lambda m: m[0]):
            s = _stratum(member[1])
            if need.get(s, 0):
                chosen[s].append(member)
                need[s] -= 1
    return dict(chosen), taken


def _largest_remainder(total: int, weights: Mapping[ShareKey, int]) -> dict[ShareKey, int]:
    """Integers proportional to `weights` summing to `total`; ties go to the earlier key."""
    whole = sum(weights.values())
    if whole == 0:
        return dict.fromkeys(weights, 0)
    counts = {s: total * w // whole for s, w in weights.items()}  # exact integer arithmetic
    order = sorted(weights, key=lambda s: (-(total * weights[s] % whole), s))
    for s in order[: total - sum(counts.values())]:
        counts[s] += 1
    return counts


def dedup_pool(
    items: Iterable[SourceItem],
    seed: int,
    exclude: ExclusionList | None = None,
    *,
    phash_distance: int = PHASH_DISTANCE,
) -> DedupPool:
    """Deduplicate `items` and screen them against `exclude`; the survivors in seeded order.

    Images are decoded one at a time for hashing; only the kept items are held.
    """
    return dedup_keyed(((item, item_keys(item)) for item in items), seed, exclude,
                       phash_distance=phash_distance)


def item_keys(item: SourceItem) -> ItemKeys | None:
    """The item's dedup keys, None when its image cannot be decoded."""
    try:
        return ItemKeys.of(item)
    except ValueError:
        return None


def dedup_keyed(
    keyed: Iterable[tuple[SourceItem, ItemKeys | None]],
    seed: int,
    exclude: ExclusionList | None = None,
    *,
    phash_distance: int = PHASH_DISTANCE,
) -> DedupPool:
    """`dedup_pool` over items whose keys were computed elsewhere (`item_keys`, on a Ray
    cluster): the same decisions in the same input order, so the same pool."""
    exclude = exclude or ExclusionList()
    excluded_phash = PHashIndex(phash_distance)
    for value in exclude.phash:
        excluded_phash.add(value)
    seen_sha: set[str] = set()
    seen_phash = PHashIndex(phash_distance)
    seen_questions: set[str] = set()
    dropped: Counter[str] = Counter()
    strata: dict[Stratum, list[tuple[bytes, SourceItem]]] = defaultdict(list)

    for item, keys in keyed:
        if keys is None:
            dropped["unreadable_image"] += 1
            continue
        if (keys.sha256 in exclude.sha256 or keys.question in exclude.questions
                or excluded_phash.near(keys.phash)):
            dropped["excluded_benchmark"] += 1
        elif keys.sha256 in seen_sha:
            dropped["exact_duplicate"] += 1
        elif seen_phash.near(keys.phash):
            dropped["perceptual_duplicate"] += 1
        elif keys.question in seen_questions:
            dropped["question_duplicate"] += 1
        else:
            seen_sha.add(keys.sha256)
            seen_phash.add(keys.phash)
            seen_questions.add(keys.question)
            order = hashlib.blake2b(f"{seed}\0{keys.sha256}\0{keys.question}".encode(),
                                    digest_size=16).digest()
            strata[_stratum(item)].append((order, item))

    for members in strata.values():
        members.sort(key=lambda pair: pair[0])
    return DedupPool(dict(strata), dict(dropped))


def _in_order(chosen: Mapping[Stratum, list[Member]]) -> list[SourceItem]:
    return [item for _, item in sorted((m for ms in chosen.values() for m in ms),
                                       key=lambda m: m[0])]


def _without(strata: Mapping[Stratum, list[Member]], families: AbstractSet[str]
             ) -> dict[Stratum, list[Member]]:
    return {s: [m for m in members if m[1].family not in families]
            for s, members in strata.items()}


def _stratified(strata: Mapping[Stratum, list[Member]], sizes: Mapping[str, int]
                ) -> dict[str, list[SourceItem]]:
    """Splits filled one after another, each from every stratum in proportion to what is left."""
    remaining = {s: len(m) for s, m in sorted(strata.items())}
    taken = dict.fromkeys(remaining, 0)
    splits: dict[str, list[SourceItem]] = {}
    for name, size in sizes.items():
        share = _largest_remainder(size, remaining)
        chosen: list[Member] = []
        for s, n in share.items():
            chosen += strata[s][taken[s]: taken[s] + n]
            taken[s] += n
            remaining[s] -= n
        splits[name] = [item for _, item in sorted(chosen, key=lambda pair: pair[0])]
    return splits


def draw_round(pool: DedupPool, targets: Mapping[str, int], held_out: set[str],
               trained: set[str]) -> dict[str, list[SourceItem]]:
    """A further round of candidates (`fill.Draws`): the whole `pool` shared in proportion to
    `targets`, the hold-out kept across rounds. The held-out split takes items of its families
    (`held_out`) first, then whole families no training split has touched (`trained`), which
    join `held_out`; the other splits never take an item of a held-out family, and their
    families join `trained`. Items of held-out families the held-out split does not need are
    left out."""
    strata = pool.strata
    sizes = _largest_remainder(len(pool), dict(targets))
    drawn: dict[str, list[SourceItem]] = {}
    if sizes.get(HELD_OUT):
        open_ = {s: [m for m in ms if m[1].family in held_out or m[1].family not in trained]
                 for s, ms in strata.items()}
        share = _largest_remainder(sizes[HELD_OUT], {s: len(m) for s, m in open_.items()})
        chosen, families = _hold_out(open_, share, held_out)
        drawn[HELD_OUT] = _in_order(chosen)
        held_out |= families
    rest = _without(strata, held_out)
    others = {k: v for k, v in targets.items() if k != HELD_OUT}
    drawn.update(_stratified(rest, _largest_remainder(sum(map(len, rest.values())), others)))
    trained |= {item.family for name in others for item in drawn.get(name, [])}
    return drawn


def draw_splits(pool: DedupPool, sizes: Mapping[str, int]) -> SplitAssignment:
    """Disjoint, stratified splits of the given sizes from `pool` (which it leaves as it is).

    Raises PoolTooSmall when the pool cannot fill `sizes`.
    """
    if any(not isinstance(n, int) or n < 0 for n in sizes.values()):
        raise ValueError(f"split sizes must be non-negative integers: {dict(sizes)}")
    available = len(pool)
    need = sum(sizes.values())
    if need > available:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(pool.dropped.items())) or "none"
        wanted = ", ".join(f"{k} {v}" for k, v in sizes.items())
        raise PoolTooSmall(f"{available} unique items after dedup (dropped: {reasons}) cannot "
                           f"fill splits of {need} items ({wanted})")

    strata = pool.strata
    held_out = 0
    held_families: set[str] = set()
    splits: dict[str, list[SourceItem]] = {}
    if sizes.get(HELD_OUT):
        share = _largest_remainder(sizes[HELD_OUT], {s: len(m) for s, m in strata.items()})
        chosen, held_families = _hold_out(strata, share)
        if sum(map(len, chosen.values())) < sizes[HELD_OUT]:
            raise PoolTooSmall(f"the pool's families cannot fill {HELD_OUT} "
                               f"({sizes[HELD_OUT]} items)")
        splits[HELD_OUT] = _in_order(chosen)
        strata = _without(strata, held_families)
        held_out = available - sum(map(len, strata.values())) - sizes[HELD_OUT]
        if sum(map(len, strata.values())) < need - sizes[HELD_OUT]:
            raise PoolTooSmall(f"{available} unique items, of which {held_out} are held out "
                               f"with the {HELD_OUT} families, cannot fill splits of {need} "
                               "items")
    splits.update(_stratified(strata, {k: v for k, v in sizes.items() if k not in splits}))
    splits = {name: splits[name] for name in sizes}
    return SplitAssignment(splits, dict(pool.dropped), available, available - need, held_out,
                           frozenset(held_families))


def assign_splits(
    items: Iterable[SourceItem],
    sizes: Mapping[str, int],
    seed: int,
    exclude: ExclusionList | None = None,
    *,
    phash_distance: int = PHASH_DISTANCE,
) -> SplitAssignment:
    """Deduplicate `items`, then draw disjoint, stratified splits of the given sizes
    (`draw_splits(dedup_pool(...), sizes)`). Raises PoolTooSmall when the deduplicated pool
    cannot fill `sizes`."""
    return draw_splits(dedup_pool(items, seed, exclude, phash_distance=phash_distance), sizes)
