"""Two runs side by side: every headline number of `overall`, each label and each category,
with the difference (B − A)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from ..errors import EvaluationError

#: (row title, metric, field) of each number compared, per group
ROWS = (
    ("safety % at 3", "safety", "pct_top"),
    ("safety mean", "safety", "mean"),
    ("safety % ≥ 2", "safety", "pct_ge2"),
    ("helpfulness % at 3", "helpfulness", "pct_top"),
    ("helpfulness mean", "helpfulness", "mean"),
    ("helpfulness % ≥ 2", "helpfulness", "pct_ge2"),
    ("rigor % at 3", "rigor", "pct_top"),
    ("rigor mean", "rigor", "mean"),
    ("rigor % ≥ 2", "rigor", "pct_ge2"),
    ("protocol valid lenient %", "protocol_valid_lenient", "pct"),
    ("protocol valid strict %", "protocol_valid_strict", "pct"),
    ("over-refusal %", "over_refusal_rate", "pct"),
    ("unsafe compliance %", "unsafe_compliance_rate", "pct"),
    ("truncated %", "truncated_rate", "pct"),
    ("judged", "safety", "n"),
    ("missing", None, "missing_items"),
)
MAX_METRICS_BYTES = 64 * 1024 * 1024


class CompareError(EvaluationError, ValueError):
    """A run folder that has no readable metrics (the message says which and why)."""


def load_metrics(run: Path) -> dict[str, Any]:
    """`run/metrics.json`, checked for the parts `compare` reads."""
    path = run / "metrics.json"
    try:
        if path.stat().st_size > MAX_METRICS_BYTES:
            raise CompareError(f"{path}: larger than {MAX_METRICS_BYTES} bytes")
        metrics = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CompareError(f"{path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise CompareError(f"{path}: not JSON ({exc})") from None
    if not isinstance(metrics, dict) or not all(
            isinstance(metrics.get(k), dict) for k in ("overall", "label", "risk_category")):
        raise CompareError(f"{path}: not an eval metrics file (no overall/label/risk_category)")
    return metrics


def _value(group: Mapping[str, Any] | None, metric: str | None, field: str) -> float | None:
    if group is None:
        return None
    holder = group if metric is None else group.get(metric)
    value = holder.get(field) if isinstance(holder, Mapping) else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _who(metrics: Mapping[str, Any], run: Path) -> str:
    model = (metrics.get("provenance") or {}).get("model") or {}
    if model.get("name"):
        return f"{model['name']} ({model.get('prompt')} prompt)"
    if model.get("responses_file"):
        return f"responses {model['responses_file']}"
    return str(run)


def compare_runs(run_a: Path, run_b: Path) -> str:
    """The side-by-side table (plain text, aligned) of two runs' metrics."""
    a, b = load_metrics(run_a), load_metrics(run_b)
    lines = [f"A: {run_a} — {_who(a, run_a)}", f"B: {run_b} — {_who(b, run_b)}"]
    data_a = (a.get("provenance") or {}).get("dataset") or {}
    data_b = (b.get("provenance") or {}).get("dataset") or {}
    if data_a.get("ids_sha256") != data_b.get("ids_sha256"):
        lines.append("note: the two runs did not evaluate the same items; differences mix "
                     "models and data")
    seen_a, seen_b = (bool(((m.get("provenance") or {}).get("judge") or {})
                           .get("sees_reference")) for m in (a, b))
    if seen_a != seen_b:
        lines.append(f"note: the judge saw the reference label and category in "
                     f"{'A' if seen_a else 'B'} only; scores are not comparable as they stand")
    groups: list[tuple[str, Mapping | None, Mapping | None]] = [
        ("overall", a["overall"], b["overall"])]
    for kind in ("label", "risk_category"):
        for name in sorted(set(a[kind]) | set(b[kind])):
            groups.append((f"{kind}={name}", a[kind].get(name), b[kind].get(name)))
    table = [("group", "metric", "A", "B", "B − A")]
    for group, ga, gb in groups:
        for title, metric, field in ROWS:
            va, vb = _value(ga, metric, field), _value(gb, metric, field)
            delta = None if va is None or vb is None else round(vb - va, 4)
            table.append((group, title, _fmt(va), _fmt(vb), _fmt(delta, signed=True)))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines.append("")
    for i, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) if j < 2 else cell.rjust(w)
                               for j, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     .rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
