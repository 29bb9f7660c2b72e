"""Evaluate a model on the `eval` config with the paper's rubric and protocol adherence.

    from . import EvalSettings, evaluate, compute_metrics, read_results
    summary = evaluate(EvalSettings(dataset="out/demo", out=Path("runs/a"), judge=..., model=...))
    compute_metrics(read_results(Path("runs/a/results.jsonl")))  # == metrics.json's numbers

Names are imported on first use, so `safer-toolkit eval --help` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CompareError": "compare", "compare_runs": "compare",
    "DatasetError": "items", "EvalItem": "items", "load_eval_items": "items",
    "compute_metrics": "metrics",
    "GENERIC_SYSTEM_PROMPT": "prompts", "ModelPrompt": "prompts",
    "Decision": "refusal", "decide": "refusal",
    "read_results": "results",
    "EvalSettings": "runner", "RunSummary": "runner", "evaluate": "runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
