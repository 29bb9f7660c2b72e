"""Dedup and split assignment, before any model call (SPEC §5).

The pool is deduplicated on three keys (exact image, perceptual hash, normalised question; the
first item in input order wins) and screened against a benchmark exclusion list. The surviving
items are grouped into strata by (risk_category, label) and ordered inside each stratum by a
seeded hash of their keys, so the result depends on the pool and the seed, not on input order.
Splits are then filled one after another, each taking from every stratum in proportion to what is
left (largest-remainder rounding), so each split mirrors the pool's strata and no item is used
twice. Same (items, sizes, seed) -> same splits.

The two halves are separate (`dedup_pool`, then `draw_splits`), so a caller that must draw again
with other sizes does not hash every image again; `assign_splits` does both.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from safer_toolkit.builder.sources.base import SourceItem
from safer_toolkit.builder.stages.dedup import ExclusionList, ItemKeys, PHashIndex

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

PHASH_DISTANCE = 4
"""Perceptual hashes this many bits apart or closer count as the same picture."""

Stratum = tuple[str, str]


class PoolTooSmall(ValueError):
    """Fewer unique items survive dedup than the splits ask for."""


@dataclass(frozen=True)
class SplitAssignment:
    splits: dict[str, list[SourceItem]]
    dropped: dict[str, int]  # reason -> count
    pool: int  # unique, non-excluded items available
    unused: int  # of those, left out because the splits were full

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


def _largest_remainder(total: int, weights: Mapping[Stratum, int]) -> dict[Stratum, int]:
    """Integers proportional to `weights` summing to `total`; ties go to the earlier stratum."""
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
    remaining = {s: len(m) for s, m in sorted(strata.items())}
    taken = dict.fromkeys(remaining, 0)
    splits: dict[str, list[SourceItem]] = {}
    for name, size in sizes.items():
        share = _largest_remainder(size, remaining)
        chosen: list[tuple[bytes, SourceItem]] = []
        for s, n in share.items():
            chosen += strata[s][taken[s]: taken[s] + n]
            taken[s] += n
            remaining[s] -= n
        chosen.sort(key=lambda pair: pair[0])
        splits[name] = [item for _, item in chosen]
    return SplitAssignment(splits, dict(pool.dropped), available, available - need)


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
