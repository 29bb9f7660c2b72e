"""Where (image, question) items come from: the bundled seed corpus and loaders for local files
and `datasets` repositories. `SOURCE_KINDS` names the kinds a build config's `[[sources]]` table
may use — the config reader checks a table against it and the build loads through it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .base import SourceItem

__all__ = ["SOURCE_KINDS", "SourceItem", "SourceKind", "kinds_text"]

#: `load(spec, needed, on_bad)`: the items of one `[[sources]]` table (`spec`, with its `kind`);
#: `needed` is how many items the build needs in all, `on_bad` is told of each skipped record.
Load = Callable[[Mapping[str, Any], int, Callable[[Any], None]], Iterator[SourceItem]]


@dataclass(frozen=True)
class SourceKind:
    """One source kind: the keys its table must have and may have besides `kind` (None: any,
    each passed on to the loader), and how it loads. Loaders are imported only when used."""

    needs: frozenset[str]
    allowed: frozenset[str] | None
    load: Load


def _seed(spec: Mapping[str, Any], needed: int, on_bad: Callable[[Any], None]
          ) -> Iterator[SourceItem]:
    from .seed import seed_corpus

    return seed_corpus(seed_count(spec, needed), seed=int(spec.get("seed", 0)))


def seed_count(spec: Mapping[str, Any], needed: int) -> int:
    """How many seed items a `seed` table draws: its `count`, else beyond the need: the rest of
    the eval split's family (about one item in FAMILIES) is held back from training, and an
    exclusion list or dedup may drop a few."""
    return int(spec.get("count") or needed + needed // 8 + 16)


def _options(spec: Mapping[str, Any], on_bad: Callable[[Any], None]) -> dict[str, Any]:
    """A table's keys as loader keyword arguments (a `columns` table as `Columns`)."""
    from .intake import Columns, limits_from

    options = {k: v for k, v in spec.items() if k != "kind"}
    if isinstance(options.get("columns"), dict):
        options["columns"] = Columns(**options["columns"])
    if isinstance(options.get("limits"), Mapping):
        options["limits"] = limits_from(options["limits"])
    return {**options, "on_bad": on_bad}


def _local(spec: Mapping[str, Any], needed: int, on_bad: Callable[[Any], None]
           ) -> Iterator[SourceItem]:
    from .local import load_local

    return load_local(**_options(spec, on_bad))


def _hub(spec: Mapping[str, Any], needed: int, on_bad: Callable[[Any], None]
         ) -> Iterator[SourceItem]:
    from .hub import load_hub

    return load_hub(**_options(spec, on_bad))


SOURCE_KINDS: dict[str, SourceKind] = {
    "seed": SourceKind(frozenset(), frozenset({"count", "seed"}), _seed),
    "local": SourceKind(frozenset({"path", "source_dataset", "source_license"}),
                        frozenset({"path", "source_dataset", "source_license", "columns",
                                   "image_root", "metadata", "category_map", "label_map",
                                   "limits", "batch_rows"}), _local),
    "hub": SourceKind(frozenset({"layout"}), None, _hub),
}


def kinds_text() -> str:
    """The known kinds for a message: `seed, local or hub`."""
    *rest, last = SOURCE_KINDS
    return f"{', '.join(rest)} or {last}" if rest else last
