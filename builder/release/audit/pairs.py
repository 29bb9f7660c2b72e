"""Figures of the DPO pairs: can a surface reading tell the chosen side from the rejected one?

- `separability/<kind>`: per perturbation, the `counts` probe (`classifier`) trained to tell a
  chosen response from a rejected one from the response text alone (the whole assistant turn),
  with folds grouped by source item. 0.5 is chance; a perturbation is hard only when the probe
  stays near it, i.e. when nothing but what the validator or the judge checks tells the sides
  apart. `separability_presence/<kind>` (reported) is the `presence` probe on the same texts:
  for `wrong_decision` it reads the conjunction the validator checks — the analysis says one
  label, the decision the other — which a linear probe on word presence can carve out of the
  four label × decision corners (about 0.75 when both are plain words); the structural
  perturbations stay at 0.5 under either probe, their sides being the same words.
- `length_cue` (and `length_cue/<kind>`): with p the share of pairs whose rejected side is the
  shorter one (in characters; equal lengths count one half), the accuracy max(p, 1 − p) of the
  better rule "the shorter (or the longer) side is the rejected one".
"""

from __future__ import annotations

import polars as pl

from .classifier import grouped_accuracy
from .report import Figure
from .thresholds import AuditThresholds


def _length_cue(frame: pl.DataFrame) -> float | None:
    if not frame.height:
        return None
    chosen, rejected = frame["chosen"].str.len_chars(), frame["rejected"].str.len_chars()
    fewer, ties = float((rejected < chosen).sum()), float((rejected == chosen).sum())
    shorter = (fewer + 0.5 * ties) / frame.height
    return max(shorter, 1 - shorter)


def separability(frame: pl.DataFrame) -> dict[str, float] | None:
    """Each probe's held-out accuracy on the chosen (1) vs rejected (0) sides of `frame`."""
    texts = frame["chosen"].to_list() + frame["rejected"].to_list()
    labels = [1] * frame.height + [0] * frame.height
    groups = frame["item"].to_list() * 2
    return grouped_accuracy(texts, labels, groups)


def pair_figures(dpo: pl.DataFrame | None, limits: AuditThresholds) -> list[Figure]:
    if dpo is None or not dpo.height:
        return [Figure("length_cue", "best length rule for the rejected side", None, None, 0,
                       "no DPO rows", judged=False)]
    figures, presence = [], []
    for (kind,), frame in sorted(dpo.group_by("perturbation"), key=lambda kv: kv[0]):
        n = frame.height
        accuracy = separability(frame) or {}
        figures.append(Figure(
            f"separability/{kind}", f"probe accuracy, chosen vs rejected ({kind})",
            accuracy.get("counts"), limits.separability, n,
            f"{frame['item'].n_unique():,} items", judged=n >= limits.min_samples))
        presence.append(Figure(
            f"separability_presence/{kind}", f"presence probe, chosen vs rejected ({kind})",
            accuracy.get("presence"), None, n))
    figures += presence
    cue = _length_cue(dpo)
    figures.append(Figure("length_cue", "best length rule for the rejected side (all pairs)",
                          cue, limits.length_cue, dpo.height,
                          judged=dpo.height >= limits.min_samples))
    for (kind,), frame in sorted(dpo.group_by("perturbation"), key=lambda kv: kv[0]):
        figures.append(Figure(f"length_cue/{kind}", f"best length rule ({kind})",
                              _length_cue(frame), limits.length_cue, frame.height,
                              judged=frame.height >= limits.min_samples))
    return figures
