"""Small build configurations for pipeline tests (written as real TOML files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from safer_toolkit.builder.backends.offline import OFFLINE_MODELS


def write_config(path: Path, *, sft: int = 6, dpo: int = 6, grpo: int = 4, eval_: int = 4,
                 base_url: str = "http://127.0.0.1:9/v1", concurrency: int = 8,
                 timeout_s: float = 30.0, max_retries: int = 4, reserve: float = 0.5,
                 samples: int = 2, constrain: str | None = None, **top: Any) -> Path:
    """A build TOML with the offline model names (answered by `serve` or the offline backend);
    `constrain`, when given, for every role."""
    def model(role: str, **extra: Any) -> dict[str, Any]:
        return {"model": OFFLINE_MODELS[role], "base_urls": [base_url],
                "concurrency": concurrency, "timeout_s": timeout_s, "max_retries": max_retries,
                "sampling": {"temperature": 0.0 if role == "judge" else 0.8},
                **({"constrain": constrain} if constrain else {}), **extra}

    data = {"seed": 0, "reserve": reserve, **top,
            "sizes": {"sft": sft, "dpo": dpo, "grpo": grpo, "eval": eval_},
            "models": {"planner": model("planner"),
                       "responders": [model("responder", samples=samples)],
                       "judge": model("judge")}}
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path
