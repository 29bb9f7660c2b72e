"""Progress bars per stage (with rates) while a build runs, and the summary table at its end."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm


class Progress:
    """One tqdm bar per stage, in the order of `totals`: the work the split targets imply (they
    may grow), counted in the stage's `units` (`recipes.stage_totals`, `recipes.stage_units`)."""

    def __init__(self, totals: Mapping[str, int], units: Mapping[str, str],
                 enabled: bool = True) -> None:
        self.bars = {
            stage: tqdm(total=total, desc=f"{stage:<8}", unit=units[stage],
                        position=i, leave=True, dynamic_ncols=True, mininterval=0.5,
                        file=sys.stderr, disable=not enabled)
            for i, (stage, total) in enumerate(totals.items())}

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


def _breakdown(counts: Mapping[str, int]) -> str:
    """`{"http_429": 3, "timeout": 1}` → `http_429 3, timeout 1` (largest first)."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


#: What to turn for a loss reason's tag (or its stage), shown beside a shortfall.
_KNOBS = {
    "budget": "--max-calls / --max-cost",
    "finish_length": "the role's max_tokens_cap (or sampling.max_tokens)",
    "below_threshold": "[thresholds], or a stronger responder",
    "too_few_caught": "dpo.rejected_per_prompt",
    "plan": "plan.max_attempts, or a stronger planner",
    "respond": "respond.repair_attempts / samples, or a stronger responder",
    "judge": "judge.max_attempts, or a judge that keeps to the rubric",
}
_CALL_FAILURES = ("http_", "timeout", "connection", "bad_json", "no_api_key", "refusal",
                  "finish_content_filter")


def knob(reason: str) -> str:
    """The setting that addresses a loss reason such as `plan:plan_schema` or `respond:budget`."""
    stage, _, tag = reason.partition(":")
    if tag in _KNOBS:
        return _KNOBS[tag]
    if tag.startswith(_CALL_FAILURES):
        return "the endpoint (a rerun retries failed calls; timeout_s, max_retries)"
    return _KNOBS.get(stage, "see .build/rejected.jsonl")


def loss_hint(manifest: Mapping[str, Any], top: int = 3) -> str:
    """The top loss reasons with the knob for each: `plan:plan_json 12 (plan.max_attempts …)`."""
    reasons = sorted(manifest["counts"]["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    return "; ".join(f"{reason} {n} → {knob(reason)}" for reason, n in reasons[:top])


def _constraint(model: Mapping[str, Any]) -> list[str]:
    """A role's row of the constraint table: what it asked for and what the preflight saw."""
    c = model["constrain"]
    enforced = {True: "yes", False: "no", None: "–"}[c["enforced"]]
    return [model["role"], c["mode"], c["server"] or "unknown", c["found_by"] or "–", c["sent"],
            enforced]


def summary_table(manifest: Mapping[str, Any], run: Mapping[str, Any],
                  notes: list[str] | None = None) -> str:
    """The end-of-run report: rows per split, outcomes and reasons, the yield per stage, what
    each role's calls took and cost, time, and what the preflight and the budget said."""
    splits = manifest["counts"]["splits"]
    rows = [[name, s["target"], s["rows"], s["kept"], s["rejected"], s["failed"],
             s["candidates"], s["shortfall"]] for name, s in splits.items()]
    parts = [_table(["split", "target", "rows", "kept", "rejected", "failed", "items tried",
                     "shortfall"], rows)]
    reasons = manifest["counts"]["reasons"]
    if reasons:
        parts.append(_table(["reason (rejected / failed)", "items"],
                            [[k, v] for k, v in reasons.items()]))
    yields = manifest.get("yield") or {}
    if any(sum(y.values()) for y in yields.values()):
        parts.append(_table(
            ["stage yield", "first try", "repaired", "re-asked", "rejected", "failed", "valid"],
            [[stage, y["first_try"], y["repaired"], y["re_asked"], y["rejected"], y["failed"],
              _pct(y["first_try"] + y["repaired"] + y["re_asked"], sum(y.values()))]
             for stage, y in yields.items() if sum(y.values())]))
    constrained = [m for m in manifest.get("models", []) if "constrain" in m]
    if constrained:
        parts.append(_table(["constraint", "asked", "server", "found by", "sent as",
                             "enforced"], [_constraint(m) for m in constrained]))
    calls, used = run["calls"], manifest["calls"]
    parts.append(_table(
        ["model role", "sent", "cached", "retries", "re-asks", "repairs", "cut", "tokens in",
         "tokens out", "cost $", "billed $"],
        [[role, c["sent"], c["cache_hits"], sum(c["retries"].values()),
          sum(used[role]["reasks"].values()), sum(used[role]["repairs"].values()),
          used[role]["truncations"], used[role]["prompt_tokens"], used[role]["completion_tokens"],
          f"{used[role]['cost_usd']:.4f}", f"{c['billed_cost_usd']:.4f}"]
         for role, c in calls.items()]))
    details = [f"{role} {label}: {_breakdown(counts)}" for role, c in calls.items()
               for label, counts in (("retries", c["retries"]), ("re-asks", used[role]["reasks"]),
                                     ("repairs", used[role]["repairs"])) if counts]
    if details:
        parts.append("\n".join(details))
    items = run["phases"]["items"]["wall_s"]
    rate = run["sent"] / items if items else 0.0
    phases = ", ".join(f"{name} {p['wall_s']:.1f} s" for name, p in run["phases"].items())
    preflight = run.get("preflight")
    parts.append(f"backend {manifest['backend']}; {run['sent']} requests sent "
                 f"({rate:.1f}/s while items ran), {run['cache_hits']} answered from the cache"
                 + (f"; preflight {preflight['sent']} sent, {preflight['cache_hits']} cached"
                    if preflight else "")
                 + f"; {run['wall_s']:.1f} s in all ({phases})")
    said = list(notes or [])
    shortfall = sum(s["shortfall"] for s in splits.values())
    if shortfall and reasons:
        said.append(f"short by {shortfall} rows; top losses: {loss_hint(manifest)}")
    if said:
        parts.append("\n".join(f"note: {line}" for line in said))
    return "\n\n".join(parts)
