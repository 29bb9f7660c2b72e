"""Figure of the prompts: does the system prompt (the protocol rendered for the model) give the
label away?

`label_from_prompt`: the probes (`classifier`) trained to read an item's label (harmful or
benign) from its system prompt alone — persona, tool list, topology and transitions, never the
image or the question — over every distinct item of every config, folds grouped by item. The
figure is the better probe's accuracy (`counts` or `presence`: a tool list is about presence)
minus the majority label's share: how much the prompt tells beyond "always guess the commoner
label". A planner that pre-decides (a refusal tool, a redirect tool or a topology offered only
for harmful items) shows up here.
"""

from __future__ import annotations

import polars as pl

from .classifier import grouped_accuracy
from .report import Figure
from .thresholds import AuditThresholds


def prompt_figures(frames: dict[str, pl.DataFrame], limits: AuditThresholds) -> list[Figure]:
    items = pl.concat([f.select("item", "system", "label") for f in frames.values()]) \
        .unique(subset="item", keep="first", maintain_order=True) if frames else None
    if items is None or not items.height:
        return [Figure("label_from_prompt", "label read from the system prompt, over majority",
                       None, limits.label_from_prompt, 0, "no rows", judged=False)]
    labels = items["label"].to_list()
    majority = max(labels.count(v) for v in set(labels)) / len(labels)
    probes = grouped_accuracy(items["system"].to_list(),
                              [int(v == "harmful") for v in labels], items["item"].to_list())
    accuracy = max(probes.values()) if probes else None
    value = None if accuracy is None else accuracy - majority
    detail = (f"accuracy {accuracy:.3f} (counts {probes['counts']:.3f}, presence "
              f"{probes['presence']:.3f}), majority {majority:.3f}" if probes
              else "one label only")
    return [Figure("label_from_prompt", "label read from the system prompt, over majority",
                   value, limits.label_from_prompt, items.height, detail,
                   judged=accuracy is not None and items.height >= limits.min_samples)]
