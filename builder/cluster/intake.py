"""Source intake on the cluster: reading, image checks and hashing as Ray tasks.

Each source is cut into parts (`sources.parts`); one task per part loads it with the source's
own loader — the same reads, image checks and skipped-record reports as a one-process build —
and computes every item's dedup keys (sha256, perceptual hash, normalised question). A source
that is not cut (a Hub layout) is read here and only checked-and-hashed on the cluster, in
batches. Results come back in part order through a bounded window, so the driver holds only
what the window holds, and dedup and split assignment run here over the keyed items in input
order (`stages.split.dedup_keyed`): the pool — hence the splits — is the one-process pool.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import ray

from ...errors import InputError
from ..config import BuildConfig
from ..sources import SOURCE_KINDS, SourceItem
from ..sources.intake import SourceError
from ..sources.parts import SourcePart, plan_parts
from ..stages.dedup import ExclusionList, ItemKeys
from ..stages.split import DedupPool, dedup_keyed, item_keys

#: Items a driver-read source sends to one hashing task.
HASH_BATCH = 128


@dataclass
class Loaded:
    """What one task gives back: items with their keys, skipped records, or the error that
    made the source unusable, and the node that did the work."""

    items: list[tuple[SourceItem, ItemKeys | None]] = field(default_factory=list)
    bad: list[Any] = field(default_factory=list)
    error: str | None = None
    node: str = ""
    cpu_s: float = 0.0


@ray.remote(num_cpus=1)
def _load_part(part: SourcePart, needed: int) -> Loaded:
    cpu = time.process_time()
    loaded = Loaded(node=ray.util.get_node_ip_address())
    try:
        for item in part.load(needed, loaded.bad.append):
            loaded.items.append((item, item_keys(item)))
    except (InputError, OSError) as exc:  # as `source_items`
        loaded.error = str(exc)
    loaded.cpu_s = time.process_time() - cpu
    return loaded


@ray.remote(num_cpus=1)
def _key_items(items: list[SourceItem]) -> Loaded:
    cpu = time.process_time()
    loaded = Loaded([(item, item_keys(item)) for item in items],
                    node=ray.util.get_node_ip_address())
    loaded.cpu_s = time.process_time() - cpu
    return loaded


def _in_order(refs: Iterable[Any], window: int) -> Iterator[Loaded]:
    """Each task's result in submission order, with at most `window` tasks submitted ahead."""
    pending: deque[Any] = deque()
    for ref in refs:
        pending.append(ref)
        if len(pending) >= window:
            yield ray.get(pending.popleft())
    while pending:
        yield ray.get(pending.popleft())


class Intake:
    """Dedup pools loaded on the cluster (`pool`), with per-node figures (`figures`)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.tasks: Counter[str] = Counter()
        self.items: Counter[str] = Counter()
        self.cpu: defaultdict[str, float] = defaultdict(float)

    def pool(self, config: BuildConfig, needed: int, on_bad: Callable[[Any], None],
             exclude: ExclusionList) -> DedupPool:
        return dedup_keyed(self._keyed(config, needed, on_bad), config.seed, exclude)

    def _keyed(self, config: BuildConfig, needed: int, on_bad: Callable[[Any], None]
               ) -> Iterator[tuple[SourceItem, ItemKeys | None]]:
        from ..pipeline import each_source

        def load(spec: Mapping[str, Any]) -> Iterator[tuple[SourceItem, ItemKeys | None]]:
            parts = plan_parts(spec, needed)
            if parts is None:  # read here, checked and hashed there
                loaded = SOURCE_KINDS[spec["kind"]].load(spec, needed, on_bad)
                refs: Iterable[Any] = (_key_items.remote(list(batch))
                                       for batch in _batches(loaded, HASH_BATCH))
            else:
                refs = (_load_part.remote(part, needed) for part in parts)
            for result in _in_order(refs, self.window):
                self.tasks[result.node] += 1
                self.items[result.node] += len(result.items)
                self.cpu[result.node] += result.cpu_s
                for bad in result.bad:
                    on_bad(bad)
                if result.error is not None:  # named with its source, as a local read's error
                    raise SourceError(result.error)
                yield from result.items

        return each_source(config, load)

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per node: tasks run, items they gave, CPU seconds they took."""
        return {node: {"tasks": self.tasks[node], "items": self.items[node],
                       "cpu_s": round(self.cpu[node], 3)} for node in sorted(self.tasks)}


def _batches(items: Iterable[SourceItem], size: int) -> Iterator[list[SourceItem]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
