"""Provenance: what built this dataset, from what, and what happened to every item.

The manifest has a stable part — identical for identical builds (toolkit version, backend,
models, prompt-template and schema hashes, seed, sizes, counts per stage and split, rejection
counts per validator code, failures per reason, tokens and cost of the calls the build used) —
and a `run` part that only describes this run (when, how long, requests sent vs. answered from
the cache, retries). Split files never depend on either.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from .. import __version__, schemas
from .config import BuildConfig, ModelConfig
from .prompts import template_versions

OFFLINE_NOTE = ("Built by the toolkit's offline backend: deterministic planner, responder and "
                "judge driven by each source item's own description of its picture (sent beside "
                "the image, never inside it) and by rules. No language model was called; "
                "answers are composed from templates.")
OPENAI_NOTE = "Built by the models below through OpenAI-compatible chat-completions endpoints."
SERVED_OFFLINE_NOTE = ("Built through OpenAI-compatible endpoints that answered as the toolkit's "
                       "offline generator (`safer-toolkit serve`): no language model was called; "
                       "answers are composed from templates.")


def _answered(calls: Mapping[str, Any]) -> str:
    """The model that answered most of a role's calls ("" when it made none)."""
    answered = calls.get("answered_by") or {}
    return max(sorted(answered), key=lambda name: answered[name]) if answered else ""


def offline_models(names: Any) -> bool:
    """Every name is one of the offline backend's models (and there is at least one)."""
    from .backends.offline import OFFLINE_MODELS

    names = [n for n in names if n]
    return bool(names) and all(n in OFFLINE_MODELS.values() for n in names)


def _model(role: str, m: ModelConfig, backend: str,
           constrain: Mapping[str, Mapping[str, Any]] | None,
           calls: Mapping[str, Any]) -> dict[str, Any]:
    """One role: the model that answered (`model`; every name it answered as in `answered_by`)
    beside the configured one (`configured_model`), and how it was called."""
    entry: dict[str, Any] = {"role": role, "model": _answered(calls) or m.model,
                             "configured_model": m.model,
                             "answered_by": dict(calls.get("answered_by") or {}),
                             "sampling": dict(m.sampling), "concurrency": m.concurrency}
    if backend == "openai":  # endpoints and prices only mean something for real calls
        entry.update(base_urls=list(m.base_urls), api_key_env=m.api_key_env or None,
                     price_in=m.price_in, price_out=m.price_out,
                     max_tokens_cap=m.max_tokens_cap, images=m.images)
        if constrain and role in constrain:  # what the preflight chose: it shaped the requests
            entry["constrain"] = dict(constrain[role])
            if m.grammar_limits:
                entry["grammar_limits"] = dict(m.grammar_limits)
    if role.startswith("responder"):
        entry["samples"] = m.samples
    return entry


def build_manifest(config: BuildConfig, *, backend: str, preset: str | None,
                   counts: Mapping[str, Any], rejections: Mapping[str, Mapping[str, int]],
                   failures: Mapping[str, int], dropped: Mapping[str, int],
                   calls: Mapping[str, Mapping[str, Any]], run: Mapping[str, Any],
                   yields: Mapping[str, Mapping[str, int]] | None = None,
                   constrain: Mapping[str, Mapping[str, Any]] | None = None,
                   exclusion: Any = None, judge: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The manifest dict handed to the release writer.

    `calls` holds each role's stable call figures (calls used, tokens, cost, repairs by kind,
    truncations, re-asks by reason, the models that answered); `yields` each stage's exchanges
    by outcome (valid on the first try, after a repair, after a re-ask, rejected, failed);
    `constrain` per role what the preflight settled (`preflight.RoleCheck.to_json`: the mode
    asked for, the server kind and how it was found, what the requests carry, whether the
    server enforced it); `judge` how the (blind) judge scored the candidates."""
    models = [_model(role, m, backend, constrain, calls.get(role, {}))
              for role, m in config.roles().items()]
    served_offline = offline_models(name for m in models for name in m["answered_by"])
    if backend == "offline":
        note = OFFLINE_NOTE
    else:
        note = SERVED_OFFLINE_NOTE if served_offline else OPENAI_NOTE
    manifest: dict[str, Any] = {
        "toolkit_version": __version__,
        "backend": backend,
        "backend_note": note,
        "generator": "offline" if backend == "offline" or served_offline else "models",
        "seed": config.seed,
        "sizes": dict(config.sizes),
        "prompts": config.prompt_counts(),
        "dpo_rejected_per_prompt": config.rejected_per_prompt,
        "thresholds": dict(config.thresholds) if config.judge is not None else None,
        "models": models,
        "prompt_templates": template_versions(),
        "schema_hashes": schemas.schema_hashes(),
        "sources": [dict(s) for s in config.sources],
        "dropped": dict(sorted(dropped.items())),
        "counts": counts,
        "rejections": {stage: dict(sorted(c.items())) for stage, c in sorted(rejections.items())},
        "failures": dict(sorted(failures.items())),
        "calls": {role: dict(c) for role, c in calls.items()},
        "yield": {stage: dict(c) for stage, c in (yields or {}).items()},
        "run": {**run, "python": platform.python_version()},
    }
    if preset is not None:
        manifest["preset"] = preset
    if exclusion is not None:
        manifest["exclusion"] = exclusion
    if judge is not None:
        manifest["judge"] = dict(judge)
    return manifest
