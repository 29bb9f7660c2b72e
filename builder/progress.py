"""Progress bars per stage (with rates) while a build runs, and the summary table at its end."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm

STAGES = ("plan", "respond", "judge", "perturb")
_UNITS = {"plan": "item", "respond": "trace", "judge": "score", "perturb": "pair"}


class Progress:
    """One tqdm bar per stage; totals are the work the split targets imply (they may grow)."""

    def __init__(self, totals: Mapping[str, int], enabled: bool = True) -> None:
        self.bars = {
            stage: tqdm(total=totals.get(stage, 0), desc=f"{stage:<8}", unit=_UNITS[stage],
                        position=i, leave=True, dynamic_ncols=True, mininterval=0.5,
                        file=sys.stderr, disable=not enabled)
            for i, stage in enumerate(STAGES)}

    def advance(self, stage: str, n: int = 1) -> None:
        bar = self.bars[stage]
        if bar.total is not None and bar.n + n > bar.total:
            bar.total = bar.n + n
        bar.update(n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(manifest: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """The end-of-run report: rows per split, outcomes, reasons, calls and time."""
    splits = manifest["counts"]["splits"]
    rows = [[name, s["target"], s["rows"], s["kept"], s["rejected"], s["failed"],
             s["candidates"], s["shortfall"]] for name, s in splits.items()]
    parts = [_table(["split", "target", "rows", "kept", "rejected", "failed", "items tried",
                     "shortfall"], rows)]
    reasons = manifest["counts"]["reasons"]
    if reasons:
        parts.append(_table(["reason (rejected / failed)", "items"],
                            [[k, v] for k, v in reasons.items()]))
    calls = run["calls"]
    parts.append(_table(["model role", "calls used", "sent", "cache hits", "failed",
                         "tokens in", "tokens out"],
                        [[role, manifest["calls"][role]["calls"], c["sent"], c["cache_hits"],
                          sum(c["failed"].values()), manifest["calls"][role]["prompt_tokens"],
                          manifest["calls"][role]["completion_tokens"]]
                         for role, c in calls.items()]))
    items = run["phases"]["items"]["wall_s"]
    rate = run["sent"] / items if items else 0.0
    phases = ", ".join(f"{name} {p['wall_s']:.1f} s" for name, p in run["phases"].items())
    parts.append(f"backend {manifest['backend']}; {run['sent']} requests sent "
                 f"({rate:.1f}/s while items ran), {run['cache_hits']} answered from the cache; "
                 f"{run['wall_s']:.1f} s in all ({phases})")
    return "\n\n".join(parts)
